"""Warm-start curve: tiny from-scratch SFT, `w_eval` accuracy against steps and training wall time.

Evaluation pauses the clock (the seconds are training only). Prints one row per evaluation:
step, training seconds, w_eval strict accuracy, head accuracy (w_eval records decided by head
rules), format validity, tail solved (on `tail`: should stay low, the tail is rare in `sft`).

    .venv/bin/python bench/sft_curve.py --data runs/data --every 250 [--key value ...]   # any SFT field
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from transformers import TrainerCallback

from agrl.configs import config_path
from agrl.data.io import read_records
from agrl.data.shoprules import HEAD_RULES, generate
from agrl.evaluate import evaluate
from agrl.models.generate import generate_completions
from agrl.train.config import AgrlSFTConfig, load_config
from agrl.train.sft import run_sft


class Curve(TrainerCallback):
    def __init__(self, splits: dict[str, list[dict]], every: int, tokenizer):
        self.splits, self.every, self.tokenizer = splits, every, tokenizer
        self.paused = 0.0
        self.started = time.perf_counter()
        self.rows: list[dict] = []

    def measure(self, step: int, model) -> None:
        pause = time.perf_counter()
        row: dict = {"step": step, "train_s": round(pause - self.started - self.paused, 1)}
        for name, records in self.splits.items():
            texts = generate_completions(model, self.tokenizer, records, progress=False)
            m = evaluate(records, {r["id"]: t[0] for r, t in zip(records, texts)}, head_rules=HEAD_RULES)
            if name == "w_eval":
                row |= {
                    "w_eval": m.accuracy,
                    "head": m.head_accuracy,
                    "format": m.format_valid,
                    "lenient": m.lenient_accuracy,
                }
            else:
                row[f"{name}_solved"] = m.tail_solved
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.paused += time.perf_counter() - pause

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.measure(state.global_step, model)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="ShopRules folder (default: generate default scale into a temp dir)")
    parser.add_argument("--every", type=int, default=250, help="evaluate every N steps")
    parser.add_argument("--n_eval", type=int, default=300, help="w_eval / tail records per evaluation")
    known, overrides = parser.parse_known_args()
    data = known.data or tempfile.mkdtemp(prefix="agrl-sft-curve-")
    if not known.data:
        generate(data, seed=0, scale="default", progress=False)
    splits = {s: read_records(f"{data}/{s}.jsonl")[: known.n_eval] for s in ("w_eval", "tail")}
    args = load_config(
        AgrlSFTConfig,
        config_path("sft_tiny.yaml"),
        [
            "--train_file",
            f"{data}/sft.jsonl",
            "--tiny_vocab_files",
            f"{data}/rl.jsonl",
            "--output_dir",
            tempfile.mkdtemp(prefix="agrl-sft-curve-out-"),
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            *overrides,
        ],
    )
    holder: dict = {}

    class Attach(TrainerCallback):
        def on_train_begin(self, a, state, control, model=None, processing_class=None, **kwargs):
            holder["curve"] = Curve(splits, known.every, processing_class)

        def on_step_end(self, a, state, control, model=None, **kwargs):
            holder["curve"].on_step_end(a, state, control, model=model)

    run_sft(args, extra_callbacks=[Attach()])
    curve = holder["curve"]
    if not curve.rows or curve.rows[-1]["step"] != args.max_steps:
        pass
    print(
        json.dumps(
            {
                "config": {
                    k: getattr(args, k)
                    for k in (
                        "max_steps",
                        "learning_rate",
                        "per_device_train_batch_size",
                        "tiny_hidden",
                        "tiny_layers",
                        "tiny_intermediate",
                    )
                }
            }
        )
    )


if __name__ == "__main__":
    main()
