"""Inference precision: the same judge in fp32 and in bf16, records/s and label agreement.

Loads one model folder twice (fp32, bf16 weights), judges the same records with the same batch
size and greedy decoding in alternating rounds (fp32, bf16, fp32, ...) so that a slow phase of a
shared machine hits both, and prints records/s of each, their ratio and the share of records whose
label is the same; on labelled records also each precision's accuracy and macro-F1 against the gold
grade (does a disagreement cost accuracy, or is it a near-tie either way?). Writes
results/bench/predict_dtype.json. Do not run it beside another job.

`--recheck-margins M ...` (label-first models): the serving path's one forward pass
(`agrl.models.scoring.judge`, early stop) in fp32, in bf16 weights, in fp32 weights under bf16
autocast, and bf16 with its near-ties (the two best grades less than M apart) judged again in fp32
(`judge_rechecked`): records/s, the share judged again and the label agreement with fp32, per margin. Writes results/bench/predict_recheck.json.

    .venv/bin/python bench/predict_dtype.py --model runs/esci/models/smollm2_sft --data ../shared/data/esci-us-dev60 --early-stop
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from agrl.contract import load_contract
from agrl.data.io import write_json
from agrl.data.load import load_records
from agrl.experiments.provenance import provenance
from agrl.models import load_model, torch_dtype
from agrl.models.generate import generate_completions
from agrl.models.scoring import judge as agrl_judge
from agrl.models.scoring import judge_rechecked
from agrl.reasoning import lenient_label
from agrl.stats import label_metrics


def judge(model, tokenizer, records, args, contract) -> tuple[float, list[int | None]]:
    started = time.perf_counter()
    texts = generate_completions(model, tokenizer, records, batch_size=args.batch, max_new_tokens=args.max_new_tokens,
                                 stop_after_answer=args.early_stop, system_prompt=contract.system_prompt,
                                 rulebook=contract.prompt_rulebook(), progress=False)  # fmt: skip
    return len(records) / (time.perf_counter() - started), [lenient_label(t[0]) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="records (JSONL/CSV/Parquet) or an ESCI folder")
    parser.add_argument("--n", type=int, default=256, help="records judged per round")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--early-stop", action="store_true", help="label-first models: stop at </answer>")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--recheck-margins",
        type=float,
        nargs="*",
        default=None,
        help="the forward-pass judge with fp32 re-checks of bf16 near-ties at these margins",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default results/bench/predict_dtype.json (predict_recheck.json with --recheck-margins)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = load_records(args.data, require_label=False)[: args.n]
    contract = load_contract(args.model)
    judges = {name: load_model(args.model, torch_dtype(name)) for name in ("fp32", "bf16")}
    if args.recheck_margins is not None:
        recheck(judges, records, args, contract)
        return
    for model, tokenizer in judges.values():  # warm-up: first-call costs out of the timings
        judge(model, tokenizer, records[:4], args, contract)
    speeds: dict[str, list[float]] = {k: [] for k in judges}
    labels: dict[str, list[int | None]] = {}
    for _ in range(args.rounds):
        for name, (model, tokenizer) in judges.items():
            speed, labels[name] = judge(model, tokenizer, records, args, contract)
            speeds[name].append(speed)
    agree = sum(a == b for a, b in zip(labels["fp32"], labels["bf16"])) / len(records)
    result = {
        "model": args.model, "data": str(args.data), "n": len(records), "batch": args.batch, "rounds": args.rounds,
        "early_stop": args.early_stop, "threads": args.threads,
        **{f"{name}_records_per_s": statistics.median(v) for name, v in speeds.items()},
        "label_agreement": agree, "torch": torch.__version__, "provenance": provenance(),
    }  # fmt: skip
    gold = [(i, r["label"]) for i, r in enumerate(records) if r.get("label") is not None]
    if gold:  # a disagreement that costs nothing against gold is a near-tie, not a precision bug
        for name, predicted in labels.items():
            m = label_metrics([g for _, g in gold], [predicted[i] for i, _ in gold])
            result[f"{name}_gold"] = {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    result["bf16_over_fp32"] = result["bf16_records_per_s"] / result["fp32_records_per_s"]
    print(json.dumps(result, indent=1))
    write_json(args.out or Path("results/bench/predict_dtype.json"), result)


def recheck(judges: dict, records: list, args, contract) -> None:
    """fp32, bf16, and bf16 with fp32 re-checks of its near-ties, on the forward-pass judge."""
    (exact, tokenizer), (fast, _) = judges["fp32"], judges["bf16"]
    kwargs = {"fmt": contract.reasoning_format, "early_stop": True, "system_prompt": contract.system_prompt,
              "prompt_rulebook": contract.prompt_rulebook(), "batch_size": args.batch}  # fmt: skip
    judge_rechecked(fast, exact, tokenizer, records[:4], 0.1, **kwargs)  # warm-up
    timed: dict[str, list[float]] = {}
    labels: dict[str, list] = {}
    redone: dict[str, int] = {}
    # bf16_autocast: the fp32 weights with bf16 matmuls (torch.autocast): the residual stream, norms
    # and softmax stay fp32, where bf16 weights round them too.
    runs = [("fp32", exact, None), ("bf16", fast, None), ("bf16_autocast", exact, None)] + [
        (f"bf16_recheck_{m:g}", fast, m) for m in args.recheck_margins
    ]
    for _ in range(args.rounds):  # alternating, so a slow phase of the machine hits every variant
        for name, model, margin in runs:
            started = time.perf_counter()
            redo: list[int] = []
            if name == "bf16_autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    results = agrl_judge(model, tokenizer, records, **kwargs)
            elif margin is None:
                results = agrl_judge(model, tokenizer, records, **kwargs)
            else:
                results, redo = judge_rechecked(fast, exact, tokenizer, records, margin, **kwargs)
            timed.setdefault(name, []).append(len(records) / (time.perf_counter() - started))
            labels[name], redone[name] = [r["label"] for r in results], len(redo)
    gold = [r.get("label") for r in records]
    result: dict = {"model": args.model, "data": str(args.data), "n": len(records), "batch": args.batch,
                    "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
                    "provenance": provenance(), "variants": {}}  # fmt: skip
    fp32_speed = statistics.median(timed["fp32"])
    for name, _, margin in runs:
        speed = statistics.median(timed[name])
        entry = {"records_per_s": speed, "over_fp32": speed / fp32_speed, "margin": margin,
                 "judged_again": redone[name] / len(records),
                 "label_agreement_with_fp32": sum(a == b for a, b in zip(labels[name], labels["fp32"])) / len(records)}  # fmt: skip
        if all(g is not None for g in gold):
            m = label_metrics(gold, labels[name])
            entry["gold"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        result["variants"][name] = entry
    print(json.dumps(result["variants"], indent=1))
    write_json(args.out or Path("results/bench/predict_recheck.json"), result)


if __name__ == "__main__":
    main()
