"""Rule-aware reward shaping: the final judgement split into dense, checkable components.

Every component is a plain function of one completion and its example's ground truth, returning a
score in [0, 1] or None where that example has no ground truth for it (real data without slot
annotations), so it drops out instead of scoring zero. `make_reward_functions` wraps them as TRL
reward functions (``completions`` plus dataset columns as keyword arguments); `compute_score` is the
verl-style export. The format component is a hard gate: a malformed completion scores 0 on every
component, the minimum.

Components live in a registry: adding one is one decorated function in this file::

    @register_component("short_checks", weight=0.25, applies=lambda truth: truth.checks is not None)
    def short_checks(parsed, truth, rulebook):
        return float(len(parsed.checks) <= len(truth.checks))

Its name, default weight, TRL reward function, `reward_component_weights` key and verl output come
from that registration; `total_reward` is the one definition of the total.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agrl.reasoning import ParseResult, Reasoning, parse_reasoning
from agrl.registry import Registry
from agrl.rules import Rulebook, default_rulebook, same_rule

OUTCOME_WEIGHTS: dict[str, float] = {"label": 1.0}


@dataclass(frozen=True)
class Truth:
    """What one example knows: its label, deciding rule and (possibly partial) gold annotations."""

    label: int | None
    rule: str | None
    query: Mapping[str, str] | None
    product: Mapping[str, str] | None
    checks: Mapping[str, str] | None
    partial: bool
    label_weight: float = 1.0  # the label component's scale for this example's class (class_balance_weights)


ScoreFn = Callable[[Reasoning, Truth, Rulebook], "float | None"]


@dataclass(frozen=True)
class Component:
    name: str
    weight: float  # default weight
    score: ScoreFn  # on a well-formed completion
    applies: Callable[[Truth], bool]  # the example has the ground truth this component needs


REGISTRY = Registry("reward component")


def register_component(name: str, weight: float, applies: Callable[[Truth], bool] = lambda truth: True):
    """Register a reward component: one decorated function of (parsed completion, truth, rulebook).

    Its name, default weight, TRL reward function, `reward_component_weights` key and verl output
    all come from this one registration. A malformed completion scores 0 on every component that
    applies (the format gate); a component that does not apply to an example scores None.
    """

    def register(fn: ScoreFn) -> ScoreFn:
        REGISTRY.add(name, Component(name, float(weight), fn, applies))
        return fn

    return register


def components() -> tuple[str, ...]:
    return tuple(REGISTRY)


def default_weights() -> dict[str, float]:
    return {c.name: c.weight for c in REGISTRY.values()}


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    for name in weights:
        REGISTRY.lookup(name)
    return {k: float(v) for k, v in weights.items()}


@lru_cache(maxsize=8192)
def _annotations_json(text: str) -> dict:
    return json.loads(text)


def _read_annotations(value: object) -> Mapping:
    """Annotations for reading only (the cached parse itself: never mutate it)."""
    if isinstance(value, str):
        return _annotations_json(value) if value else {}
    return value if isinstance(value, Mapping) else {}


def parse_annotations(value: object) -> dict:
    """Annotations as a fresh dict: dataset columns carry them as JSON strings (keys vary per row).

    The parse is cached, so the caller gets a deep copy: mutating it must not change later rows.
    """
    return copy.deepcopy(dict(_read_annotations(value)))


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


@register_component("format", 0.5)
def format_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float:
    return 1.0  # reached only by well-formed completions: the gate scores the rest 0


@register_component("query_slots", 0.5, lambda t: bool(t.query))
def query_slots_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float | None:
    return _slot_accuracy(parsed.query, truth.query, truth.partial)


@register_component("product_slots", 0.25, lambda t: bool(t.product))
def product_slots_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float | None:
    return _slot_accuracy(parsed.product, truth.product, truth.partial)


@register_component("checks", 1.0, lambda t: bool(t.checks))
def checks_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float | None:
    return _slot_accuracy(parsed.checks, truth.checks, truth.partial)


@register_component("deciding_checks", 0.0, lambda t: bool(t.checks) and bool(t.rule))
def deciding_checks_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float | None:
    """Share of the gold rule's own checks stated as in gold (every gold check for the default rule,
    whose verdict is that nothing fired): naming R10 while writing `size: match` scores 0 here, where
    `checks` still gives it most of its weight. Off by default (weight 0): measured in results/tuning."""
    rule = rulebook.get(str(truth.rule))
    if rule is None or not truth.checks:
        return None
    keys = list(rule.when) or list(truth.checks)
    if truth.partial:
        keys = [k for k in keys if k in truth.checks]
    if not keys:
        return None
    return sum(parsed.checks.get(k, "unknown") == truth.checks.get(k, "unknown") for k in keys) / len(keys)


@register_component("rule", 1.0, lambda t: bool(t.rule))
def rule_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float:
    return float(same_rule(parsed.rule_id, truth.rule))


@register_component("label", 2.0, lambda t: t.label is not None)
def label_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float:
    return truth.label_weight * float(truth.label is not None and parsed.label == int(truth.label))


def class_balance_weights(labels: Sequence[int], power: float = 1.0) -> dict[int, float]:
    """Label-reward scale per class from the training labels: scikit-learn's "balanced" class weights
    (n / (k x n_c)) to the power `power`, divided by the largest, so the rarest class keeps 1 and a
    class c gets (n_rarest / n_c) ** power. 0 gives every class 1 (off).

    Why it acts under GRPO's per-group normalisation: every rollout of a prompt shares its gold class,
    so a scale on the whole reward would cancel; a scale on the label component alone lowers the
    label's weight against the format, slot and consistency components on majority-class prompts —
    less of the push towards the majority grade those prompts give, the same push on rare ones."""
    from sklearn.utils.class_weight import compute_class_weight

    if power < 0:
        raise ValueError(f"label balance power {power}: must be >= 0")
    classes = np.array(sorted({int(y) for y in labels}))
    if not len(classes):
        return {}
    balanced = (
        compute_class_weight("balanced", classes=classes, y=np.array([int(y) for y in labels])) ** power
    )
    return {int(c): float(w / balanced.max()) for c, w in zip(classes, balanced)}


@register_component("consistency", 0.75)
def consistency_component(parsed: Reasoning, truth: Truth, rulebook: Rulebook) -> float:
    """The stated label is what the rulebook yields from the model's own checks (no ground truth)."""
    decided = rulebook.decide(parsed.checks)
    if parsed.label != decided.grade:
        return 0.0
    return 1.0 if same_rule(parsed.rule_id, decided.id) else 0.5


