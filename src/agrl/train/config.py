"""Training configs: dataclasses extending TRL's, loadable from YAML, overridable from the CLI.

    agrl train agrl --config configs/agrl_tiny.yaml --learning_rate 5e-5 --replay_k 2

Every field of the TRL config (`output_dir`, `report_to`, `learning_rate`, ...) is accepted as is.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from transformers.hf_argparser import DataClassType
from trl import DPOConfig, GRPOConfig, SFTConfig, TrlParser

from agrl.offpolicy import WEIGHTINGS
from agrl.replay import GUIDANCE_MODES, TRIGGERS
from agrl.rewards import OUTCOME_WEIGHTS, check_weights, default_weights

# CPU-friendly defaults for TRL fields (TRL defaults to bf16 and gradient checkpointing); progress
# bars only on a terminal, so that a log file gets the logged metrics without carriage-return spam.
CPU_DEFAULTS = {
    "bf16": False,
    "gradient_checkpointing": False,
    "report_to": ["tensorboard"],
    "save_only_model": False,
    "disable_tqdm": not sys.stderr.isatty(),
}


@dataclass
class AgrlArguments:
    """What every agrl training stage adds to its TRL config."""

    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": "model folder, hub id (offline), `smollm2`, or `tiny` (build from scratch; SFT only)"
        },
    )
    train_file: str = field(default="runs/data/sft.jsonl", metadata={"help": "JSONL/CSV/Parquet records"})
    rulebook: str | None = field(default=None, metadata={"help": "rulebook YAML (default: the shipped one)"})
    system_prompt: bool = field(
        default=False, metadata={"help": "prepend the system instruction (+ rulebook summary)"}
    )
    rulebook_in_prompt: bool = field(
        default=False, metadata={"help": "include the rulebook summary in the system prompt"}
    )
    reasoning_format: str = field(default="think_first", metadata={"help": "think_first | label_first"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use the first N records"})
    use_peft: bool = field(default=False, metadata={"help": "train LoRA adapters (PEFT)"})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "comma-separated names or all-linear"}
    )
    eval_files: str | None = field(
        default=None, metadata={"help": "split=path,... evaluated greedily during training"}
    )
    eval_every_steps: int = field(default=0, metadata={"help": "0: no accuracy evaluation during training"})
    eval_max_samples: int = 200
    compact_logprobs: bool = field(
        default=False,
        metadata={
            "help": "score only the loss's tokens in TRL's log-prob head on CPU, as TRL does on CUDA "
            "(agrl.train.cpu_speed): the same loss to float rounding, faster steps; off by default so "
            "the ShopRules results stay reproducible to the bit until they are retrained with it"
        },
    )


@dataclass
class AgrlSFTConfig(AgrlArguments, SFTConfig):
    """SFT on the gold reasoning (completion-only loss)."""

    tiny_vocab_files: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated record files the tiny tokenizer's vocabulary is built from (default: train_file)"
        },
    )
    tiny_hidden: int = 192
    tiny_layers: int = 4
    tiny_heads: int = 6
    tiny_intermediate: int = 512
    class_balance: float = field(
        default=0.0,
        metadata={
            "help": "class-balanced SFT: draw the training records with replacement, a record of class c with "
            "weight (n_rarest / n_c) ** this, as many draws per epoch as records (0: off, the plain shuffle; "
            "1: every class equally often; agrl.train.data.ClassBalancedSampler)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.class_balance < 0:
            raise ValueError(f"class_balance {self.class_balance}: must be >= 0")


@dataclass
class AgrlDPOConfig(AgrlArguments, DPOConfig):
    """DPO on prompt/chosen/rejected pairs (see `agrl.train.dpo.build_pairs`)."""


@dataclass
class AGRLConfig(AgrlArguments, GRPOConfig):
    """GRPO with rule-aware rewards and Adaptive Guided Replay.

    `replay: false` gives GRPO-PR (rule-aware rewards, no replay); `reward_mode: outcome` with replay
    gives the replay-only ablation; `reward_mode: outcome` without replay is plain GRPO.
    """

    reward_mode: str = field(default="rule_aware", metadata={"help": "rule_aware | outcome"})
    reward_component_weights: str | None = field(
        default=None,
        metadata={
            "help": "JSON object component -> weight (default: each registered component's weight, agrl.rewards.REGISTRY)"
        },
    )
    replay: bool = field(default=True, metadata={"help": "adaptive guided replay on stagnant groups"})
    replay_tau: float = field(
        default=0.0, metadata={"help": "a group is stagnant when its accuracy (by replay_trigger) <= tau"}
    )
    replay_trigger: str = field(
        default="label",
        metadata={
            "help": "a registered trigger, what a right rollout is: label | grounded (right label on the gold checks; agrl.replay.TRIGGERS)"
        },
    )
    replay_k: int | None = field(
        default=None, metadata={"help": "guided rollouts per stagnant group (default G/4)"}
    )
    guidance_mode: str = field(
        default="prefix",
        metadata={"help": "a registered guidance mode: prefix | hint (agrl.replay.GUIDANCE_MODES)"},
    )
    guidance_start_level: int = 1
    guidance_recover: float = field(
        default=0.5, metadata={"help": "unguided accuracy at which the level falls"}
    )
    guided_prefix_loss: bool = field(default=True, metadata={"help": "forced-prefix tokens carry loss"})
    offpolicy_weighting: str = field(
        default="none",
        metadata={
            "help": "a registered weighting: none | shaping (pi/(pi+gamma)) | clip (agrl.offpolicy.WEIGHTINGS)"
        },
    )
    shaping_gamma: float = 0.1
    offpolicy_clip: float = field(
        default=2.0, metadata={"help": "upper clip of the importance ratio (clip mode)"}
    )
    replay_queue_fraction: float = field(
        default=0.25, metadata={"help": "max share of a batch's groups served from the replay queue"}
    )
    replay_retry_budget: int = 3
    ptx_coef: float = field(
        default=0.0,
        metadata={
            "help": "weight of the NLL of gold references (ptx_file) added to the RL loss (0: off; agrl.train.ptx)"
        },
    )
    ptx_file: str | None = field(
        default=None,
        metadata={"help": "records whose gold references are rehearsed (e.g. the SFT train file)"},
    )
    ptx_batch_size: int = field(default=8, metadata={"help": "references per loss computation"})
    stuck_sft_coef: float = field(
        default=0.0,
        metadata={
            "help": "weight of the NLL of the gold references of the batch's stuck prompts (the replay "
            "trigger fired and ground truth exists), added to the RL loss of that step: fine-tuning on "
            "what RL cannot learn, as in ReLIFT (0: off; needs replay)"
        },
    )
    label_balance: float = field(
        default=0.0,
        metadata={
            "help": "class-balanced label reward: the label component scaled by (n_rarest / n_class) ** this, "
            "from the train file's labels (0: off, 1: inverse frequency; agrl.rewards.class_balance_weights)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward_mode not in ("rule_aware", "outcome"):
            raise ValueError(f"reward_mode: expected rule_aware or outcome, got {self.reward_mode!r}")
        registries = (
            ("guidance_mode", GUIDANCE_MODES),
            ("offpolicy_weighting", WEIGHTINGS),
            ("replay_trigger", TRIGGERS),
        )
        for name, registry in registries:
            try:
                registry.lookup(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        if self.replay and self.per_device_train_batch_size % self.group_size:
            # Replay decides per group; a group split over processes would be judged on a fraction.
            raise ValueError(
                f"replay needs whole groups per process: per_device_train_batch_size "
                f"({self.per_device_train_batch_size}) must be a multiple of num_generations ({self.num_generations})"
            )
        if self.replay and self.use_vllm:
            # Unguided rollouts could come from vLLM, but guided ones are generated with the trainer's
            # own model: refuse rather than silently mix two samplers.
            raise ValueError(
                "replay with use_vllm is not supported yet: guided rollouts are generated with "
                "transformers; set use_vllm false (or replay false: GRPO-PR runs on vLLM)"
            )
        if self.ptx_coef < 0 or (self.ptx_coef > 0 and not self.ptx_file):
            raise ValueError(f"ptx_coef {self.ptx_coef}: needs a ptx_file and a weight >= 0")
        if self.stuck_sft_coef < 0 or (self.stuck_sft_coef > 0 and not self.replay):
            raise ValueError(
                f"stuck_sft_coef {self.stuck_sft_coef}: must be >= 0, and > 0 needs replay (it finds the stuck prompts)"
            )
        if self.label_balance < 0:
            raise ValueError(f"label_balance {self.label_balance}: must be >= 0")
        self.component_weights()  # validate early

    def component_weights(self) -> dict[str, float]:
        if self.reward_mode == "outcome":
            return dict(OUTCOME_WEIGHTS)
        weights = (
            json.loads(self.reward_component_weights) if self.reward_component_weights else default_weights()
        )
        try:
            return check_weights(weights)
        except ValueError as exc:
            raise ValueError(f"reward_component_weights: {exc}") from None

    @property
    def group_size(self) -> int:
        """`num_generations`, which TRL's own `__post_init__` has checked to be a number."""
        if self.num_generations is None:
            raise ValueError("num_generations is not set")
        return self.num_generations

    @property
    def k(self) -> int:
        return self.replay_k if self.replay_k is not None else max(1, self.group_size // 4)


C = TypeVar("C")


def _keys(leftovers: list[str]) -> list[str]:
    """The field names in TrlParser's leftovers, which it returns as ["--key", "value", ...]."""
    return sorted(k.removeprefix("--") for k in leftovers[::2])


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None, **defaults
) -> C:
    """A config of type `cls` from CPU defaults, then `defaults`, then YAML `path`, then CLI `overrides`.

    Parsed by TRL's `TrlParser` (`--config path` plus the overrides), so a YAML `env:` mapping sets
    environment variables as in TRL's own scripts.
    """
    parser = TrlParser(DataClassType(cls))
    # TrlParser's lowest layer is the YAML file: CPU defaults and the caller's go below it as parser defaults.
    unknown = parser.set_defaults_with_config(**(CPU_DEFAULTS | defaults))
    if unknown:
        raise ValueError(f"load_config: unknown default(s) {_keys(unknown)} for {cls.__name__}")
    args = list(overrides or [])
    if path is not None:
        args = ["--config", str(path), *args]
    if not sys.stderr.isatty():
        from datasets import disable_progress_bars

        disable_progress_bars()
    try:
        # Leftovers come back separately rather than as TrlParser's error, which names neither the
        # file nor a fix that applies here (it suggests `fail_with_unknown_args=False`).
        config, from_file, from_cli = parser.parse_args_and_config(
            args, return_remaining_strings=True, separate_remaining_strings=True
        )
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read config: {exc}") from exc
    if from_file:
        raise ValueError(f"{path}: unknown config field(s) {_keys(from_file)} for {cls.__name__}")
    if from_cli:
        raise ValueError(f"unknown argument(s) {from_cli} for {cls.__name__}")
    return config
