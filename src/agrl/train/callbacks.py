"""Greedy accuracy on held-out splits during training, logged into the trainer's history.

Stability curves (accuracy over steps) come from here. It evaluates without hints, like every
other evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import TrainerCallback

from agrl.evaluate import evaluate
from agrl.models.generate import generate_completions


class AccuracyCallback(TrainerCallback):
    def __init__(
        self,
        splits: Mapping[str, Sequence[Mapping]],
        every_steps: int,
        tokenizer,
        system_prompt: bool = False,
        max_new_tokens: int = 128,
        fmt: str = "think_first",
        rulebook=None,
    ):
        self.splits = splits
        self.every = every_steps
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.fmt = fmt
        self.rulebook = rulebook

    def measure(self, model) -> dict[str, float]:
        logs = {}
        for name, records in self.splits.items():
            texts = generate_completions(
                model,
                self.tokenizer,
                records,
                max_new_tokens=self.max_new_tokens,
                system_prompt=self.system_prompt,
                progress=False,
                rulebook=self.rulebook,
            )
            metrics = evaluate(records, {r["id"]: t[0] for r, t in zip(records, texts)}, fmt=self.fmt)
            logs[f"eval_{name}_accuracy"] = metrics.accuracy
            if metrics.self_consistency is not None:  # None only for bare answers
                logs[f"eval_{name}_self_consistency"] = metrics.self_consistency
            if metrics.tail_solved is not None:
                logs[f"eval_{name}_tail_solved"] = metrics.tail_solved
        return logs

    def _record(self, args, state, model) -> None:
        if not state.is_world_process_zero or model is None:
            return
        logs = self.measure(model)
        state.log_history.append({**logs, "step": state.global_step})

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step == 0:
            self._record(args, state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._record(args, state, model)
