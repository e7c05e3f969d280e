"""Adaptive Guided Replay: the algorithmic core, as pure functions and a small state object.

A prompt group is *stagnant* when its accuracy is at most tau (default: no rollout right), where a
rollout is right by the registered trigger (`label`, the paper's; `grounded`: right label on the gold
checks): all its rewards agree on the outcome, so plain GRPO learns nothing from it. Replay regenerates k
of its rollouts with ground-truth guidance at the example's current level, and the trainer takes
the loss on the unguided prompt. Levels rise while an example stays stagnant and fall as its
unguided accuracy recovers; stagnant examples wait in a priority queue to be served again.

Nothing here touches a model: `agrl.train.agrl_trainer` wires these functions into TRL.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agrl.reasoning import render_prefix
from agrl.registry import Registry
from agrl.rules import SLOTS, Rule, Rulebook

MAX_LEVEL = 3


def group_accuracy(correct: Sequence[bool], group_size: int) -> list[float]:
    """Label accuracy of each consecutive group of `group_size` rollouts."""
    if group_size < 1 or len(correct) % group_size:
        raise ValueError(f"{len(correct)} rollouts do not split into groups of {group_size}")
    return [sum(correct[i : i + group_size]) / group_size for i in range(0, len(correct), group_size)]


def is_stagnant(accuracy: float, tau: float = 0.0) -> bool:
    """Triggered on label accuracy, not reward std: dense rewards almost never tie exactly."""
    return accuracy <= tau + 1e-9


RolloutSuccess = Callable[[bool, Mapping[str, "float | None"]], bool]
TRIGGERS = Registry("replay trigger")


def register_trigger(name: str) -> Callable[[RolloutSuccess], RolloutSuccess]:
    """Register what counts as a successful rollout for the replay trigger:
    fn(label_correct, reward components) -> bool. A group none of whose rollouts succeeds is stuck."""
    return TRIGGERS.register(name)


@register_trigger("label")
def label_success(label_ok: bool, components: Mapping[str, float | None]) -> bool:
    """The paper's trigger: a rollout succeeds when its label is right."""
    return label_ok


@register_trigger("grounded")
def grounded_success(label_ok: bool, components: Mapping[str, float | None]) -> bool:
    """A right label on wrong checks is a failure too: the rollout must also state every gold check as
    gold and take its label from its own checks (`agrl.evaluate`'s grounded adherence), so that a
    group whose right labels are all luck is replayed with the gold checks as guidance. An example
    without gold checks falls back to the label."""
    if components.get("checks") is None:
        return label_ok
    return label_ok and components["checks"] == 1.0 and components.get("consistency") == 1.0


def zero_std_groups(rewards: Sequence[float], group_size: int, eps: float = 1e-6) -> list[bool]:
    """Which groups have (numerically) identical rewards, i.e. zero advantage everywhere."""
    out = []
    for i in range(0, len(rewards), group_size):
        chunk = rewards[i : i + group_size]
        out.append(max(chunk) - min(chunk) <= eps)
    return out


def select_replaced(rewards: Sequence[float], k: int, rng: random.Random) -> list[int]:
    """Indices (within a group) of the k lowest-reward rollouts; ties broken at random."""
    k = max(0, min(k, len(rewards)))
    keys = [(r, rng.random(), i) for i, r in enumerate(rewards)]
    return sorted(i for _, _, i in sorted(keys)[:k])


@dataclass(frozen=True)
class Guidance:
    """What one guided rollout is given: a prompt hint and/or a forced completion prefix."""

    level: int
    hint: str | None
    prefix: str

    @property
    def has_prefix(self) -> bool:
        return bool(self.prefix)


def deciding_lines(checks: Mapping[str, str], rule: Rule | None) -> int:
    """How many slot lines, in reasoning order, reach the line of the rule's deciding check."""
    shown = [s for s in SLOTS if s in checks]
    if rule is None or not rule.when:
        return len(shown)
    return max((shown.index(s) + 1 for s in rule.when if s in shown), default=len(shown))


GuidanceMode = Callable[[Mapping, "Rule | None", "int | None", int, bool], "Guidance | None"]
GUIDANCE_MODES = Registry("guidance mode")


def register_guidance_mode(name: str) -> Callable[[GuidanceMode], GuidanceMode]:
    """Register a guidance mode: fn(annotations, rule, label, level, complete) -> Guidance | None."""
    return GUIDANCE_MODES.register(name)


@register_guidance_mode("prefix")
def prefix_guidance(
    notes: Mapping, rule: Rule | None, label: int | None, level: int, complete: bool
) -> Guidance | None:
    """Forced completion prefixes, for models that never saw hints: 1 = the gold slot lines up to the
    deciding check's line; 2 = all gold slot lines (the checks); 3 = the checks and the deciding rule.
    The model always writes the label itself.

    Partial annotations (real data: no rule, some slots) force the annotated lines, in slot order,
    when they include `type` (every reasoning starts with it; without it no gold prefix exists).
    """
    if not complete:
        checks = notes.get("checks")
        if not checks or "type" not in checks:
            return None
        query, product = notes.get("query") or {}, notes.get("product") or {}
        return Guidance(level, None, render_prefix(query, product, checks, len(checks)))
    query, product, checks = notes["query"], notes["product"], notes["checks"]  # complete: all three
    if level == 1:
        return Guidance(level, None, render_prefix(query, product, checks, deciding_lines(checks, rule)))
    if level == 2 or rule is None:
        return Guidance(level, None, render_prefix(query, product, checks))
    return Guidance(level, None, render_prefix(query, product, checks, rule_tag=rule.tag))


