"""Rule-aware reward shaping: the final judgement split into dense, checkable components.

Every component is a plain function of one completion and its example's ground truth, returning a
score in [0, 1] or None where that example has no ground truth for it (real data without slot
annotations), so it drops out instead of scoring zero. `make_reward_functions` wraps them as TRL
reward functions (``completions`` plus dataset columns as keyword arguments); `compute_score` is the
verl-style export. The format component is a hard gate: a malformed completion scores 0 on every
component, the minimum.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from agrl.reasoning import ParseResult, parse_reasoning
from agrl.rules import Rulebook, default_rulebook, same_rule

COMPONENTS = ("format", "query_slots", "product_slots", "checks", "rule", "label", "consistency")
DEFAULT_WEIGHTS: dict[str, float] = {
    "format": 0.5, "query_slots": 0.5, "product_slots": 0.25, "checks": 1.0, "rule": 1.0, "label": 2.0,
    "consistency": 0.75,
}
OUTCOME_WEIGHTS: dict[str, float] = {"label": 1.0}


@lru_cache(maxsize=8192)
def _annotations_json(text: str) -> dict:
    return json.loads(text)


def parse_annotations(value: object) -> dict:
    """Annotations as a fresh dict: dataset columns carry them as JSON strings (keys vary per row).

    The parse is cached, so the caller gets a deep copy: mutating it must not change later rows.
    """
    if isinstance(value, str):
        return copy.deepcopy(_annotations_json(value)) if value else {}
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else {}


@lru_cache(maxsize=8192)
def _parse(text: str, fmt: str) -> ParseResult:
    return parse_reasoning(text, fmt)


def completion_text(completion: object) -> str:
    """TRL passes strings (standard format) or message lists (conversational format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else ""
    return ""


def _slot_accuracy(stated: Mapping[str, str], gold: Mapping[str, str] | None, partial: bool) -> float | None:
    """Share of slots stated exactly as in the gold annotation.

    Complete annotations (ShopRules) score over the union of stated and gold slots, so inventing or
    omitting a slot costs; partial ones (ESCI) score only the slots the annotator could read.
    """
    if not gold:
        return None
    keys = set(gold) if partial else set(gold) | set(stated)
    if not keys:
        return None
    return sum(stated.get(k) == gold.get(k) for k in keys) / len(keys)


def score_components(
    completion: object,
    label: int | None = None,
    rule: str | None = None,
    annotations: Mapping | None = None,
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
) -> dict[str, float | None]:
    """All components for one completion; None where the example lacks that ground truth."""
    rulebook = rulebook or default_rulebook()
    annotations = parse_annotations(annotations)
    partial = bool(annotations.get("partial"))
    gold = {part: annotations.get(part) for part in ("query", "product", "checks")}
    parsed = _parse(completion_text(completion), fmt)
    has = {
        "query_slots": bool(gold["query"]), "product_slots": bool(gold["product"]), "checks": bool(gold["checks"]),
        "rule": bool(rule), "label": label is not None,
    }
    if not parsed.ok:
        return {"format": 0.0, **{k: (0.0 if v else None) for k, v in has.items()}, "consistency": 0.0}
    decided = rulebook.decide(parsed.checks)
    consistency = 0.0
    if parsed.label == decided.grade:
        consistency = 1.0 if same_rule(parsed.rule_id, decided.id) else 0.5
    return {
        "format": 1.0,
        "query_slots": _slot_accuracy(parsed.query, gold["query"], partial),
        "product_slots": _slot_accuracy(parsed.product, gold["product"], partial),
        "checks": _slot_accuracy(parsed.checks, gold["checks"], partial),
        "rule": float(same_rule(parsed.rule_id, rule)) if rule else None,
        "label": float(parsed.label == int(label)) if label is not None else None,
        "consistency": consistency,
    }


def combine(components: Mapping[str, float | None], weights: Mapping[str, float] | None = None) -> float:
    """Weighted mean over the components present; a malformed completion earns 0 (the gate)."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if components.get("format") == 0.0:
        return 0.0
    present = [(w, components[k]) for k, w in weights.items() if w and components.get(k) is not None]
    total_weight = sum(w for w, _ in present)
    return sum(w * v for w, v in present) / total_weight if total_weight else 0.0


def score_completion(
    completion: object, record: Mapping, rulebook: Rulebook | None = None,
    weights: Mapping[str, float] | None = None, fmt: str = "think_first",
) -> dict[str, float | None]:
    """Components plus `total` for one completion against one record."""
    components = score_components(
        completion, record.get("label"), record.get("rule"), record.get("annotations"), rulebook, fmt
    )
    return {"total": combine(components, weights), **components}


RewardFunc = Callable[..., list[float | None]]


class _BatchScores:
    """Scores one batch once for all component functions: TRL calls them in turn on the same lists."""

    def __init__(self, rulebook: Rulebook, fmt: str):
        self.rulebook, self.fmt = rulebook, fmt
        self._key: tuple | None = None
        self._scores: list[dict[str, float | None]] = []

    def __call__(self, completions: list, label: list | None, rule: list | None,
                 annotations: list | None) -> list[dict[str, float | None]]:
        # Equality, not identity: a new batch may reuse a freed list's id.
        key = (list(completions), label, rule, annotations)
        if key != self._key:
            n = len(completions)
            labels = label if label is not None else [None] * n
            rules = rule if rule is not None else [None] * n
            notes = annotations if annotations is not None else [None] * n
            self._scores = [
                score_components(c, lab, r, a, self.rulebook, self.fmt)
                for c, lab, r, a in zip(completions, labels, rules, notes)
            ]
            self._key = key
        return self._scores


def _component_func(name: str, scores: _BatchScores) -> RewardFunc:
    def reward(completions: list, label: list | None = None, rule: list | None = None,
               annotations: list | None = None, **_: object) -> list[float | None]:
        return [row[name] for row in scores(completions, label, rule, annotations)]

    reward.__name__ = reward.__qualname__ = f"{name}_reward"
    return reward


def make_reward_functions(
    weights: Mapping[str, float] | None = None, rulebook: Rulebook | None = None, fmt: str = "think_first",
) -> tuple[list[RewardFunc], list[float]]:
    """TRL reward functions and their weights (pass as `reward_funcs` / `GRPOConfig.reward_weights`).

    TRL sums the weighted components, skipping None; since a malformed completion scores 0 on every
    component, the format gate holds in the sum too.
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown reward components {sorted(unknown)}; known: {list(COMPONENTS)}")
    rulebook = rulebook or default_rulebook()
    names = [k for k in COMPONENTS if weights.get(k)]
    scores = _BatchScores(rulebook, fmt)
    return [_component_func(k, scores) for k in names], [float(weights[k]) for k in names]


def label_correct(completions: list, label: list, fmt: str = "think_first") -> list[bool]:
    """Outcome correctness per completion: what the replay trigger and accuracy metrics count."""
    out = []
    for c, lab in zip(completions, label):
        parsed = _parse(completion_text(c), fmt)
        out.append(bool(parsed.ok and lab is not None and parsed.label == int(lab)))
    return out


def _ground_truth(ground_truth: object) -> Mapping:
    """What verl passes as `reward_model.ground_truth`, as a record: a dict (or its JSON), a grade, or an ESCI letter."""
    from agrl.data.esci import DEFAULT_LABEL_MAP

    if isinstance(ground_truth, Mapping):
        return ground_truth
    if isinstance(ground_truth, bool):
        raise TypeError("compute_score: ground_truth must be a record, a grade 1-4 or an ESCI letter, not a bool")
    if isinstance(ground_truth, int):
        truth: object = ground_truth
    elif isinstance(ground_truth, str):
        text = ground_truth.strip()
        if text.upper() in DEFAULT_LABEL_MAP:
            return {"label": DEFAULT_LABEL_MAP[text.upper()]}
        try:
            truth = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"compute_score: ground_truth {text[:40]!r} is neither JSON, a grade 1-4 nor an ESCI "
                             f"letter ({'/'.join(DEFAULT_LABEL_MAP)})") from None
        if isinstance(truth, Mapping):
            return truth
    else:
        raise TypeError(f"compute_score: ground_truth must be a record, a grade 1-4 or an ESCI letter, "
                        f"not {type(ground_truth).__name__}")
    if isinstance(truth, bool) or not isinstance(truth, int) or truth not in (1, 2, 3, 4):
        raise ValueError(f"compute_score: ground_truth grade must be 1-4, got {truth!r}")
    return {"label": truth}


def compute_score(data_source: str, solution_str: str, ground_truth: object,
                  extra_info: Mapping | None = None) -> dict[str, float | None]:
    """verl `compute_score`: {"score": total, **components} for one completion.

    `ground_truth` is the record (label, rule, annotations) as a dict or JSON, or just its grade
    (an int, "3") or ESCI letter ("E"); components without ground truth are None. `extra_info` may
    carry `weights` (component -> weight) and `format`.
    """
    extra = extra_info or {}
    scores = score_completion(solution_str, _ground_truth(ground_truth), weights=extra.get("weights"),
                              fmt=extra.get("format", "think_first"))
    return {"score": scores.pop("total"), **scores}
