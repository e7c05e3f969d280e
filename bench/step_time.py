"""Wall time per optimizer step: AGRLTrainer (replay on) vs plain TRL GRPOTrainer, same everything else.

Same tiny SFT model, data (`rl` split), batch, group size, completion length and seed; both runs in
this process, one after the other, on the same machine. Prints both absolute figures and the ratio.
The trigger rate is whatever the model produces on the `rl` split (reported): an SFT model that
has rarely seen the tail rules gets many all-wrong groups there, as in real training.

    .venv/bin/python bench/step_time.py --model runs/demo/models/sft --data runs/demo/data [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from agrl.train.config import AGRLConfig, load_config
from agrl.train.grpo import build_grpo_trainer


def run(kind: str, model: str, data: str, steps: int, out: str) -> dict:
    extra = ["--replay", "true", "--reward_mode", "rule_aware"] if kind == "agrl" else \
        ["--replay", "false", "--reward_mode", "outcome"]
    args = load_config(AGRLConfig, None, [
        "--model_name_or_path", model, "--train_file", f"{data}/rl.jsonl", "--output_dir", out,
        "--max_steps", str(steps), "--per_device_train_batch_size", "32", "--num_generations", "8",
        "--max_completion_length", "96", "--learning_rate", "1e-4", "--logging_steps", "1", "--save_strategy", "no",
        "--report_to", "none", "--seed", "0", "--disable_tqdm", "true", *extra])
    trainer = build_grpo_trainer(args)
    trainer.train()
    history = trainer.state.log_history
    times = [h["step_time"] for h in history if "step_time" in h][1:]  # the first step warms caches up
    triggered = [h["replay/triggered_frac"] for h in history if "replay/triggered_frac" in h]
    return {"step_time": statistics.median(times), "steps": len(times),
            "triggered_frac": statistics.fmean(triggered) if triggered else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="runs/demo/models/sft")
    parser.add_argument("--data", default="runs/demo/data")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grpo = run("grpo", args.model, args.data, args.steps, str(Path(tmp) / "grpo"))
        agrl = run("agrl", args.model, args.data, args.steps, str(Path(tmp) / "agrl"))
    print(json.dumps({"grpo": grpo, "agrl": agrl}, indent=2))
    print(f"plain GRPO: {grpo['step_time']:.2f} s/step   AGRL: {agrl['step_time']:.2f} s/step "
          f"(replay triggered on {100 * (agrl['triggered_frac'] or 0):.0f}% of groups)")
    print(f"ratio AGRL / GRPO step time: {agrl['step_time'] / grpo['step_time']:.2f}")


if __name__ == "__main__":
    main()
