"""The rulebook: one declarative, ordered list of relevance rules that everything else reads.

Labelling the benchmark, rendering gold reasoning, scoring rule consistency, writing replay hints and
measuring rule adherence all go through :class:`Rulebook.decide`, so a user who swaps the YAML file
changes all of them at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from agrl.schema import CHECK_VALUES, GRADES, SLOTS

__all__ = [
    "CHECK_VALUES",
    "GRADES",
    "SLOTS",
    "Rule",
    "Rulebook",
    "RulebookError",
    "default_rulebook",
    "load_rulebook",
    "parse_rulebook",
    "same_rule",
]


def same_rule(a: str | None, b: str | None) -> bool:
    """Rule ids compare case-insensitively: lower-casing tokenizers write `r03` for `R03`."""
    return a is not None and b is not None and a.casefold() == b.casefold()


class RulebookError(ValueError):
    """A rulebook file is invalid; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    description: str
    when: Mapping[str, tuple[str, ...]]
    grade: int
    # What a model blind to this rule's feature states for the rule's slots (default: `match`).
    blind: Mapping[str, str] = field(default_factory=dict)

    def fires(self, checks: Mapping[str, str]) -> bool:
        return all(checks.get(slot, "unknown") in accepted for slot, accepted in self.when.items())

    @property
    def tag(self) -> str:
        """How the rule is written in reasoning: `R03 negation_violated`."""
        return f"{self.id} {self.name}"


@dataclass(frozen=True)
class Rulebook:
    name: str
    rules: tuple[Rule, ...]
    grade_names: Mapping[int, str] = field(default_factory=dict)
    source: str = "<memory>"

    def decide(self, checks: Mapping[str, str]) -> Rule:
        """The first rule that fires on these checks (the last rule always fires)."""
        for rule in self.rules:
            if rule.fires(checks):
                return rule
        raise AssertionError("validated rulebooks end with a catch-all rule")  # pragma: no cover

    def blind_decision(self, checks: Mapping[str, str]) -> Rule:
        """The rule a model blind to the deciding rule's feature would reach from these checks.

        The deciding rule's slots are replaced by what such a model states (the rule's `blind`
        values, `match` by default) and the rulebook decides again. Where the result's grade equals
        the true one, a model ignoring the feature gets the label right by luck.
        """
        rule = self.decide(checks)
        if not rule.when:
            return rule
        blind = dict(checks) | {slot: rule.blind.get(slot, "match") for slot in rule.when}
        return self.decide(blind)

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id.casefold())

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    @property
    def _by_id(self) -> dict[str, Rule]:
        return {r.id.casefold(): r for r in self.rules}

    def summary(self) -> str:
        """A compact text of the rules in precedence order, for prompts."""
        lines = [f"{r.id} {r.name}: {r.description} -> {r.grade}" for r in self.rules]
        return "Rules (first that applies decides):\n" + "\n".join(lines)


def _fail(source: str, where: str, message: str) -> RulebookError:
    return RulebookError(f"{source}: {where}: {message}")


def parse_rulebook(data: object, source: str = "<memory>") -> Rulebook:
    """Validate a rulebook given as parsed YAML; errors name the file, the rule and the field."""
    if not isinstance(data, Mapping):
        raise _fail(source, "top level", "expected a mapping with a `rules` list")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _fail(source, "field `rules`", "expected a non-empty list of rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        where = f"rule #{index + 1}"
        if not isinstance(raw, Mapping):
            raise _fail(source, where, "expected a mapping")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id.strip() or " " in rule_id:
            raise _fail(source, f"{where} field `id`", "expected a non-empty string without spaces")
        where = f"rule {rule_id}"
        if rule_id.casefold() in seen:
            raise _fail(source, f"{where} field `id`", "duplicate rule id (ids compare case-insensitively)")
        seen.add(rule_id.casefold())
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or " " in name:
            raise _fail(source, f"{where} field `name`", "expected a non-empty snake_case string")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise _fail(source, f"{where} field `description`", "expected a string")
        grade = raw.get("grade")
        if isinstance(grade, bool) or grade not in GRADES:
            raise _fail(source, f"{where} field `grade`", f"expected one of {list(GRADES)}, got {grade!r}")
        when_raw = raw.get("when", {})
        if when_raw is None:
            when_raw = {}
        if not isinstance(when_raw, Mapping):
            raise _fail(source, f"{where} field `when`", "expected a mapping of check -> value(s)")
        when: dict[str, tuple[str, ...]] = {}
        for slot, accepted in when_raw.items():
            if slot not in SLOTS:
                raise _fail(
                    source, f"{where} field `when.{slot}`", f"unknown check; known: {', '.join(SLOTS)}"
                )
            values = (accepted,) if isinstance(accepted, str) else accepted
            if not isinstance(values, (list, tuple)) or not values:
                raise _fail(source, f"{where} field `when.{slot}`", "expected a value or a list of values")
            for value in values:
                if value not in CHECK_VALUES:
                    raise _fail(
                        source,
                        f"{where} field `when.{slot}`",
                        f"unknown value {value!r}; known: {', '.join(CHECK_VALUES)}",
                    )
            when[slot] = tuple(values)
        blind_raw = raw.get("blind") or {}
        if not isinstance(blind_raw, Mapping):
            raise _fail(source, f"{where} field `blind`", "expected a mapping of check -> value")
        for slot, value in blind_raw.items():
            if slot not in when:
                raise _fail(source, f"{where} field `blind.{slot}`", "names a check that is not in `when`")
            if value not in CHECK_VALUES:
                raise _fail(
                    source,
                    f"{where} field `blind.{slot}`",
                    f"unknown value {value!r}; known: {', '.join(CHECK_VALUES)}",
                )
        rules.append(Rule(rule_id, name, description, when, int(grade), dict(blind_raw)))
    if rules[-1].when:
        raise _fail(
            source, f"rule {rules[-1].id} field `when`", "the last rule must be a catch-all (empty `when`)"
        )
    for rule in rules[:-1]:
        if not rule.when:
            raise _fail(source, f"rule {rule.id} field `when`", "only the last rule may be a catch-all")
    grades_raw = data.get("grades") or {}
    if not isinstance(grades_raw, Mapping):
        raise _fail(source, "field `grades`", "expected a mapping grade -> name")
    grade_names = {}
    for key, value in grades_raw.items():
        if isinstance(key, bool) or key not in GRADES and str(key) not in {str(g) for g in GRADES}:
            raise _fail(source, f"field `grades.{key}`", f"expected one of {list(GRADES)} as key")
        grade_names[int(key)] = str(value)
    return Rulebook(str(data.get("name", "rulebook")), tuple(rules), grade_names, source)


def load_rulebook(path: str | Path | None = None) -> Rulebook:
    """Load a rulebook YAML file; `None` loads the shipped default."""
    if path is None:
        text = resources.files(__package__).joinpath("default.yaml").read_text(encoding="utf-8")
        source = "agrl/rules/default.yaml"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RulebookError(f"{source}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulebookError(f"{source}: invalid YAML: {exc}") from exc
    return parse_rulebook(data, source)


_DEFAULT: Rulebook | None = None


def default_rulebook() -> Rulebook:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_rulebook()
    return _DEFAULT
