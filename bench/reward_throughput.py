"""Reward-scoring throughput: completions scored per second by the rule-aware rewards.

Peer in the same run: the outcome-only reward (label correct or not), which parses the same text;
the ratio shows what the dense components cost on top of parsing.

    .venv/bin/python bench/reward_throughput.py [--n 20000]   (writes results/bench/reward_throughput.json)
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from agrl.data.io import read_records, write_json
from agrl.data.shoprules import generate
from agrl.experiments.provenance import provenance
from agrl.rewards import _parse, make_reward_functions


def corrupt(text: str, rng: random.Random) -> str:
    """Realistic mix: gold, wrong label, wrong check, truncated, junk."""
    roll = rng.random()
    if roll < 0.4:
        return text
    if roll < 0.6:
        return text.replace("<answer> 4", "<answer> 3").replace("<answer> 1", "<answer> 2")
    if roll < 0.8:
        return text.replace("match", "mismatch", 1)
    if roll < 0.9:
        return text[: len(text) // 2]
    return "I think the answer is 4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=Path("results/bench/reward_throughput.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), seed=0, scale="tiny", progress=False)
        records = read_records(Path(tmp) / "rl.jsonl")
    rng = random.Random(0)
    rows = [records[i % len(records)] for i in range(args.n)]
    completions = [
        corrupt(r["reference"], rng) + " " * (i % 7) for i, r in enumerate(rows)
    ]  # defeat the cache
    columns = {
        "label": [r["label"] for r in rows],
        "rule": [r["rule"] for r in rows],
        "annotations": [r["annotations"] for r in rows],
    }
    results = {}
    for name, weights in (("rule_aware", None), ("outcome", {"label": 1.0})):
        funcs, _ = make_reward_functions(weights)
        _parse.cache_clear()
        started = time.perf_counter()
        for func in funcs:
            func(completions, **columns)
        seconds = time.perf_counter() - started
        results[name] = args.n / seconds
        print(
            f"{name:>10}: {args.n} completions x {len(funcs)} components in {seconds:.2f} s "
            f"-> {results[name]:,.0f} completions/s"
        )
    ratio = results["rule_aware"] / results["outcome"]
    print(f"ratio rule_aware / outcome throughput: {ratio:.2f}")
    write_json(args.out, {"completions_per_s": results, "rule_aware_over_outcome": ratio, "n": args.n,
                          "provenance": provenance()})  # fmt: skip


if __name__ == "__main__":
    main()
