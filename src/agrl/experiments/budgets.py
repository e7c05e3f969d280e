"""What each experiment spends: dataclasses whose field metadata is their command-line help.

`agrl reproduce`, `agrl demo` and `agrl esci` take these fields as flags through `HfArgumentParser`
(no torch import: the CLI stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from transformers import HfArgumentParser

B = TypeVar("B")


# fmt: off
@dataclass
class ComparisonBudget:
    """The knobs of `agrl reproduce` and `agrl demo` (ShopRules)."""

    rl_steps: int = field(default=200, metadata={"help": "optimizer steps of every RL arm (and of the SFT-on-gold control)"})
    prompts_per_step: int = field(default=4, metadata={"help": "prompts per RL step (the RL configs' batch / num_generations)"})
    eval_n: int = field(default=500, metadata={"help": "records per evaluation split (b_eval, w_eval, tail)"})
    curve_every: int = field(default=20, metadata={"help": "tail-solved learning curve: evaluate every N steps"})
    curve_n: int = field(default=100, metadata={"help": "fixed tail records of the learning curve"})
    dpo_steps: int = field(default=200, metadata={"help": "DPO optimizer steps"})
    gate_prompts: int = field(default=120, metadata={"help": "luck-proof tail-rule rl prompts sampled for the stuck-rate gate"})
    gate_samples: int = field(default=8, metadata={"help": "samples per prompt for the stuck-rate gate"})
    rl_tail_share: float | None = field(default=None, metadata={"help": "share of tail-rule prompts in every RL arm's prompts (default: rl's own mix, 60 percent); the rest is head rehearsal"})
    ptx_coef: float = field(default=3.0, metadata={"help": "every RL arm: weight of the NLL of `sft` gold references added to its loss (rehearsal; agrl.train.ptx); the control trains on as many `sft` references mixed in"})
    ptx_batch_size: int = field(default=8, metadata={"help": "`sft` references rehearsed per RL step (and added to each control batch)"})
    control_step_factor: float = field(default=3.5, metadata={"help": "SFT-on-gold control steps = this x rl_steps: the RL arms' training tokens (rollouts and rehearsal) over the control's per step (measured at 200 steps: 745k vs 212k)"})
    warm_starts: int = field(default=2, metadata={"help": "SFT warm starts (data seed and SFT seed w = 0, 1, ...); the seeds go to them in blocks (agrl demo: 1)"})
    rl_head_mix: str = field(default="rl", metadata={"help": "with rl_tail_share: head rehearsal in rl's head proportions (rl) or the natural mix's (natural: mostly exact matches)"})
    merge_alpha: float | None = field(default=None, metadata={"help": "also evaluate AGRL and the control merged with their SFT start, (1 - a) x SFT + a x arm (agrl.train.merge), as the rows agrl@a and sft_gold@a (default: off)"})
    jobs: int = field(default=1, metadata={"help": "worker processes that train warm starts and arms side by side, the cores shared out between them (agrl.experiments.parallel; 1: one process with torch's default threads). Results depend on the threads per process, not on the order units run in"})


DEMO_BUDGET = ComparisonBudget(rl_steps=60, eval_n=300, curve_every=15, curve_n=60, gate_prompts=60, warm_starts=1)
DEMO_MINUTES = 8  # `make demo`'s time target on 2 cores (the reproduce's is 120)


@dataclass
class EsciBudget:
    """What `agrl esci` spends (the README's Real data section has the measured stage times: the full
    default run on the 60-query evaluation folder does not fit 150 min on 2 cores)."""

    dev_fraction: float = field(default=0.4, metadata={"help": "share of queries in dev (a hash of the query text; 0.4 of 30 queries -> 12)"})
    sft_epochs: float = field(default=1.0, metadata={"help": "SmolLM2 SFT epochs over the train split"})
    rl_steps: int = field(default=30, metadata={"help": "GRPO-PR and AGRL steps (4 prompts x 4 rollouts each)"})
    probe_steps: int = field(default=3, metadata={"help": "steps timed per variant in the LoRA / full / bf16 probe"})
    tiny_steps: int = field(default=400, metadata={"help": "SFT steps of the tiny from-scratch floor"})
    peer_epochs: int = field(default=4, metadata={"help": "cross-encoder epochs"})
    eval_batch: int = field(default=32, metadata={"help": "records per generate call on dev"})
    full_ft: bool = field(default=True, metadata={"help": "also train SmolLM2 fully for the same CPU time as LoRA SFT (true/false, 1/0)"})
    think_first: bool = field(default=True, metadata={"help": "also train SmolLM2 think-first (true/false, 1/0)"})
    cv_folds: int = field(default=2, metadata={"help": "query folds of the training folder on which the SFT warm start is chosen (esci.CV_GRID: LoRA 1/2 epochs, full, without check lines, class-balanced draws); 0: LoRA 1 epoch without CV"})
    adherence_n: int = field(default=300, metadata={"help": "dev rows on which every LLM judge writes its whole reasoning (rule adherence against the annotator; 0: skip)"})
    rl_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds of GRPO-PR, AGRL and the cross-encoder peer (RL arms from the one SFT model, paired by seed)"})
    label_balance: float = field(default=1.0, metadata={"help": "GRPO-PR and AGRL: class-balanced label reward, (n_rarest / n_class) ** this (0: off; agrl.rewards.class_balance_weights)"})
    seed: int = field(default=0, metadata={"help": "seed of every trained arm"})
    limit: int = field(default=0, metadata={"help": "keep the first N train and N dev rows (0: all; for smoke runs)"})
# fmt: on


def budget_parser(cls: type) -> argparse.ArgumentParser:
    """A parent parser with one flag per field of `cls` (help from the field metadata)."""
    return HfArgumentParser(cls, add_help=False)  # type: ignore[arg-type]  # any dataclass type


def budget_flags(cls: type, values: Mapping[str, Any]) -> str:
    """The flags of `budget_parser(cls)` that give back `values` (e.g. a summary's `budget`): one per
    field that differs from its default, so that a report's command line is the run's own."""
    flags = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in values:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = values[f.name]
        if value == default:
            continue
        if isinstance(default, bool):  # HfArgumentParser: --no_<field> turns a True default off
            flags.append(f"--{f.name}" if value else f"--no_{f.name}")
        elif isinstance(value, list | tuple):
            flags.append(" ".join([f"--{f.name}", *map(str, value)]))
        else:
            flags.append(f"--{f.name} {value}")
    return " ".join(flags)


def budget_from(cls: type[B], namespace: argparse.Namespace) -> B:
    """The budget the parsed flags of `budget_parser(cls)` describe."""
    values: dict[str, Any] = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    return cls(**values)
