"""Grade probabilities and batched judging: the label-token distribution behind CumPT and serving.

The model states its grade as the first token it writes after the ``<answer>`` tag (after any
whitespace-only tokens a BPE tokenizer puts in between: SmolLM2 writes ``<answer> 3`` as
``< answer > Ġ 3``; the tiny word-level tokenizer as ``<answer> ▁3``). Its next-token distribution at
that position, renormalised over the four grade tokens, is the grade distribution that
:func:`agrl.evaluate.cumpt` turns into a graded score and a tier.

:func:`judge` runs the whole serving path on a batch of records:

* ``early_stop=False``: greedy generation of the full completion (batched, left padding). The grade
  distribution is read where the completion writes its answer, from the logits generation computed
  there (recorded for the four grade tokens at every step: no second pass over prompt + completion;
  a completion cut right after its tag is scored by one forward pass); the label is the one the
  completion states, the reasoning is parsed strictly.
* ``early_stop=True`` (label-first serving): nothing is generated. The ``<answer>`` tag (plus the
  whitespace token(s) the tokenizer puts before a grade) is forced as the start of the completion
  and one forward pass reads the grade distribution at the next position. The label is the most
  likely of the four grades; there is no reasoning. This is what a label-first model would write
  first, so it is meant for models trained with ``fmt="label_first"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from agrl.cumpt import cumpt
from agrl.models.generate import decode_text, encode_prompts, generate_ids, left_pad
from agrl.reasoning import FORMATS, Reasoning, parse_reasoning
from agrl.rules import GRADES, Rulebook, default_rulebook

ANSWER_TAG = "<answer>"


def _suffix_after_tag(tokenizer: PreTrainedTokenizerBase, grade: int) -> list[int]:
    base = tokenizer(ANSWER_TAG, add_special_tokens=False)["input_ids"]
    full = tokenizer(f"{ANSWER_TAG} {grade}", add_special_tokens=False)["input_ids"]
    if full[: len(base)] != base:
        raise ValueError(
            f"the tokenizer splits {ANSWER_TAG!r} differently when a grade follows it "
            f"({base} vs {full}); cannot locate the grade token"
        )
    return full[len(base) :]


def _grade_layout(tokenizer: PreTrainedTokenizerBase) -> tuple[dict[int, int], list[int]]:
    """({grade: token id}, whitespace lead ids between the tag and the grade)."""
    ids: dict[int, int] = {}
    leads: list[list[int]] = []
    for g in GRADES:
        suffix = _suffix_after_tag(tokenizer, g)
        if not suffix:
            raise ValueError(f"the tokenizer writes nothing for grade {g} after {ANSWER_TAG!r}")
        token, lead = suffix[-1], suffix[:-1]
        decoded = decode_text(tokenizer, [token]).strip()
        if decoded != str(g):
            raise ValueError(
                f"grade {g} is not a single token after {ANSWER_TAG!r}: its tokens {suffix} decode to "
                f"{decode_text(tokenizer, suffix)!r} (last token alone: {decoded!r})"
            )
        if lead and decode_text(tokenizer, lead).strip():
            raise ValueError(f"grade {g} is preceded by non-whitespace tokens {lead} after {ANSWER_TAG!r}")
        ids[g] = token
        leads.append(lead)
    if len(set(ids.values())) != len(GRADES):
        raise ValueError(f"the grades do not map to distinct tokens: {ids}")
    if any(lead != leads[0] for lead in leads):
        raise ValueError(f"the tokens between {ANSWER_TAG!r} and a grade differ by grade: {leads}")
    return ids, leads[0]


def grade_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[int, int]:
    """The token id of each grade 1-4 as the model writes it right after ``<answer>``.

    Derived by tokenizing ``"<answer> {g}"`` against ``"<answer>"``, so it works for the tiny
    word-level tokenizer (grade token ``▁g``) and for BPE tokenizers (SmolLM2: ``Ġ`` then ``g``).
    Raises ValueError when a grade is not one distinct token.
    """
    return _grade_layout(tokenizer)[0]


def answer_prefix_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``<answer>`` plus the whitespace token(s) before a grade: the forced prefix of early stopping."""
    _, lead = _grade_layout(tokenizer)
    return tokenizer(ANSWER_TAG, add_special_tokens=False)["input_ids"] + lead


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")


