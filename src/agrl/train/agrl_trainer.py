"""AGRLTrainer: TRL's GRPOTrainer plus Adaptive Guided Replay (DESIGN §5), with the smallest override.

Hook points (TRL 1.16, pinned; `tests/test_trl_contract.py` fails loudly if they move):

* `_generate_and_score_completions(inputs)`: serve queued stagnant examples in place of a few
  groups, remember `inputs` for `_generate`, and after TRL has computed advantages apply the
  off-policy weights to guided rows and log the replay metrics.
* `_generate(prompts)`: after TRL's rollouts, find stagnant groups (label accuracy <= tau),
  regenerate k of their rollouts with guidance, and splice the guided completions in *with the
  unguided prompt ids*, so rewards and advantages see them and the loss teaches the unguided
  policy. Sampler logprobs of guided rows are NaN, which TRL's vLLM importance-sampling
  correction and off-policy mask treat as "no correction" rather than zeroing the row.
* `_save_checkpoint` / `_load_optimizer_and_scheduler`: the replay state (levels, queue, RNG)
  travels with every checkpoint, one file per process.
* `compute_loss`: TRL's loss, plus `ptx_coef` x the NLL of a batch of gold references when
  rehearsal is on (`agrl.train.ptx`); the batch is a function of the step, so resuming needs no state.
  With `stuck_sft_coef`, plus that weight x the NLL of the gold references of the prompts this
  generation found stuck (ReLIFT's fine-tuning on what RL cannot learn); they are consumed by the
  step's first loss call, so a resumed run (which generates afresh) needs no state for them either.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from agrl.data.io import atomic_write_text
from agrl.models.generate import generate_ids, left_pad
from agrl.offpolicy import get_weighting
from agrl.prompts import with_hint
from agrl.replay import (
    TRIGGERS,
    ExampleState,
    ReplayState,
    build_guidance,
    dequeue_solved,
    enqueue,
    group_accuracy,
    is_stagnant,
    select_replaced,
    take_from_queue,
    update_example,
    zero_std_groups,
)
from agrl.rewards import label_correct, parse_annotations, score_components, total_reward
from agrl.rules import Rulebook, load_rulebook
from agrl.train.config import AGRLConfig
from agrl.train.cpu_speed import MergedRolloutsGRPOTrainer, merged_lora
from agrl.train.data import load_train_records, reference_text
from agrl.train.ptx import PtxBatches, collate, encode_completion, reference_nll

STATE_FILE = "replay_state_{rank}.json"


@dataclass
class GuidedRow:
    index: int  # row in the local batch
    prefix_len: int  # forced-prefix tokens at the start of the completion
    guided_prompt_ids: list[int] | None  # hint mode: the prompt the rollout was sampled from


def _text_tokenizer(trainer: GRPOTrainer) -> PreTrainedTokenizerBase:
    """The trainer's tokenizer (`processing_class` is typed for any processor; agrl trains text models)."""
    return cast(PreTrainedTokenizerBase, trainer.processing_class)