def score_components(
    completion: object,
    label: int | None = None,
    rule: str | None = None,
    annotations: Mapping | None = None,
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
    label_weight: float = 1.0,
) -> dict[str, float | None]:
    """Every registered component for one completion; None where the example lacks its ground truth.
    `label_weight` scales the label component (class-balanced label reward; 1: off)."""
    rulebook = rulebook or default_rulebook()
    notes = _read_annotations(annotations)  # per completion: read the cached parse, do not copy it
    truth = Truth(
        label,
        rule or None,
        notes.get("query"),
        notes.get("product"),
        notes.get("checks"),
        bool(notes.get("partial")),
        float(label_weight),
    )
    parsed = _parse(completion_text(completion), fmt)
    if not parsed.ok:
        return {c.name: (0.0 if c.applies(truth) else None) for c in REGISTRY.values()}
    return {
        c.name: (c.score(parsed, truth, rulebook) if c.applies(truth) else None) for c in REGISTRY.values()
    }


def total_reward(components: Mapping[str, float | None], weights: Mapping[str, float] | None = None) -> float:
    """The one definition of the total: sum of weight x score over the components present, divided
    by the sum of all weights (so gold on a fully annotated example earns 1). TRL computes exactly
    this from `make_reward_functions` (normalised weights, its `nansum`); the replay trigger ranks
    rollouts by it. A malformed completion scores 0 on every present component, so it earns 0.
    """
    weights = default_weights() if weights is None else weights
    norm = sum(w for w in weights.values() if w)
    present = [(w, v) for k, w in weights.items() if w and (v := components.get(k)) is not None]
    return sum(w * v for w, v in present) / norm if norm else 0.0


def score_completion(
    completion: object,
    record: Mapping,
    rulebook: Rulebook | None = None,
    weights: Mapping[str, float] | None = None,
    fmt: str = "think_first",
) -> dict[str, float | None]:
    """Components plus `total` for one completion against one record."""
    components = score_components(
        completion, record.get("label"), record.get("rule"), record.get("annotations"), rulebook, fmt
    )
    return {"total": total_reward(components, weights), **components}


