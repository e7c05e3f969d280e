"""Replay overhead: AGRL (replay on) vs GRPO-PR (TRL's unchanged GRPOTrainer), same reward.

Both use the rule-aware reward, so the ratio isolates what replay costs (the guided rollouts and
the bookkeeping), not the reward. Same tiny SFT model, data (`rl` split), batch, group size,
completion length and seed; the two run alternately (A B A B ...) in this process so that a slow
phase of a shared machine hits both. Prints both absolute figures (median step time) and the ratio.
Do not run it beside another job: a ratio measured under load is noise.
The trigger rate is whatever the model produces on the `rl` split (reported): an SFT model that
has rarely seen the tail rules gets many all-wrong groups there, as in real training.

    .venv/bin/python bench/step_time.py --model runs/demo/models/sft --data runs/demo/data [--steps 10]
        (writes results/bench/step_time.json)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from agrl.data.io import write_json
from agrl.experiments.provenance import provenance
from agrl.train.config import AGRLConfig, load_config
from agrl.train.grpo import build_grpo_trainer


def run(kind: str, model: str, data: str, steps: int, out: str) -> dict:
    extra = ["--replay", "true" if kind == "agrl" else "false", "--reward_mode", "rule_aware"]
    args = load_config(
        AGRLConfig,
        None,
        [
            "--model_name_or_path",
            model,
            "--train_file",
            f"{data}/rl.jsonl",
            "--output_dir",
            out,
            "--max_steps",
            str(steps),
            "--per_device_train_batch_size",
            "32",
            "--num_generations",
            "8",
            "--max_completion_length",
            "96",
            "--learning_rate",
            "1e-4",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--seed",
            "0",
            "--disable_tqdm",
            "true",
            *extra,
        ],
    )
    trainer = build_grpo_trainer(args)
    trainer.train()
    history = trainer.state.log_history
    times = [h["step_time"] for h in history if "step_time" in h][1:]  # the first step warms caches up
    triggered = [h["replay/triggered_frac"] for h in history if "replay/triggered_frac" in h]
    return {
        "step_time": statistics.median(times),
        "steps": len(times),
        "triggered_frac": statistics.fmean(triggered) if triggered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="runs/demo/models/sft")
    parser.add_argument("--data", default="runs/demo/data")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--out", type=Path, default=Path("results/bench/step_time.json"))
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"grpo_pr": [], "agrl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for kind in runs:
                runs[kind].append(
                    run(kind, args.model, args.data, args.steps, str(Path(tmp) / f"{kind}{round_}"))
                )
    grpo = statistics.median(r["step_time"] for r in runs["grpo_pr"])
    agrl = statistics.median(r["step_time"] for r in runs["agrl"])
    triggered = statistics.fmean(r["triggered_frac"] or 0 for r in runs["agrl"])
    per_run = {kind: [round(r["step_time"], 3) for r in rs] for kind, rs in runs.items()}
    print(f"median step time per run (s): {json.dumps(per_run)}")
    print(
        f"GRPO-PR: {grpo:.2f} s/step   AGRL: {agrl:.2f} s/step (replay triggered on {100 * triggered:.0f}% of groups)"
    )
    print(f"ratio AGRL / GRPO-PR step time (replay overhead): {agrl / grpo:.2f}")
    write_json(args.out, {"agrl_over_grpo_pr": agrl / grpo, "grpo_pr_s_per_step": grpo, "agrl_s_per_step": agrl,
                          "replay_triggered_frac": triggered, "per_run_s_per_step": per_run, "model": args.model,
                          "data": args.data, "steps": args.steps, "rounds": args.rounds,
                          "provenance": provenance()})  # fmt: skip


if __name__ == "__main__":
    main()
