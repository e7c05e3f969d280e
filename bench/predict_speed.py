"""Serving throughput: a label-first judge stopped at `</answer>` vs a think-first judge (SmolLM2).

The label-first model answers first, so `--early-stop` ends decoding after a handful of tokens; the
think-first model must write its checks and rule before its label. Both judge the same records with
the same batch size and greedy decoding, alternately (A B A B ...) so that a slow phase of a shared
machine hits both. Prints records/s of each and the ratio. Do not run it beside another job.

    .venv/bin/python bench/predict_speed.py --label-first runs/esci/models/smollm2_sft \\
        --think-first runs/esci/models/smollm2_sft_think_first --data runs/esci/data/dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from agrl.contract import load_contract
from agrl.data.load import load_records
from agrl.models import load_model
from agrl.models.generate import generate_completions


def timed(model, tokenizer, records, batch: int, early: bool, max_new_tokens: int) -> tuple[float, float]:
    started = time.perf_counter()
    texts = generate_completions(
        model,
        tokenizer,
        records,
        batch_size=batch,
        max_new_tokens=max_new_tokens,
        stop_after_answer=early,
        progress=False,
    )
    seconds = time.perf_counter() - started
    tokens = statistics.fmean(len(tokenizer(t[0], add_special_tokens=False)["input_ids"]) for t in texts)
    return len(records) / seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label-first", required=True, help="label-first model folder")
    parser.add_argument("--think-first", required=True, help="think-first model folder")
    parser.add_argument("--data", required=True, help="records (JSONL/CSV/Parquet) or an ESCI folder")
    parser.add_argument("--n", type=int, default=64, help="records judged per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()
    records = load_records(args.data, require_label=False)[: args.n]
    judges = {}
    for kind, folder in (("label_first", args.label_first), ("think_first", args.think_first)):
        if load_contract(folder).reasoning_format != kind:
            raise SystemExit(
                f"{folder}: its agrl.json says {load_contract(folder).reasoning_format}, not {kind}"
            )
        judges[kind] = load_model(folder)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        timed(*judges["label_first"], records[:4], args.batch, True, args.max_new_tokens)  # warm-up
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in judges}
        for _ in range(args.rounds):
            for kind, (model, tokenizer) in judges.items():
                runs[kind].append(
                    timed(model, tokenizer, records, args.batch, kind == "label_first", args.max_new_tokens)
                )
    summary = {
        kind: {
            "records_per_s": statistics.median(r for r, _ in rs),
            "completion_tokens": statistics.fmean(t for _, t in rs),
        }
        for kind, rs in runs.items()
    }
    ratio = summary["label_first"]["records_per_s"] / summary["think_first"]["records_per_s"]
    print(
        json.dumps(
            {
                "n": len(records),
                "batch": args.batch,
                "rounds": args.rounds,
                **summary,
                "label_first_over_think_first": round(ratio, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
