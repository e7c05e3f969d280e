"""Arms side by side: `agrl reproduce --jobs 2` against `--jobs 1`, the same comparison in one run.

`--jobs 1` trains every warm start and arm in this process with torch's default threads (what
`agrl reproduce` does by default); `--jobs 2` trains them in two spawned worker processes with the
threads shared out (`agrl.experiments.parallel`). The workload is the reproduce's at a smaller
budget: default-scale ShopRules, `--warm_starts` warm starts (a short SFT each, then the gate), and
the shipped configs of `--arms` at `--seeds`, evaluated on every split. Prints the wall time of
each, the ratio, and each run's mean `w_eval` accuracy (the two need not agree to the digit: a
unit's floating-point results depend on its thread count). Do not run it beside another job.

    .venv/bin/python bench/parallel_arms.py [--rl_steps 20 --sft_steps 100 --seeds 0 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from agrl.data.io import write_json
from agrl.experiments.budgets import ComparisonBudget
from agrl.experiments.parallel import threads_per_job
from agrl.experiments.provenance import provenance
from agrl.experiments.shoprules import run_comparison

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=["sft_gold", "grpo_pr", "agrl"])
    parser.add_argument("--warm_starts", type=int, default=2)
    parser.add_argument("--rl_steps", type=int, default=20)
    parser.add_argument("--sft_steps", type=int, default=100)
    parser.add_argument("--eval_n", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="the worker processes of the parallel run")
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/parallel_arms.json")
    args = parser.parse_args()
    budget = ComparisonBudget(rl_steps=args.rl_steps, eval_n=args.eval_n, curve_every=max(1, args.rl_steps // 2),
                              curve_n=50, gate_prompts=30, warm_starts=args.warm_starts)  # fmt: skip
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            started = time.perf_counter()
            summary = run_comparison(Path(tmp) / f"jobs{jobs}", "bench", "bench/parallel_arms.py", args.seeds,
                                     "default", replace(budget, jobs=jobs), tuple(args.arms),
                                     ["--disable_tqdm", "true"], ["--disable_tqdm", "true"],
                                     {"max_steps": args.sft_steps})  # fmt: skip
            seconds = time.perf_counter() - started
            w_eval = {arm: summary["methods"][arm]["w_eval/accuracy"]["mean"] for arm in args.arms}
            runs[f"jobs{jobs}"] = {"jobs": jobs, "threads_each": threads_per_job(jobs) if jobs > 1 else torch.get_num_threads(),
                                   "seconds": round(seconds, 1), "w_eval_accuracy": w_eval}  # fmt: skip
            print(f"--jobs {jobs}: {seconds / 60:.2f} min, w_eval accuracy {w_eval}", flush=True)
    one, many = runs["jobs1"]["seconds"], runs[f"jobs{args.jobs}"]["seconds"]
    print(f"\n--jobs {args.jobs} vs --jobs 1: {one / many:.2f}x faster ({many:.0f} s vs {one:.0f} s)")
    write_json(args.out, {"speedup": round(one / many, 3), "runs": runs, "seeds": args.seeds, "arms": args.arms,
                          "warm_starts": args.warm_starts, "rl_steps": args.rl_steps, "sft_steps": args.sft_steps,
                          "eval_n": args.eval_n, "cpu": platform.processor() or platform.machine(),
                          "torch_threads": torch.get_num_threads(), "provenance": provenance()})  # fmt: skip


if __name__ == "__main__":
    main()