def _target_tag(text: str, fmt: str) -> int | None:
    """Number (1-based) of the ``<answer>`` tag holding the grade: label-first the first, think-first the last."""
    total = text.count(ANSWER_TAG)
    if total == 0:
        return None
    return 1 if FORMATS[fmt][0] == "answer" else total


def _offsets(tokenizer: PreTrainedTokenizerBase, text: str, ids: list[int]) -> list[tuple[int, int]] | None:
    """Character spans of `ids` in `text`, their decoding; None when they cannot be trusted."""
    if not tokenizer.is_fast:
        return None
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    # Re-encoding the decoded text need not give the generated ids back (a model may sample a
    # non-canonical split): only then are the offsets the ids' own.
    return [tuple(span) for span in encoding["offset_mapping"]] if encoding["input_ids"] == ids else None


def answer_position(
    tokenizer: PreTrainedTokenizerBase, completion_ids: Sequence[int], fmt: str
) -> int | None:
    """Index in `completion_ids` where the completion writes its grade, None without an answer tag.

    The index may equal ``len(completion_ids)`` (the completion ends right after the tag): the grade is
    then the next token. Label-first reads the first ``<answer>``, think-first the last. The grade
    token is the first non-whitespace token after the first token whose text completes the tag.
    """
    _check_fmt(fmt)
    ids = list(completion_ids)
    text = decode_text(tokenizer, ids)
    target = _target_tag(text, fmt)
    if target is None:
        return None
    offsets = _offsets(tokenizer, text, ids)
    if offsets is None:
        return _answer_position_by_decoding(tokenizer, ids, target)
    start = -1
    for _ in range(target):
        start = text.index(ANSWER_TAG, start + 1)
    tag_end = start + len(ANSWER_TAG)
    pos = next(i for i, (_, end) in enumerate(offsets) if end >= tag_end) + 1
    while pos < len(ids) and not text[slice(*offsets[pos])].strip():  # whitespace before the grade
        pos += 1
    return pos


def _answer_position_by_decoding(tokenizer: PreTrainedTokenizerBase, ids: list[int], target: int) -> int:
    """:func:`answer_position` without offsets: decode prefixes (binary search on the tag count)."""
    # The shortest prefix whose text holds the target tag (counts only grow with the prefix).
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if decode_text(tokenizer, ids[:mid]).count(ANSWER_TAG) >= target:
            hi = mid
        else:
            lo = mid + 1
    pos = lo
    while pos < len(ids) and not decode_text(tokenizer, [ids[pos]]).strip():  # whitespace before the grade
        pos += 1
    return pos


