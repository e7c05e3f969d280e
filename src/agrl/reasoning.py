"""The structured reasoning the policy writes: render it from annotations, parse it back strictly.

Think-first (the training format)::

    <query> type: running shoes ; brand: nike ; negation: laces </query>
    <product> type: running shoes ; brand: nike ; negation: has laces </product>
    <checks> type: match ; brand: match ; negation: mismatch </checks>
    <rule> R03 negation_violated </rule>
    <answer> 2 </answer>

Label-first (serving, TaoSR1's post-CoT) puts ``<answer>`` first so decoding can stop after it.
The three analysis sections list the same slots, in the canonical order of ``agrl.rules.SLOTS``;
``-`` marks a slot that side does not state. ``parse_reasoning`` never raises: any string yields
either a :class:`Reasoning` or a :class:`ParseError` saying what is wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agrl.rules import CHECK_VALUES, SLOTS

THINK_FIRST = ("query", "product", "checks", "rule", "answer")
LABEL_FIRST = ("answer", "query", "product", "checks", "rule")
FORMATS = {"think_first": THINK_FIRST, "label_first": LABEL_FIRST}
ABSENT = "-"
# Longest completion the parser reads; longer ones are a format error, not a slow parse.
MAX_CHARS = 20_000

_TAG = re.compile(r"<(/?)([a-z_]+)>")
_RULE = re.compile(r"^(\S+) (\S+)$")


@dataclass(frozen=True)
class Reasoning:
    query: dict[str, str]
    product: dict[str, str]
    checks: dict[str, str]
    rule_id: str
    rule_name: str
    label: int
    ok: bool = field(default=True, init=False)


@dataclass(frozen=True)
class ParseError:
    message: str
    position: int = 0
    ok: bool = field(default=False, init=False)
    # The answer, when one well-formed <answer> section could be read even though the rest is not.
    # Only metrics use it (label accuracy of malformed outputs); rewards treat the output as malformed.
    label: int | None = None

    def __str__(self) -> str:
        return f"{self.message} (at char {self.position})"


ParseResult = Reasoning | ParseError


def normalize_value(value: str) -> str:
    """Canonical slot value: lower case, single spaces."""
    return " ".join(str(value).lower().split())


def _render_slots(slots: Mapping[str, str]) -> str:
    return " ; ".join(f"{s}: {normalize_value(slots[s])}" for s in SLOTS if s in slots)


def render_sections(
    query: Mapping[str, str],
    product: Mapping[str, str],
    checks: Mapping[str, str],
    rule_tag: str,
    label: int,
) -> dict[str, str]:
    return {
        "query": f"<query> {_render_slots(query)} </query>",
        "product": f"<product> {_render_slots(product)} </product>",
        "checks": f"<checks> {_render_slots(checks)} </checks>",
        "rule": f"<rule> {rule_tag} </rule>",
        "answer": f"<answer> {label} </answer>",
    }


def render_reasoning(
    query: Mapping[str, str],
    product: Mapping[str, str],
    checks: Mapping[str, str],
    rule_tag: str,
    label: int,
    fmt: str = "think_first",
) -> str:
    sections = render_sections(query, product, checks, rule_tag, label)
    return "\n".join(sections[name] for name in FORMATS[fmt])


def render_prefix(
    query: Mapping[str, str], product: Mapping[str, str], checks: Mapping[str, str], upto: str = "checks"
) -> str:
    """The think-first reasoning up to and including section `upto`, ending in a newline.

    Guidance level 3 forces this text as the start of a completion; the model writes the rest.
    """
    if upto not in ("query", "product", "checks"):
        raise ValueError(f"render_prefix renders the analysis sections only (query, product, checks), not {upto!r}")
    sections = render_sections(query, product, checks, "", 0)
    names = THINK_FIRST[: THINK_FIRST.index(upto) + 1]
    return "\n".join(sections[n] for n in names) + "\n"


def _parse_slots(body: str, section: str, offset: int, checks: bool) -> dict[str, str] | ParseError:
    items: dict[str, str] = {}
    last_index = -1
    for part in body.split(";"):
        text = part.strip()
        if not text:
            return ParseError(f"<{section}>: empty item", offset)
        key, sep, value = text.partition(":")
        key, value = key.strip(), normalize_value(value)
        if not sep or not key or not value:
            return ParseError(f"<{section}>: expected `slot: value`, got {text[:40]!r}", offset)
        if key not in SLOTS:
            return ParseError(f"<{section}>: unknown slot {key[:40]!r}", offset)
        if key in items:
            return ParseError(f"<{section}>: slot {key!r} repeated", offset)
        index = SLOTS.index(key)
        if index < last_index:
            return ParseError(f"<{section}>: slot {key!r} out of order", offset)
        last_index = index
        if checks and value not in CHECK_VALUES:
            return ParseError(f"<checks>: {key!r} has value {value[:40]!r}, not one of {CHECK_VALUES}", offset)
        items[key] = value
    return items


def _split_sections(text: str, order: tuple[str, ...]) -> dict[str, tuple[str, int]] | ParseError:
    """Split into exactly the sections of `order`, each `<name> body </name>`, nothing else around."""
    sections: dict[str, tuple[str, int]] = {}
    pos = 0
    n = len(text)
    for name in order:
        while pos < n and text[pos].isspace():
            pos += 1
        opening = f"<{name}>"
        if not text.startswith(opening, pos):
            found = _TAG.match(text, pos)
            got = found.group(0) if found else repr(text[pos : pos + 20]) if pos < n else "end of text"
            return ParseError(f"expected {opening}, got {got}", pos)
        start = pos + len(opening)
        closing = f"</{name}>"
        end = text.find(closing, start)
        if end < 0:
            return ParseError(f"{opening} is not closed", pos)
        body = text[start:end]
        inner = _TAG.search(body)
        if inner:
            return ParseError(f"tag {inner.group(0)} inside {opening}", start + inner.start())
        sections[name] = (body, start)
        pos = end + len(closing)
    rest = text[pos:]
    if rest.strip():
        return ParseError(f"text after the final </{order[-1]}>: {rest.strip()[:40]!r}", pos)
    return sections


_ANSWER_ONLY = re.compile(r"<answer>\s*([1-4])\s*</answer>")


def _lenient_label(text: str) -> int | None:
    found = _ANSWER_ONLY.findall(text)
    return int(found[0]) if len(found) == 1 and text.count("<answer>") == 1 else None


def parse_reasoning(text: object, fmt: str = "think_first") -> ParseResult:
    """Parse a completion strictly. Total: never raises, whatever `text` is."""
    try:
        order = FORMATS[fmt]
    except (KeyError, TypeError):
        return ParseError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if not isinstance(text, str):
        return ParseError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        return ParseError(f"completion longer than {MAX_CHARS} characters ({len(text)})")
    if "\x00" in text:
        return ParseError("completion contains NUL bytes", text.index("\x00"))
    split = _split_sections(text, order)
    if isinstance(split, ParseError):
        return ParseError(split.message, split.position, _lenient_label(text))
    parsed: dict[str, dict[str, str]] = {}
    for name in ("query", "product", "checks"):
        body, offset = split[name]
        slots = _parse_slots(body, name, offset, checks=name == "checks")
        if isinstance(slots, ParseError):
            return ParseError(slots.message, slots.position, _lenient_label(text))
        parsed[name] = slots
    keys = list(parsed["query"])
    if "type" not in parsed["query"]:
        return ParseError("<query>: slot 'type' is required", split["query"][1], _lenient_label(text))
    for name in ("product", "checks"):
        if list(parsed[name]) != keys:
            return ParseError(
                f"<{name}> lists slots {list(parsed[name])}, <query> lists {keys}",
                split[name][1],
                _lenient_label(text),
            )
    rule_body, rule_at = split["rule"]
    rule = _RULE.match(" ".join(rule_body.split()))
    if not rule:
        return ParseError(f"<rule>: expected `ID name`, got {rule_body.strip()[:40]!r}", rule_at, _lenient_label(text))
    answer_body, answer_at = split["answer"]
    answer = answer_body.strip()
    if answer not in {"1", "2", "3", "4"}:
        return ParseError(f"<answer>: expected one grade 1-4, got {answer[:40]!r}", answer_at)
    return Reasoning(parsed["query"], parsed["product"], parsed["checks"], rule.group(1), rule.group(2), int(answer))


def extract_label(text: object, fmt: str = "think_first") -> int | None:
    """The stated label of a well-formed completion, else None (what rewards and metrics count)."""
    parsed = parse_reasoning(text, fmt)
    return parsed.label if parsed.ok else None