@register_guidance_mode("hint")
def hint_guidance(
    notes: Mapping, rule: Rule | None, label: int | None, level: int, complete: bool
) -> Guidance | None:
    """A prompt hint: 1 = the deciding rule; 2 = + the gold checks; 3 = + the gold slot lines forced as
    a completion prefix. Without a rule (real data) the gold grade is the hint, plus at level 2 and
    above whatever checks are annotated."""
    checks = notes.get("checks")
    if rule is not None:
        hint = f"the deciding rule is {rule.tag}"
    elif label is not None:
        hint = f"the grade is {int(label)}"
    else:
        return None
    if level >= 2 and checks:
        hint += " ; checks: " + " ; ".join(f"{k}: {v}" for k, v in checks.items())
    prefix = (
        render_prefix(notes["query"], notes["product"], notes["checks"]) if level >= 3 and complete else ""
    )
    return Guidance(level, hint, prefix)


def build_guidance(
    annotations: Mapping,
    rule_id: str | None,
    label: int | None,
    level: int,
    mode: str,
    rulebook: Rulebook,
) -> Guidance | None:
    """Guidance for one example at `level` in `mode` (see `GUIDANCE_MODES`), or None where the example
    lacks the ground truth that mode needs."""
    guide = GUIDANCE_MODES.lookup(mode)
    notes = annotations or {}
    complete = bool(notes.get("query") and notes.get("product") and notes.get("checks")) and not notes.get(
        "partial"
    )
    rule = rulebook.get(rule_id) if rule_id else None
    return guide(notes, rule, label, max(1, min(MAX_LEVEL, level)), complete)


@dataclass
class ExampleState:
    level: int = 1
    visits: int = 0
    stagnant_streak: int = 0
    retries: int = 0


@dataclass
class ReplayState:
    """Per-example levels and the replay queue; JSON-serialisable for checkpoints."""

    examples: dict[str, ExampleState] = field(default_factory=dict)
    queue: dict[str, dict] = field(default_factory=dict)  # id -> {"row": dataset row, "since": step}
    rng_state: object = None

    def level(self, example_id: str) -> int:
        return self.examples.get(example_id, ExampleState()).level

    def to_json(self) -> dict:
        return {
            "examples": {k: vars(v) for k, v in self.examples.items()},
            "queue": self.queue,
            "rng_state": self.rng_state,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> ReplayState:
        return cls(
            examples={k: ExampleState(**v) for k, v in data.get("examples", {}).items()},
            queue=dict(data.get("queue", {})),
            rng_state=data.get("rng_state"),
        )


def update_example(
    state: ExampleState,
    accuracy: float,
    tau: float = 0.0,
    recover: float = 0.5,
    max_level: int = MAX_LEVEL,
) -> ExampleState:
    """The example's state after a visit with this *unguided* group accuracy.

    Every stagnant visit raises the level for the next one (the guidance given this time, at the
    current level, was not enough to make the unguided policy succeed); accuracy at or above
    `recover` lowers it (the model is learning to do without).
    """
    stagnant = is_stagnant(accuracy, tau)
    level = state.level
    if stagnant:
        level = min(max_level, level + 1)
    elif not stagnant and accuracy >= recover:
        level = max(1, level - 1)
    return ExampleState(
        level=level,
        visits=state.visits + 1,
        stagnant_streak=state.stagnant_streak + 1 if stagnant else 0,
        retries=state.retries,
    )


def enqueue(state: ReplayState, example_id: str, row: Mapping, step: int, retry_budget: int) -> bool:
    """Queue a stagnant example for replay unless its retry budget is spent."""
    example = state.examples.setdefault(example_id, ExampleState())
    if example.retries >= retry_budget:
        state.queue.pop(example_id, None)
        return False
    state.queue.setdefault(example_id, {"row": dict(row), "since": step})
    return True


def dequeue_solved(state: ReplayState, example_id: str) -> None:
    state.queue.pop(example_id, None)


def take_from_queue(state: ReplayState, n: int) -> list[tuple[str, dict]]:
    """Pop up to n queued examples, highest level first, then longest waiting; counts a retry each."""
    ranked = sorted(state.queue.items(), key=lambda kv: (-state.level(kv[0]), kv[1]["since"], kv[0]))
    taken = []
    for example_id, entry in ranked[: max(0, n)]:
        del state.queue[example_id]
        state.examples.setdefault(example_id, ExampleState()).retries += 1
        taken.append((example_id, entry["row"]))
    return taken
