"""The control for AGRL on ESCI: the same information without RL.

AGRL's 30 steps saw 120 train prompts (4 per step) with their gold grades. The control continues the
label-first SFT model with SFT on exactly those 120 records (the first 120 of TRL's RepeatSampler
order: `torch.randperm(len(train))` seeded with the run's seed) with the RL arms' optimiser settings
(LoRA, lr 5e-5 constant), then is scored on the same dev rows and compared with AGRL, paired by query. Run after `agrl esci` (it reads runs/esci and results/esci).

    .venv/bin/python scripts/esci_control.py [--work runs/esci] [--out results/esci]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from agrl.data.io import read_records, write_json, write_jsonl
from agrl.experiments.budgets import EsciBudget
from agrl.experiments.esci import judge_predictions, paired_by_query, sft_smollm2
from agrl.reasoning import lenient_label
from agrl.stats import label_intervals, label_metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("runs/esci"))
    parser.add_argument("--out", type=Path, default=Path("results/esci"))
    parser.add_argument(
        "--learning-rate", default="5e-5", help="default: the RL arms' (constant schedule, no warmup)"
    )
    parser.add_argument(
        "--name", default="control", help="results/esci/<name>.json and predictions/smollm2_<name>.jsonl"
    )
    args = parser.parse_args()
    summary = json.loads((args.out / "summary.json").read_text())
    budget = EsciBudget(**summary["budget"])
    train = read_records(args.work / "data" / "train.jsonl")
    dev = read_records(args.work / "data" / "dev.jsonl")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(budget.seed)).tolist()
    seen = [train[i] for i in order[: budget.rl_steps * 4]]
    write_jsonl(args.work / "data" / "control.jsonl", seen)
    info = sft_smollm2(
        args.work / "data" / "control.jsonl",
        args.work / "models" / "smollm2_control",
        budget,
        model_name_or_path=str(args.work / "models" / "smollm2_sft"),
        num_train_epochs=1.0,
        learning_rate=float(args.learning_rate),
        lr_scheduler_type="constant",
        warmup_steps=0,
    )
    predicted, meta = judge_predictions(
        info.path, dev, budget, args.out / "predictions" / f"smollm2_{args.name}.jsonl"
    )
    gold, groups = [r["label"] for r in dev], [r["query"] for r in dev]

    def grades(name: str) -> list:
        rows = [json.loads(x) for x in (args.out / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        return [lenient_label(r["completion"]) for r in rows]

    metrics = label_metrics(gold, predicted)
    metrics["ci"] = label_intervals(gold, predicted, groups)
    result = {
        "records": len(seen),
        **info.summary(),
        **meta,
        "metrics": metrics,
        "agrl_minus_control": paired_by_query(gold, grades("smollm2_agrl"), predicted, groups),
        "control_minus_sft": paired_by_query(gold, predicted, grades("smollm2_sft"), groups),
    }
    write_json(args.out / f"{args.name}.json", result)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "metrics"}
            | {
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "ci": metrics["ci"],
                "predicted_share": metrics["predicted_share"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
