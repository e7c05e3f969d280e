"""Tune AGRL's replay knobs on the `dev` split (never on a reported split).

Short AGRL runs from one SFT checkpoint over a small grid (starting level x k), each scored on the
`dev` split's luck-proof tail records (tail solved) and head records (head accuracy). The winner
goes into configs/agrl_tiny.yaml by hand; the table is written to results/tuning/dev.json.

    .venv/bin/python scripts/tune_dev.py --sft runs/models/sft --data runs/data --steps 60 [--learning_rate 1e-4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from agrl.data.io import read_records, write_json
from agrl.data.shoprules import HEAD_RULES
from agrl.evaluate import evaluate
from agrl.experiments.budgets import ComparisonBudget
from agrl.experiments.runner import train_arm
from agrl.experiments.shoprules import comparison_arms, rl_prompts
from agrl.models import load_model
from agrl.models.generate import generate_completions

TUNING_SEED = 100  # not one of the reported seeds


def score(model_dir: Path, records: list[dict]) -> dict:
    model, tokenizer = load_model(str(model_dir))
    texts = generate_completions(model, tokenizer, records, progress=False)
    m = evaluate(records, {r["id"]: t[0] for r, t in zip(records, texts)}, head_rules=HEAD_RULES)
    return {k: m.get(k) for k in ("tail_solved", "tail_n", "head_accuracy", "accuracy", "format_valid")} | {
        f"solved_{rule}": round(row["solved"], 3) for rule, row in m.per_rule.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sft", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--method", default="agrl", help="a reproduce RL arm (grpo for a reference point)")
    parser.add_argument("--work", type=Path, default=Path("runs/tuning"))
    parser.add_argument("--out", type=Path, default=Path("results/tuning/dev.json"))
    args, extra = parser.parse_known_args()  # anything else: config overrides for every run (--key value)
    args.extra = extra
    dev = read_records(args.data / "dev.jsonl")
    budget = ComparisonBudget(rl_steps=args.steps, curve_every=0)
    prompts = rl_prompts(args.data, TUNING_SEED, budget)
    previous = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = [r for r in previous if r["setting"] != "sft"]
    rows.insert(0, {"setting": "sft", **score(args.sft, dev)})
    print(json.dumps(rows[0]), flush=True)
    grid = (
        itertools.product(args.levels, args.ks) if args.method in ("agrl", "replay_only") else [(None, None)]
    )
    for level, k in grid:
        started = time.perf_counter()
        knobs = [] if level is None else ["--guidance_start_level", str(level), "--replay_k", str(k)]
        name = " ".join([args.method, *knobs, *args.extra]).replace("--", "")
        out = args.work / name.replace(" ", "_")
        arm = comparison_arms(args.sft, args.data, prompts, args.work, TUNING_SEED, budget)[args.method]
        train_arm(arm.with_fields(output_dir=str(out), disable_tqdm=True), [*knobs, *args.extra])
        rows = [r for r in rows if r["setting"] != name]
        rows.append(
            {"setting": name, "minutes": round((time.perf_counter() - started) / 60, 1), **score(out, dev)}
        )
        print(json.dumps(rows[-1]), flush=True)
        write_json(args.out, {"steps": args.steps, "seed": TUNING_SEED, "split": "dev", "rows": rows})


if __name__ == "__main__":
    main()
