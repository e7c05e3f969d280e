"""CPU training speed-ups that keep the math: what `bench/smollm2_step.py`'s profile pointed at.

- `compact_logprobs`: TRL's chunked log-prob head scores *every* position off Triton devices (on
  Neuron a varying number of valid positions would recompile; on CPU nothing recompiles). For a
  label-first SFT row most positions are prompt, masked out of the loss, so scoring them is waste:
  the 49k-vocabulary projection and its fp32 log-softmax ran on ~5x the tokens the loss reads. With
  the patch only the valid positions are scored, as TRL does on CUDA; the loss, entropy and
  token-accuracy values are the same numbers (masked positions are zeroed either way).
- `merged_lora`: a LoRA policy generating its rollouts un-merged runs two extra matmuls (and its
  dropout) per adapted layer per decoded token; merged, the base matmul alone (and no dropout: the sampled policy is the one trained). The base weights are
  restored bit for bit afterwards (a copy, not `unmerge_adapter`'s subtraction, which rounds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from trl import GRPOTrainer

log = logging.getLogger(__name__)


_compact = {"on": False}  # read by the patched predicate: runs in one process may differ


def compact_logprobs(enabled: bool = True) -> bool:
    """Whether TRL's chunked log-prob head scores only the loss's positions on CPU too (`enabled`) or
    every position (TRL's own choice off Triton devices). Installs the switch once; returns whether it
    is in place (False, with a warning, when TRL has moved the hook)."""
    _compact["on"] = enabled
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - TRL is a pinned dependency
        return False
    current = getattr(trl_utils, "_use_triton", None)
    if current is None:
        log.warning("trl.trainer.utils._use_triton is gone: CPU log-probs score every position")
        return False
    if getattr(current, "_agrl_compact", False):
        return True

    def compact(device: torch.device) -> bool:
        # `compact` in TRL's fused head: on CPU when switched on; elsewhere TRL's own choice.
        return (_compact["on"] and device.type == "cpu") or current(device)

    compact._agrl_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact
    return True


@contextmanager
def merged_lora(model: Any) -> Iterator[None]:
    """Within the block, a PEFT LoRA model's adapters are merged into its base weights (a merged layer
    runs its base matmul alone, so no adapter dropout either); afterwards its weights are as before.
    The train/eval mode is left alone: TRL files its metrics under it. Anything that is not a PEFT
    LoRA model passes through unchanged. A nested block passes through: one merge (one copy of the
    weights) serves the outer block."""
    layers: list[Any] = [m for m in model.modules() if hasattr(m, "merge") and hasattr(m, "base_layer")]
    if not layers or not hasattr(model, "merge_adapter") or getattr(model, "_agrl_merged", False):
        yield  # nested (AGRL's guided replays inside its rollouts): the outer block merged already
        return
    saved = [(m.base_layer.weight, m.base_layer.weight.detach().clone()) for m in layers]
    model.merge_adapter()
    model._agrl_merged = True
    try:
        yield
    finally:
        model._agrl_merged = False
        for m in layers:  # peft's bookkeeping: the adapters count as unmerged again
            m.merged_adapters = []
        with torch.no_grad():
            for weight, original in saved:
                weight.copy_(original)


class MergedRolloutsGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer whose rollouts come from the merged LoRA policy (`merged_lora`);
    with full fine-tuning it is GRPOTrainer unchanged."""

    def _generate(self, prompts):
        with merged_lora(self.model):
            return super()._generate(prompts)
