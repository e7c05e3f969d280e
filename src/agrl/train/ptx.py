"""Rehearsal loss during RL: the negative log-likelihood of gold references (InstructGPT's "PPO-ptx").

RL on tail-heavy prompts moves the policy away from what SFT taught about the head; a KL term only
looks at the policy's own samples on the RL prompts. This term keeps the model's likelihood of the
SFT gold reasoning (mostly head records) while RL trains: loss = RL loss + `ptx_coef` × NLL of a
batch of references. Batches are a pure function of (seed, step, call), so a resumed run sees the
same batches without extra state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from agrl.rules import load_rulebook
from agrl.train.data import prompt_messages, reference_text

IGNORE = -100


def encode_completion(
    prompt: Sequence[Mapping[str, str]], completion: str, tokenizer: PreTrainedTokenizerBase
) -> tuple[list[int], list[int]]:
    """(input ids, labels) of a chat prompt + its assistant answer; labels are IGNORE on the prompt,
    as in SFT's completion-only loss."""
    messages = [dict(m) for m in prompt]
    answer = [{"role": "assistant", "content": completion}]
    prompt_ids = list(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    )
    full = list(tokenizer.apply_chat_template(messages + answer, tokenize=True, return_dict=False))
    if full[: len(prompt_ids)] != prompt_ids:  # a template that rewrites the prompt once answered
        raise ValueError("ptx: the chat template does not extend the generation prompt with the answer")
    if tokenizer.eos_token_id is not None and full[-1] != tokenizer.eos_token_id:
        full.append(tokenizer.eos_token_id)
    return full, [IGNORE] * len(prompt_ids) + full[len(prompt_ids) :]


def encode_reference(
    record: Mapping, tokenizer: PreTrainedTokenizerBase, args, rulebook=None
) -> tuple[list[int], list[int]]:
    """`encode_completion` of the record's prompt and its gold reference in `args.reasoning_format`."""
    return encode_completion(
        prompt_messages(record, args, rulebook),
        reference_text(record, args.reasoning_format, rulebook),
        tokenizer,
    )


def collate(
    rows: Sequence[tuple[list[int], list[int]]], tokenizer: PreTrainedTokenizerBase, device: torch.device
) -> dict[str, torch.Tensor]:
    """Right-padded tensors of encoded (ids, labels) rows: positions stay as in SFT."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (seq, lab) in enumerate(rows):
        ids[i, : len(seq)], labels[i, : len(lab)], mask[i, : len(seq)] = (
            torch.tensor(seq),
            torch.tensor(lab),
            1,
        )
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


class PtxBatches:
    """Encoded references and the batch for each (step, call): a seeded order, cycled."""

    def __init__(self, records: Sequence[Mapping], tokenizer: PreTrainedTokenizerBase, args, batch_size: int):
        if not records:
            raise ValueError("ptx: no records to rehearse")
        rulebook = load_rulebook(args.rulebook)
        self.examples = [encode_reference(r, tokenizer, args, rulebook) for r in records]
        random.Random(f"agrl/ptx/{args.seed}").shuffle(self.examples)
        self.batch_size, self.tokenizer = batch_size, tokenizer

    def batch(self, index: int, device: torch.device) -> dict[str, torch.Tensor]:
        n = len(self.examples)
        rows = [self.examples[(index * self.batch_size + i) % n] for i in range(self.batch_size)]
        return collate(rows, self.tokenizer, device)


def reference_nll(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean token NLL of the labelled positions (next-token prediction)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE,
    )