def _position_ids(attention: torch.Tensor) -> torch.Tensor:
    # As generate() does: positions count real tokens only, so left padding does not shift them.
    return (attention.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def batch_grade_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    fmt: str = "think_first",
) -> list[dict[int, float] | None]:
    """:func:`grade_probabilities` for many (prompt, completion) pairs, in one left-padded forward pass."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    grade_ids = grade_token_ids(tokenizer)
    results: list[dict[int, float] | None] = [None] * len(prompts)
    rows = []  # each row ends with the token whose logits predict the grade
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        pos = answer_position(tokenizer, completion, fmt)
        if pos is None:
            continue
        rows.append((i, list(prompt) + list(completion[:pos])))
    if not rows:
        return results
    # Left padding puts every row's last token in the last column: only its logits are needed, so
    # the vocabulary head (49k rows for SmolLM2) runs on one position per row, not on all of them.
    input_ids, attention = left_pad(tokenizer, [r for _, r in rows])
    was_training = model.training
    model.eval()
    try:
        logits = model(
            input_ids=input_ids.to(model.device),
            attention_mask=attention.to(model.device),
            position_ids=_position_ids(attention).to(model.device),
            logits_to_keep=1,
        ).logits[:, -1]
    finally:
        model.train(was_training)
    order = [grade_ids[g] for g in GRADES]
    for k, (i, _) in enumerate(rows):
        probs = torch.softmax(logits[k, order].float(), dim=-1).tolist()
        results[i] = dict(zip(GRADES, probs))
    return results


class GradeLogits(LogitsProcessor):
    """Records the four grade tokens' logits at every decoding step (and changes nothing).

    Greedy generation already computes the next-token logits where a completion writes its grade;
    keeping those 4 columns per step lets :func:`judge` skip a second forward pass over prompt +
    completion (about a third of a batch-128 judging call on the demo model: 70 -> 107 records/s).
    """

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = list(token_ids)
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(scores[:, self.token_ids].float().cpu())
        return scores

    def probabilities(
        self, tokenizer: PreTrainedTokenizerBase, completions: Sequence[Sequence[int]], fmt: str
    ) -> tuple[list[dict[int, float] | None], list[int]]:
        """(grade distribution per completion, the indices generation did not score).

        A completion without an answer tag gets None; one whose grade position lies past the last
        generated step (it ends right after the tag) is left to :func:`batch_grade_probabilities`.
        """
        results: list[dict[int, float] | None] = [None] * len(completions)
        missing = []
        recorded = torch.stack(self.steps, dim=1) if self.steps else None  # (rows, steps, grades)
        for i, completion in enumerate(completions):
            pos = answer_position(tokenizer, completion, fmt)
            if pos is None:
                continue
            if recorded is None or pos >= recorded.shape[1]:
                missing.append(i)
                continue
            results[i] = dict(zip(GRADES, torch.softmax(recorded[i, pos], dim=-1).tolist()))
        return results, missing


def grade_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[int],
    completion_ids: Sequence[int],
    fmt: str = "think_first",
) -> dict[int, float] | None:
    """The model's distribution over the grades where the completion writes its answer.

    Renormalised over the four grade tokens; None when the completion has no ``<answer>`` tag.
    """
    return batch_grade_probabilities(model, tokenizer, [prompt_ids], [completion_ids], fmt)[0]


class PromptTooLong(ValueError):
    """A record's prompt leaves no room for the completion within the model's context."""

    def __init__(self, index: int, tokens: int, limit: int):
        super().__init__(
            f"record {index}: prompt of {tokens} tokens leaves no room within the model's {limit} positions"
        )
        self.index, self.tokens, self.limit = index, tokens, limit


def _context_limit(model: PreTrainedModel) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def _result(text: str, probs: dict[int, float] | None, label: int | None, threshold: float) -> dict:
    score, tier = cumpt(probs, threshold) if probs is not None else (None, None)
    return {
        "label": label,
        "grade_probs": probs,
        "cumpt_score": score,
        "tier": tier,
        "rule": None,
        "reasoning": None,
        "parse_error": None,
        "text": text,
    }


def check_prompt_lengths(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    early_stop: bool = False,
    max_new_tokens: int = 128,
) -> None:
    """PromptTooLong for the first prompt (token ids) that leaves no room for its completion."""
    needed = len(answer_prefix_ids(tokenizer)) + 1 if early_stop else max_new_tokens
    limit = _context_limit(model)
    if limit is not None:
        for i, p in enumerate(prompts):
            if len(p) + needed > limit:
                raise PromptTooLong(i, len(p), limit)


class Abandoned(Exception):
    """`judge` stopped because nobody waits for its results any more."""


def judge(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping],
    fmt: str = "think_first",
    early_stop: bool = False,
    max_new_tokens: int = 128,
    system_prompt: bool = False,
    threshold: float = 0.5,
    batch_size: int = 64,
    rulebook: Rulebook | None = None,
    prompt_rulebook: Rulebook | None = None,
    abandoned: Callable[[], bool] | None = None,
) -> list[dict]:
    """Judge records (each with `query` and `product`); one result dict per record, in order.

    Each result: ``label`` (int or None), ``grade_probs`` ({grade: p} or None), ``cumpt_score`` and
    ``tier`` (CumPT at `threshold`, None without probabilities), ``rule`` ({"id", "name"} or None),
    ``reasoning`` ({"query", "product", "checks"} slot dicts or None), ``parse_error`` (str or None) and
    ``text`` (the completion as decoded text). See the module docstring for `early_stop`.
    `rulebook` reads the stated rules; `prompt_rulebook` (if any) goes into the system prompt.
    `abandoned` (a server's "has every client of this batch gone?") is checked between chunks and
    after every decoding step; once it is True the call raises `Abandoned` instead of finishing.
    """
    _check_fmt(fmt)
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not records:
        return []
    prompts = encode_prompts(tokenizer, records, system_prompt, prompt_rulebook)
    prefix = answer_prefix_ids(tokenizer) if early_stop else []
    check_prompt_lengths(model, tokenizer, prompts, early_stop, max_new_tokens)
    grade_ids = grade_token_ids(tokenizer)
    was_training = model.training
    model.eval()
    results: list[dict] = [{} for _ in records]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            chunk_prompts = [prompts[i] for i in chunk]
            if early_stop:
                completions = [list(prefix)] * len(chunk)
                missing = list(range(len(chunk)))
                all_probs: list[dict[int, float] | None] = [None] * len(chunk)
            else:
                recorder = GradeLogits([grade_ids[g] for g in GRADES])
                completions = generate_ids(
                    model,
                    tokenizer,
                    chunk_prompts,
                    max_new_tokens,
                    abandoned=abandoned,
                    logits_processor=LogitsProcessorList([recorder]),
                )
                all_probs, missing = recorder.probabilities(tokenizer, completions, fmt)
            if abandoned is not None and abandoned():
                raise Abandoned(f"every client left; {start} of {len(order)} records judged")
            if missing:
                scored = batch_grade_probabilities(
                    model,
                    tokenizer,
                    [chunk_prompts[k] for k in missing],
                    [completions[k] for k in missing],
                    fmt,
                )
                for k, probs in zip(missing, scored):
                    all_probs[k] = probs
            for i, completion, probs in zip(chunk, completions, all_probs):
                if early_stop:
                    assert probs is not None  # the forced prefix holds the answer tag
                    label = max(probs, key=probs.__getitem__)
                    text = decode_text(
                        tokenizer, list(completion) + [grade_ids[label]], skip_special_tokens=True
                    )
                    results[i] = _result(text, probs, label, threshold)
                    continue
                text = decode_text(tokenizer, completion, skip_special_tokens=True)
                parsed = parse_reasoning(text, fmt)
                result = _result(text, probs, parsed.label, threshold)
                if isinstance(parsed, Reasoning):
                    known = (rulebook or default_rulebook()).get(parsed.rule_id)
                    # Lower-casing tokenizers write `r08`; report the rulebook's own spelling.
                    result["rule"] = {"id": known.id if known else parsed.rule_id, "name": parsed.rule_name}
                    result["reasoning"] = {
                        "query": parsed.query,
                        "product": parsed.product,
                        "checks": parsed.checks,
                    }
                else:
                    result["parse_error"] = str(parsed)
                results[i] = result
    finally:
        model.train(was_training)
    return results


def near_ties(results: Sequence[Mapping], margin: float) -> list[int]:
    """Indices of the results whose two most likely grades are less than `margin` apart in
    probability: where a lower-precision judge is most likely to flip the label. Results without
    grade probabilities are never near-ties."""
    out = []
    for i, result in enumerate(results):
        probs = sorted((result.get("grade_probs") or {}).values(), reverse=True)
        if len(probs) >= 2 and probs[0] - probs[1] < margin:
            out.append(i)
    return out


def judge_rechecked(
    fast: PreTrainedModel,
    exact: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping],
    margin: float,
    **kwargs,
) -> tuple[list[dict], list[int]]:
    """`judge` with the `fast` model (e.g. bf16), then the near-ties (`near_ties(margin)`) judged
    again with the `exact` one (fp32, the same weights): its results replace theirs. Returns the
    results and the indices that were judged again."""
    results = judge(fast, tokenizer, records, **kwargs)
    redo = near_ties(results, margin)
    if redo:
        again = judge(exact, tokenizer, [records[i] for i in redo], **kwargs)
        for i, result in zip(redo, again):
            results[i] = result
    return results, redo