class AGRLTrainer(MergedRolloutsGRPOTrainer):
    args: AGRLConfig

    def __init__(self, *args, rulebook: Rulebook | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rulebook = rulebook or load_rulebook(self.args.rulebook)
        self.replay_state = ReplayState()
        self._replay_rng = random.Random(f"agrl/{self.args.seed}/{self.accelerator.process_index}")
        self._current_inputs: list[dict] | None = None
        self._guided: list[GuidedRow] = []
        self._replay_counts: Counter = Counter()
        self._rule_triggers: Counter = Counter()
        self._ptx: PtxBatches | None = None
        self._ptx_calls = (-1, 0)  # (step, calls in it): the rehearsal batch is a function of both
        self._stuck_refs: list[tuple[list[int], list[int]]] = []  # encoded gold references, stuck prompts
        if self.args.ptx_coef:
            records = load_train_records(str(self.args.ptx_file))
            random.Random(f"agrl/ptx-records/{self.args.seed}").shuffle(records)
            wanted = (
                self.args.ptx_batch_size
                * max(1, self.args.max_steps)
                * max(1, self.args.steps_per_generation or 1)
            )
            self._ptx = PtxBatches(
                records[:wanted], _text_tokenizer(self), self.args, self.args.ptx_batch_size
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's GRPO loss, plus `ptx_coef` x the NLL of a batch of gold references when rehearsal is on
        and `stuck_sft_coef` x the NLL of this generation's stuck prompts' gold references."""
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not model.training:
            return loss
        if self._ptx is not None:
            step = self.state.global_step
            calls = self._ptx_calls[1] + 1 if self._ptx_calls[0] == step else 0
            self._ptx_calls = (step, calls)
            per_step = max(1, self.args.steps_per_generation or 1)
            nll = reference_nll(model, self._ptx.batch(step * per_step + calls, self.accelerator.device))
            self._metrics["train"]["ptx/nll"].append(nll.item())
            loss = loss + self.args.ptx_coef * nll
        if self._stuck_refs:
            batch = collate(self._stuck_refs, _text_tokenizer(self), self.accelerator.device)
            nll = reference_nll(model, batch)
            self._metrics["train"]["stuck_sft/nll"].append(nll.item())
            self._metrics["train"]["stuck_sft/references"].append(float(len(self._stuck_refs)))
            self._stuck_refs = []
            loss = loss + self.args.stuck_sft_coef * nll
        return loss

    def _stuck_reference(self, row: dict) -> tuple[list[int], list[int]]:
        """The encoded prompt + gold reference of a dataset row (the columns `rl_dataset` writes)."""
        record = {
            "id": row["id"],
            "label": row["label"],
            "rule": row.get("rule") or None,
            "annotations": parse_annotations(row.get("annotations")),
        }
        text = reference_text(record, self.args.reasoning_format, self.rulebook)
        return encode_completion(row["prompt"], text, _text_tokenizer(self))

    # ------------------------------------------------------------------ batch assembly and scoring
    def _generate_and_score_completions(self, inputs):
        replaying = self.model.training and self.args.replay
        self._guided = []
        self._stuck_refs = []
        self._replay_counts = Counter()
        self._rule_triggers = Counter()
        if replaying:
            inputs = self._serve_queue(inputs)
        self._current_inputs = inputs
        output = super()._generate_and_score_completions(inputs)
        if replaying:
            self._finish_guided_rows(output)
            self._log_replay(output)
        self._current_inputs = None
        return output

    @property
    def group_size(self) -> int:
        """Rollouts per prompt (TRL types `num_generations` as optional; GRPOTrainer has set it here)."""
        if self.num_generations is None:
            raise RuntimeError("AGRLTrainer needs num_generations")
        return self.num_generations

    def _serve_queue(self, inputs: list[dict]) -> list[dict]:
        """Replace up to `replay_queue_fraction` of the batch's groups with queued stagnant examples."""
        g = self.group_size
        n_groups = len(inputs) // g
        room = int(n_groups * self.args.replay_queue_fraction)
        taken = take_from_queue(self.replay_state, room) if room and self.replay_state.queue else []
        if not taken:
            return inputs
        inputs = list(inputs)
        for slot, (_, row) in enumerate(taken):
            start = (n_groups - 1 - slot) * g  # the last groups of the batch give way
            inputs[start : start + g] = [dict(row) for _ in range(g)]
        self._replay_counts["from_queue"] += len(taken)
        return inputs

    # ------------------------------------------------------------------ rollouts + guided replay
    def _generate(self, prompts):
        with merged_lora(self.model):  # one LoRA merge for the rollouts and their guided replays
            return self._rollouts_and_replays(prompts)

    def _rollouts_and_replays(self, prompts):
        result = super()._generate(prompts)
        if not (self.model.training and self.args.replay and self._current_inputs is not None):
            return result
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images = (
            result
        )
        inputs = self._current_inputs
        g = self.group_size
        if len(inputs) % g or any(inputs[i]["id"] != inputs[i - i % g]["id"] for i in range(len(inputs))):
            raise RuntimeError("AGRL needs whole prompt groups per process (consecutive rows of one example)")
        labels = [row["label"] for row in inputs]
        correct = label_correct(completions, labels, self.args.reasoning_format)
        weights = self.args.component_weights()
        scores = [
            score_components(
                c,
                row["label"],
                row.get("rule") or None,
                row.get("annotations"),
                self.rulebook,
                self.args.reasoning_format,
            )
            for c, row in zip(completions, inputs)
        ]
        rewards = [total_reward(s, weights) for s in scores]
        success = TRIGGERS.lookup(self.args.replay_trigger)
        accuracy = group_accuracy([success(ok, s) for ok, s in zip(correct, scores)], g)
        self._replay_counts["groups"] += len(accuracy)
        self._replay_counts["zero_before"] += sum(zero_std_groups(rewards, g))
        completion_ids = [list(ids) for ids in completion_ids]
        completions = list(completions)
        new_logprobs = None if logprobs is None else [list(lp) for lp in logprobs]
        masks = None if tool_mask is None else [list(m) for m in tool_mask]
        planned: list[tuple[int, object, dict]] = []  # (row, guidance, dataset row) to regenerate
        for group, acc in enumerate(accuracy):
            start = group * g
            row = inputs[start]
            example_id = str(row["id"])
            before = self.replay_state.examples.get(
                example_id, ExampleState(level=self.args.guidance_start_level)
            )
            self.replay_state.examples[example_id] = update_example(
                before, acc, self.args.replay_tau, self.args.guidance_recover
            )
            if not is_stagnant(acc, self.args.replay_tau):
                dequeue_solved(self.replay_state, example_id)
                continue
            # This trigger is guided at the level the example had; the next one, one level higher.
            guidance = build_guidance(
                parse_annotations(row.get("annotations")),
                row.get("rule") or None,
                row.get("label"),
                before.level,
                self.args.guidance_mode,
                self.rulebook,
            )
            if guidance is None:  # stuck, but the example lacks the ground truth this mode needs
                self._replay_counts["no_guidance"] += 1
                continue
            self._replay_counts["triggered"] += 1
            self._replay_counts[f"level_{guidance.level}"] += 1
            self._rule_triggers[row.get("rule") or "unknown"] += 1
            if self.args.stuck_sft_coef:
                self._stuck_refs.append(self._stuck_reference(row))
            enqueue(self.replay_state, example_id, row, self.state.global_step, self.args.replay_retry_budget)
            for offset in select_replaced(rewards[start : start + g], self.args.k, self._replay_rng):
                planned.append((start + offset, guidance, row))
        rollouts = self._guided_rollouts(
            [(prompts[i], prompt_ids[i], guidance) for i, guidance, _ in planned]
        )
        for (i, _, row), (new_ids, prefix_len, guided_prompt) in zip(planned, rollouts):
            completion_ids[i] = new_ids
            text = _text_tokenizer(self).decode(new_ids, skip_special_tokens=True)
            completions[i] = (
                [{"role": "assistant", "content": text}] if isinstance(completions[i], list) else text
            )
            if new_logprobs is not None:
                new_logprobs[i] = [math.nan] * len(
                    new_ids
                )  # no sampler logprobs: TRL applies no IS correction
            if masks is not None or (prefix_len and not self.args.guided_prefix_loss):
                if masks is None:
                    masks = [[1] * len(ids) for ids in completion_ids]
                keep = 1 if self.args.guided_prefix_loss else 0
                masks[i] = [keep] * prefix_len + [1] * (len(new_ids) - prefix_len)
            self._guided.append(GuidedRow(i, prefix_len, guided_prompt))
            ok = int(label_correct([completions[i]], [row["label"]], self.args.reasoning_format)[0])
            self._replay_counts["guided"] += 1
            self._replay_counts["guided_correct"] += ok
            self._replay_counts[f"guided_level_{guidance.level}"] += 1
            self._replay_counts[f"guided_correct_level_{guidance.level}"] += ok
        if masks is not None:
            masks = [m if len(m) == len(ids) else [1] * len(ids) for m, ids in zip(masks, completion_ids)]
        return prompt_ids, completion_ids, masks, completions, new_logprobs, extra_fields, images, tool_images

    @torch.no_grad()
    def _guided_rollouts(self, items: list[tuple]) -> list[tuple[list[int], int, list[int] | None]]:
        """Guided completions in one batched generate call.

        Each item is (prompt messages, unguided prompt ids, guidance); each result is (completion ids
        including any forced prefix, prefix length, hinted prompt ids or None).
        """
        if not items:
            return []
        tokenizer = _text_tokenizer(self)
        contexts, prefixes, hinted = [], [], []
        for prompt, prompt_ids, guidance in items:
            prefix = (
                tokenizer(guidance.prefix, add_special_tokens=False)["input_ids"]
                if guidance.has_prefix
                else []
            )
            guided_prompt_ids: list[int] | None = None
            if guidance.hint:
                encoded = tokenizer.apply_chat_template(
                    with_hint(prompt, guidance.hint),
                    add_generation_prompt=True,
                    return_dict=True,
                    chat_template=self.chat_template,
                )
                guided_prompt_ids = list(cast(dict[str, Any], encoded)["input_ids"])
            contexts.append(list(guided_prompt_ids or prompt_ids) + prefix)
            prefixes.append(prefix)
            hinted.append(guided_prompt_ids)
        budgets = [max(1, cast(int, self.max_completion_length) - len(p)) for p in prefixes]
        # TRL's own generation path: its sampling settings, and the unwrap/gather that ZeRO-3 and
        # FSDP need before generating.
        config = GenerationConfig(
            **{**self.generation_kwargs, "max_new_tokens": max(budgets)}, disable_compile=True
        )
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                # TRL passes its own config's field, typed `dict | str | None` (a JSON string from the CLI)
                gradient_checkpointing_kwargs=cast(
                    "dict[str, Any] | None", self.args.gradient_checkpointing_kwargs
                ),
            ) as unwrapped,
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
            merged_lora(self.model),
        ):
            generated = generate_ids(unwrapped, tokenizer, contexts, generation_config=config)
        return [
            (prefix + ids[:budget], len(prefix), hint)
            for prefix, ids, budget, hint in zip(prefixes, generated, budgets, hinted)
        ]

    # ------------------------------------------------------------------ off-policy weights, metrics
    def _finish_guided_rows(self, output: dict) -> None:
        if not self._guided:
            return
        rows = [r.index for r in self._guided]
        # Guided rows must keep their weight: TRL's IS ratio (vLLM) is 1 for them by construction.
        if "importance_sampling_ratio" in output:
            output["importance_sampling_ratio"][rows] = 1.0
        advantages = output["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1).expand(-1, output["completion_ids"].shape[1]).clone()
        if get_weighting(self.args.offpolicy_weighting) is not None:
            advantages[rows] = advantages[rows] * self._offpolicy_weights(output)
        # The forced prefix is gold text: a guided row whose continuation went wrong (negative
        # advantage) must not push it down. Its prefix tokens keep only a non-negative advantage;
        # the sampled continuation keeps the full signal.
        for row in self._guided:
            if row.prefix_len:
                advantages[row.index, : row.prefix_len] = advantages[row.index, : row.prefix_len].clamp(
                    min=0.0
                )
        output["advantages"] = advantages

    @torch.no_grad()
    def _offpolicy_weights(self, output: dict) -> torch.Tensor:
        """Per-token weights (stop-gradient) for guided rows: policy shaping or clipped IS ratio."""
        rows = [r.index for r in self._guided]
        completion_ids = output["completion_ids"][rows]
        completion_mask = output["completion_mask"][rows]
        weighting = get_weighting(self.args.offpolicy_weighting)
        if weighting is None:  # "none": guided tokens keep their weight
            return completion_mask.float()
        logits_to_keep = completion_ids.shape[1]
        prompt = torch.cat([output["prompt_ids"][rows], completion_ids], dim=1)
        attention = torch.cat([output["prompt_mask"][rows], completion_mask], dim=1)
        logp, _, _ = self._get_per_token_logps_and_entropies(
            self.model, prompt, attention, logits_to_keep, len(rows)
        )
        # Behaviour log-probs: forced prefix tokens were certain (log 1 = 0); sampled tokens came from the
        # policy itself, on the unguided context (prefix mode) or on the hinted prompt (hint mode).
        behaviour = logp.clone()
        offpolicy = torch.zeros_like(logp, dtype=torch.bool)
        hinted = [j for j, row in enumerate(self._guided) if row.guided_prompt_ids is not None]
        if hinted:  # one batched forward pass over the hinted prompts (left-padded, as TRL pads prompts)
            ids, mask = left_pad(
                _text_tokenizer(self), [self._guided[j].guided_prompt_ids or [] for j in hinted]
            )
            ids = torch.cat([ids.to(logp.device), completion_ids[hinted]], dim=1)
            mask = torch.cat([mask.to(logp.device), completion_mask[hinted]], dim=1)
            hinted_logp, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, mask, logits_to_keep, len(hinted)
            )
            behaviour[hinted] = hinted_logp
            offpolicy[hinted] = True
        for j, row in enumerate(self._guided):
            behaviour[j, : row.prefix_len] = 0.0
            offpolicy[j, : row.prefix_len] = True
        return weighting(logp, behaviour, offpolicy, self.args) * completion_mask

    def _log_replay(self, output: dict) -> None:
        g = self.group_size
        adv = output["advantages"]
        per_row = adv.abs().amax(dim=1) if adv.dim() == 2 else adv.abs()
        zero_after = int((per_row.view(-1, g).amax(dim=1) < 1e-6).sum())
        rule_ids = list(self.rulebook.ids) + ["unknown"]
        c = self._replay_counts
        local = {k: c[k] for k in ("groups", "triggered", "zero_before", "guided", "guided_correct", "level_1",
                                   "level_2", "level_3", "from_queue", "no_guidance")}  # fmt: skip
        local |= {"zero_after": zero_after, "queue": len(self.replay_state.queue)}
        local |= {f"guided_{kind}level_{level}": c[f"guided_{kind}level_{level}"]
                  for level in (1, 2, 3) for kind in ("", "correct_")}  # fmt: skip
        local |= {f"trigger_{r}": self._rule_triggers[r] for r in rule_ids}
        # Every process sends its counters in the same key order; the sum over processes is the step's count.
        keys = list(local)
        summed = self.accelerator.gather(
            torch.tensor([local[k] for k in keys], dtype=torch.float64, device=self.accelerator.device)
        )
        t = dict(zip(keys, summed.view(-1, len(keys)).sum(dim=0).tolist()))
        groups, triggered, guided = t["groups"], t["triggered"], t["guided"]
        metrics = self._metrics["train"]
        metrics["replay/triggered_frac"].append(triggered / groups if groups else 0.0)
        metrics["replay/zero_adv_frac_before"].append(t["zero_before"] / groups if groups else 0.0)
        metrics["replay/zero_adv_frac_after"].append(t["zero_after"] / groups if groups else 0.0)
        # Rates with nothing to count are left out of the step (a NaN would reach the loggers as None);
        # the logged value is the mean over the steps that had something.
        if guided:
            metrics["replay/guided_success"].append(t["guided_correct"] / guided)
        if triggered:
            metrics["replay/level_mean"].append(sum(k * t[f"level_{k}"] for k in (1, 2, 3)) / triggered)
        for level in (1, 2, 3):
            if triggered:
                metrics[f"replay/level_{level}_frac"].append(t[f"level_{level}"] / triggered)
            if t[f"guided_level_{level}"]:
                success = t[f"guided_correct_level_{level}"] / t[f"guided_level_{level}"]
                metrics[f"replay/guided_success_level_{level}"].append(success)
        metrics["replay/from_queue"].append(t["from_queue"])
        metrics["replay/queue_size"].append(t["queue"])
        metrics["replay/no_guidance"].append(t["no_guidance"])
        for rule_id in rule_ids:
            metrics[f"replay/trigger_{rule_id}"].append(t[f"trigger_{rule_id}"])

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = os.path.join(
            self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        self.replay_state.rng_state = _rng_to_json(self._replay_rng.getstate())
        path = os.path.join(folder, STATE_FILE.format(rank=self.accelerator.process_index))
        atomic_write_text(path, json.dumps(self.replay_state.to_json(), sort_keys=True))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE.format(rank=self.accelerator.process_index))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: the checkpoint has no replay state for this process")
        with open(path, encoding="utf-8") as handle:
            self.replay_state = ReplayState.from_json(json.load(handle))
        if self.replay_state.rng_state is not None:
            self._replay_rng.setstate(_rng_from_json(self.replay_state.rng_state))


def _rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(data: list) -> tuple:
    version, internal, gauss = data
    return version, tuple(internal), gauss
