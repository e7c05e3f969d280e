"""Batched generation of judgements: the one path used by evaluation, predict, serve and DPO sampling."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from tqdm import tqdm
from transformers import (
    BatchEncoding,
    GenerationConfig,
    GenerationMixin,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from agrl.prompts import build_messages
from agrl.rules import Rulebook

ANSWER_END = "</answer>"


def decode_text(tokenizer: PreTrainedTokenizerBase, ids: list[int], **kwargs: Any) -> str:
    """`tokenizer.decode` of one sequence, typed as what it returns then: a str (the annotation also
    admits the list of strings a batch of sequences decodes to)."""
    return cast(str, tokenizer.decode(ids, **kwargs))


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping],
    system_prompt: bool = False,
    rulebook: Rulebook | None = None,
) -> list[list[int]]:
    # return_dict=True: a BatchEncoding (the annotation admits every return_* combination's type).
    return [
        cast(
            BatchEncoding,
            tokenizer.apply_chat_template(
                build_messages(r, rulebook=rulebook, system=system_prompt),
                add_generation_prompt=True,
                return_dict=True,
            ),
        )["input_ids"]
        for r in records
    ]


def left_pad(
    tokenizer: PreTrainedTokenizerBase, sequences: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask) of token-id sequences left-padded to the longest, as tensors.

    Left, whatever `tokenizer.padding_side` says: the last position of every row must be its last
    real token (where generation continues and where a prompt's next-token logits are read).
    """
    batch = tokenizer.pad(
        {"input_ids": [list(s) for s in sequences]}, padding=True, padding_side="left", return_tensors="pt"
    )
    return batch["input_ids"], batch["attention_mask"]


@torch.no_grad()
def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 1.0,
    num_return_sequences: int = 1,
    eos_token_ids: Sequence[int] | None = None,
    generation_config: GenerationConfig | None = None,
    stop_after_answer: bool = False,
    abandoned: Callable[[], bool] | None = None,
    logits_processor: LogitsProcessorList | None = None,
) -> list[list[int]]:
    """Completion ids for prompts of token ids (left-padded together), cut after the first eos.

    `abandoned` (checked after every decoding step) ends the whole batch early when it returns True:
    a server's batch whose every client has gone stops costing compute at once.

    `generation_config` (a trainer's sampling settings) replaces the simple knobs when given.
    `stop_after_answer` ends each completion at its first `</answer>` (label-first early stop: the
    label is known after a handful of tokens, the reasoning after it is skipped).
    `logits_processor` goes to `generate` (after its own processors; the judge records logits with it).
    """
    input_ids, attention = left_pad(tokenizer, prompts)
    eos = list(eos_token_ids) if eos_token_ids else [tokenizer.eos_token_id]
    if generation_config is None:
        settings = {"do_sample": True, "temperature": temperature} if do_sample else {"do_sample": False}
        generation_config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_return_sequences,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
            **settings,
        )
    else:
        eos = (
            list(generation_config.eos_token_id) if isinstance(generation_config.eos_token_id, list) else eos
        )
    width = input_ids.shape[1]
    criteria = ([_AnswerEnd(tokenizer, width)] if stop_after_answer else []) + (
        [_Abandoned(abandoned)] if abandoned is not None else []
    )
    stop = StoppingCriteriaList(criteria) if criteria else None
    # PreTrainedModel does not declare generate; GenerationMixin, which causal-LM classes add, does.
    out = cast(GenerationMixin, model).generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention.to(model.device),
        generation_config=generation_config,
        stopping_criteria=stop,
        logits_processor=logits_processor,
    )
    completions = []
    for row in out[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in eos), None)
        row = row[: cut + 1] if cut is not None else row
        completions.append(_cut_after_answer(tokenizer, row) if stop_after_answer else row)
    return completions


class _AnswerEnd(StoppingCriteria):
    """Done once the generated text holds `</answer>` (transformers' `stop_strings` needs a tokenizer
    whose vocabulary it can clean, which word-level tokenizers such as the tiny model's are not)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_width: int):
        self.tokenizer = tokenizer
        self.width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width :], skip_special_tokens=True)
        done = torch.tensor([ANSWER_END in t for t in texts], dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, done)  # torch types every tensor as Tensor, whatever its dtype


class _Abandoned(StoppingCriteria):
    """Every row done once `abandoned()` says nobody waits for the batch any more."""

    def __init__(self, abandoned: Callable[[], bool]):
        self.abandoned = abandoned

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = torch.full((input_ids.shape[0],), self.abandoned(), dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, done)


def _cut_after_answer(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[int]:
    """Drop what a batch-mate's longer generation left after this row's `</answer>` (padding, eos)."""
    if ANSWER_END not in decode_text(tokenizer, ids, skip_special_tokens=True):
        return ids
    for end in range(1, len(ids) + 1):
        if decode_text(tokenizer, ids[:end], skip_special_tokens=True).endswith(ANSWER_END):
            return ids[:end]
    return ids


def generate_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping],
    batch_size: int = 64,
    max_new_tokens: int = 128,
    system_prompt: bool = False,
    do_sample: bool = False,
    temperature: float = 1.0,
    num_return_sequences: int = 1,
    progress: bool = True,
    desc: str = "generate",
    rulebook: Rulebook | None = None,
    stop_after_answer: bool = False,
    prompts: Sequence[Sequence[int]] | None = None,
    seed: int | None = None,
) -> list[list[str]]:
    """For each record, `num_return_sequences` completions (decoded text, special tokens dropped).

    `prompts`: the records' prompts already encoded (`encode_prompts` with the same system prompt
    and rulebook), for a caller that needed their lengths first; encoded here when None.
    `seed`: sample from torch's RNG seeded with it, for this call only (the caller's state of the CPU
    RNG and, for a model on an accelerator, of its device's RNG is restored), so what is sampled does
    not depend on what ran before in the process."""
    if seed is not None:
        device = model.device  # the CPU RNG is always forked; an accelerator's only when the model is on it
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type):
            torch.manual_seed(seed)
            return generate_completions(
                model, tokenizer, records, batch_size=batch_size, max_new_tokens=max_new_tokens,
                system_prompt=system_prompt, do_sample=do_sample, temperature=temperature,
                num_return_sequences=num_return_sequences, progress=progress, desc=desc,
                rulebook=rulebook, stop_after_answer=stop_after_answer, prompts=prompts,
            )  # fmt: skip
    was_training = model.training
    model.eval()
    if prompts is None:
        prompts = encode_prompts(tokenizer, records, system_prompt, rulebook)
    elif len(prompts) != len(records):
        raise ValueError(f"{len(prompts)} encoded prompts for {len(records)} records")
    # Similar lengths in a batch waste less padding; results go back in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[str]] = [[] for _ in records]
    # disable=None: tqdm stays quiet when stderr is not a terminal (no carriage-return spam in logs).
    bar = tqdm(total=len(records), desc=desc, disable=None if progress else True, leave=False)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids = generate_ids(
            model,
            tokenizer,
            [prompts[i] for i in chunk],
            max_new_tokens,
            do_sample,
            temperature,
            num_return_sequences,
            stop_after_answer=stop_after_answer,
        )
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        for j, i in enumerate(chunk):
            results[i] = texts[j * num_return_sequences : (j + 1) * num_return_sequences]
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return results