RewardFunc = Callable[..., list[float | None]]


class _BatchScores:
    """Scores one batch once for all component functions: TRL calls them in turn on the same lists."""

    def __init__(self, rulebook: Rulebook, fmt: str):
        self.rulebook, self.fmt = rulebook, fmt
        self._key: tuple | None = None
        self._scores: list[dict[str, float | None]] = []

    def __call__(
        self,
        completions: list,
        label: list | None,
        rule: list | None,
        annotations: list | None,
        label_weight: list | None = None,
    ) -> list[dict[str, float | None]]:
        # Equality, not identity: a new batch may reuse a freed list's id.
        key = (list(completions), label, rule, annotations, label_weight)
        if key != self._key:
            n = len(completions)
            labels = label if label is not None else [None] * n
            rules = rule if rule is not None else [None] * n
            notes = annotations if annotations is not None else [None] * n
            scales = label_weight if label_weight is not None else [1.0] * n
            self._scores = [
                score_components(c, lab, r, a, self.rulebook, self.fmt, w)
                for c, lab, r, a, w in zip(completions, labels, rules, notes, scales)
            ]
            self._key = key
        return self._scores


def _component_func(name: str, scores: _BatchScores) -> RewardFunc:
    def reward(
        completions: list,
        label: list | None = None,
        rule: list | None = None,
        annotations: list | None = None,
        label_weight: list | None = None,
        **_: object,
    ) -> list[float | None]:
        return [row[name] for row in scores(completions, label, rule, annotations, label_weight)]

    reward.__name__ = reward.__qualname__ = f"{name}_reward"
    return reward


def make_reward_functions(
    weights: Mapping[str, float] | None = None,
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
) -> tuple[list[RewardFunc], list[float]]:
    """TRL reward functions and their weights (pass as `reward_funcs` / `GRPOConfig.reward_weights`).

    The weights are normalised to sum to 1, so that TRL's weighted `nansum` is `total_reward`.
    """
    weights = check_weights(default_weights() if weights is None else weights)
    rulebook = rulebook or default_rulebook()
    names = [k for k in REGISTRY if weights.get(k)]
    norm = sum(weights[k] for k in names)
    scores = _BatchScores(rulebook, fmt)
    return [_component_func(k, scores) for k in names], [weights[k] / norm for k in names]


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
        raise TypeError(
            "compute_score: ground_truth must be a record, a grade 1-4 or an ESCI letter, not a bool"
        )
    if isinstance(ground_truth, int):
        truth: object = ground_truth
    elif isinstance(ground_truth, str):
        text = ground_truth.strip()
        if text.upper() in DEFAULT_LABEL_MAP:
            return {"label": DEFAULT_LABEL_MAP[text.upper()]}
        try:
            truth = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f"compute_score: ground_truth {text[:40]!r} is neither JSON, a grade 1-4 nor an ESCI "
                f"letter ({'/'.join(DEFAULT_LABEL_MAP)})"
            ) from None
        if isinstance(truth, Mapping):
            return truth
    else:
        raise TypeError(
            f"compute_score: ground_truth must be a record, a grade 1-4 or an ESCI letter, "
            f"not {type(ground_truth).__name__}"
        )
    if isinstance(truth, bool) or not isinstance(truth, int) or truth not in (1, 2, 3, 4):
        raise ValueError(f"compute_score: ground_truth grade must be 1-4, got {truth!r}")
    return {"label": truth}


def compute_score(
    data_source: str, solution_str: str, ground_truth: object, extra_info: Mapping | None = None
) -> dict[str, float | None]:
    """verl `compute_score`: {"score": total, **components} for one completion.

    `ground_truth` is the record (label, rule, annotations) as a dict or JSON, or just its grade
    (an int, "3") or ESCI letter ("E"); components without ground truth are None. `extra_info` may
    carry `weights` (component -> weight) and `format`.
    """
    extra = extra_info or {}
    scores = score_completion(
        solution_str,
        _ground_truth(ground_truth),
        weights=extra.get("weights"),
        fmt=extra.get("format", "think_first"),
    )
    return {"score": scores.pop("total"), **scores}
