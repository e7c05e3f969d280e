"""SmolLM2-135M training steps against the CPU's matmul bound: where an SFT and an RL step spend their time.

Measures in one process, on the same machine state:
- the bound: a 2048 x 2048 matmul in fp32 and in bf16 (TFLOP/s, median of repeats);
- a LoRA SFT step (the shipped `sft_smollm2_esci.yaml`: label-first, bf16 autocast, batch 8) and a
  GRPO-PR step (`grpo_pr_smollm2_esci.yaml`: 4 prompts x 4 rollouts) on real ESCI records: median
  seconds per optimizer step after warm-up steps, tokens per step, the step's FLOPs in the usual
  convention (6 x parameters x tokens for training; an RL step adds 2 x parameters x tokens for
  generating its rollouts) and the achieved TFLOP/s, and how many times the bf16 bound's time the
  step takes (issue 14's targets: SFT <= 3x, RL <= 2x);
- `torch.profiler` over one step of each: the operators with the most self CPU time
  (results/bench/smollm2_step_profile.md).

Writes results/bench/smollm2_step.json. Do not run it beside another job.

    .venv/bin/python bench/smollm2_step.py --data ../shared/data/esci-us-sample [--steps 5 --warmup 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from agrl.configs import config_path
from agrl.data.io import atomic_write_text, write_json, write_jsonl
from agrl.data.load import load_records
from agrl.models import load_model, resolve_model_path
from agrl.train.config import AGRLConfig, AgrlSFTConfig, load_config
from agrl.train.grpo import build_grpo_trainer
from agrl.train.sft import run_sft


def matmul_tflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e12


class StepClock(TrainerCallback):
    """Wall time of every optimizer step, its tokens (the trainer's logged `num_tokens`, logged every
    step) and `torch.profiler` over step `profile_step`."""

    def __init__(self, profile_step: int):
        self.profile_step = profile_step
        self.times: list[float] = []
        self.tokens: list[float] = []
        self.profile: torch.profiler.profile | None = None
        self._started = 0.0
        self._seen = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.profile_step:
            self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profile.__enter__()
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._started)
        if self.profile is not None and state.global_step == self.profile_step + 1:
            self.profile.__exit__(None, None, None)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs:  # cumulative: prompt and completion tokens the step trained on
            self.tokens.append(float(logs["num_tokens"]) - self._seen)
            self._seen = float(logs["num_tokens"])


def summary(clock: StepClock, warmup: int, params: int, bound: float, generation: bool) -> dict:
    times, tokens = clock.times[warmup:], clock.tokens[warmup:] or [0.0]
    seconds, per_step = statistics.median(times), statistics.median(tokens)
    # training: 6 N T (forward 2, backward 4); generating the rollouts adds a forward, 2 N T
    flop = (8 if generation else 6) * params * per_step
    return {
        "s_per_step": seconds,
        "steps_timed": len(times),
        "tokens_per_step": per_step,
        "tflop_per_step": flop / 1e12,
        "achieved_tflops": flop / seconds / 1e12,
        "times_the_bf16_bound": seconds / (flop / (bound * 1e12)),
    }


def profile_table(clock: StepClock, rows: int = 15) -> str:
    if clock.profile is None:
        return "(not profiled)"
    return clock.profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esci-us-sample"))
    parser.add_argument("--steps", type=int, default=5, help="steps timed after the warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rl-model", default=None,
                        help="SFT model the RL step starts from (e.g. runs/esci/models/smollm2_sft; default: this "
                             "run's few-step SFT model, whose completions may run longer than a trained judge's)")  # fmt: skip
    parser.add_argument("--sft-only", action="store_true", help="time the SFT step alone")
    parser.add_argument(
        "--sft-args", default="", help="config flags added to the SFT step's (e.g. '--padding_free false')"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench/smollm2_step.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    bound = {"fp32": matmul_tflops(torch.float32), "bf16": matmul_tflops(torch.bfloat16)}
    print(f"matmul bound: fp32 {bound['fp32']:.3f} TFLOP/s, bf16 {bound['bf16']:.3f} TFLOP/s", flush=True)
    model_path = resolve_model_path("smollm2")
    params = sum(p.numel() for p in load_model(model_path)[0].parameters())
    steps = args.warmup + args.steps
    results: dict = {"bound_tflops": bound, "parameters": params, "threads": torch.get_num_threads()}
    profiles = []
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        write_jsonl(train, load_records(args.data))
        common = ["--train_file", str(train), "--max_steps", str(steps), "--save_strategy", "no",
                  "--report_to", "none", "--logging_steps", "1", "--disable_tqdm", "true"]  # fmt: skip
        sft = load_config(
            AgrlSFTConfig,
            config_path("sft_smollm2_esci.yaml"),
            [*common, "--output_dir", f"{tmp}/sft", *args.sft_args.split()],
        )
        clock = StepClock(profile_step=args.warmup)
        run_sft(sft, extra_callbacks=[clock])
        results["sft_lora_bf16"] = summary(clock, args.warmup, params, bound["bf16"], generation=False)
        profiles += ["## LoRA SFT step (self CPU time)", "", "```", profile_table(clock), "```", ""]
        write_json(args.out, results)  # the SFT figures survive an RL step that does not finish
        if not args.sft_only:
            rl_step(args, common, tmp, params, bound, results, profiles)
    for name in ("sft_lora_bf16", "rl_grpo_pr"):
        r = results.get(name)
        if r:
            print(f"{name}: {r['s_per_step']:.2f} s/step, {r['tokens_per_step']:.0f} tokens, "
                  f"{r['achieved_tflops']:.3f} TFLOP/s achieved = {r['times_the_bf16_bound']:.1f}x the bf16 bound's time")  # fmt: skip
    write_json(args.out, results)
    atomic_write_text(args.out.with_name("smollm2_step_profile.md"), "\n".join(profiles))


def rl_step(
    args, common: list[str], tmp: str, params: int, bound: dict, results: dict, profiles: list
) -> None:
    """A GRPO-PR step from `args.rl_model` (or this run's few-step SFT model) into `results`."""
    rl = load_config(AGRLConfig, config_path("grpo_pr_smollm2_esci.yaml"),
                     [*common, "--output_dir", f"{tmp}/rl", "--model_name_or_path", args.rl_model or f"{tmp}/sft"])  # fmt: skip
    trainer = build_grpo_trainer(rl)
    clock = StepClock(profile_step=args.warmup)
    trainer.add_callback(clock)
    trainer.train()
    results["rl_grpo_pr"] = summary(clock, args.warmup, params, bound["bf16"], generation=True)
    profiles += ["## GRPO-PR step (self CPU time)", "", "```", profile_table(clock), "```", ""]


if __name__ == "__main__":
    main()
