"""The structured reasoning the policy writes: render it from annotations, parse it back strictly.

Think-first (the training format), one line per slot with the query's value, the product's value
and the verdict side by side, then the deciding rule, then the label::

    <checks>
    type: running shoes | running shoes match
    brand: nike | nike match
    negation: laces | has laces mismatch
    </checks>
    <rule> R03 negation_violated </rule>
    <answer> 2 </answer>

Why side by side: a small model copies values well but fails to compare two values that sit in
separate sections; with both values on the line that states the verdict, the comparison is local.
Label-first (serving, TaoSR1's post-CoT) puts ``<answer>`` first so decoding can stop after it.
Slot lines follow the canonical order of ``agrl.rules.SLOTS``; ``-`` marks a value that side does
not state. ``parse_reasoning`` never raises: any string yields either a :class:`Reasoning` or a
:class:`ParseError` saying what is wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agrl.schema import ABSENT, CHECK_VALUES, SLOTS, normalize_value

THINK_FIRST = ("checks", "rule", "answer")
LABEL_FIRST = ("answer", "checks", "rule")
FORMATS = {"think_first": THINK_FIRST, "label_first": LABEL_FIRST}
# Longest completion the parser reads; longer ones are a format error, not a slow parse.
MAX_CHARS = 20_000

_TAG = re.compile(r"<(/?)([a-z_]+)>")
_RULE = re.compile(r"^(\S+) (\S+)$")
_LINE = re.compile(r"^([^:|]+): ([^|]+?) \| ([^|]+) (\S+)$")


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
    # Only the separately named lenient metrics read it; rewards and strict metrics treat it as wrong.
    label: int | None = None

    def __str__(self) -> str:
        return f"{self.message} (at char {self.position})"


ParseResult = Reasoning | ParseError


def slot_line(slot: str, query_value: str, product_value: str, verdict: str) -> str:
    return f"{slot}: {normalize_value(query_value)} | {normalize_value(product_value)} {verdict}"


def _slot_lines(query: Mapping[str, str], product: Mapping[str, str], checks: Mapping[str, str]) -> list[str]:
    return [
        slot_line(s, query.get(s, ABSENT), product.get(s, ABSENT), checks[s]) for s in SLOTS if s in checks
    ]


def render_sections(
    query: Mapping[str, str],
    product: Mapping[str, str],
    checks: Mapping[str, str],
    rule_tag: str,
    label: int,
) -> dict[str, str]:
    body = "\n".join(_slot_lines(query, product, checks))
    return {
        "checks": f"<checks>\n{body}\n</checks>",
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
    query: Mapping[str, str],
    product: Mapping[str, str],
    checks: Mapping[str, str],
    lines: int | None = None,
    rule_tag: str | None = None,
) -> str:
    """A prefix of the think-first reasoning, ending in a newline: what guided replay forces.

    The first `lines` slot lines (None: all of them and the closing tag); `rule_tag` adds the
    `<rule>` section after the complete checks. Never the answer.
    """
    all_lines = _slot_lines(query, product, checks)
    if lines is None:
        text = render_sections(query, product, checks, "", 0)["checks"] + "\n"
        return text + (f"<rule> {rule_tag} </rule>\n" if rule_tag else "")
    if rule_tag:
        raise ValueError("render_prefix: a rule follows the complete checks only")
    return "<checks>\n" + "".join(line + "\n" for line in all_lines[: max(0, lines)])


def _parse_lines(
    body: str, offset: int
) -> tuple[dict[str, str], dict[str, str], dict[str, str]] | ParseError:
    query: dict[str, str] = {}
    product: dict[str, str] = {}
    checks: dict[str, str] = {}
    last_index = -1
    lines = body.strip().split("\n")
    if lines == [""]:
        return ParseError("<checks>: no slot lines", offset)
    for number, raw in enumerate(lines, 1):
        text = " ".join(raw.split())
        where = f"<checks> line {number}"
        if not text:
            return ParseError(f"{where}: empty line", offset)
        found = _LINE.match(text)
        if not found:
            return ParseError(
                f"{where}: expected `slot: query value | product value verdict`, got {text[:40]!r}", offset
            )
        slot, q, p, verdict = (found.group(i).strip() for i in range(1, 5))
        if slot not in SLOTS:
            return ParseError(f"{where}: unknown slot {slot[:40]!r}", offset)
        if slot in checks:
            return ParseError(f"{where}: slot {slot!r} repeated", offset)
        index = SLOTS.index(slot)
        if index < last_index:
            return ParseError(f"{where}: slot {slot!r} out of order", offset)
        last_index = index
        if verdict not in CHECK_VALUES:
            return ParseError(
                f"{where}: {slot!r} has verdict {verdict[:40]!r}, not one of {CHECK_VALUES}", offset
            )
        if not q or not p:
            return ParseError(f"{where}: {slot!r} needs a query value and a product value", offset)
        query[slot], product[slot], checks[slot] = normalize_value(q), normalize_value(p), verdict
    if "type" not in checks:
        return ParseError("<checks>: slot 'type' is required", offset)
    return query, product, checks


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


_BARE_ANSWER = re.compile(r"\s*<answer>\s*[1-4]\s*</answer>\s*")


def is_label_only(text: object) -> bool:
    """The completion is an answer section and nothing else (a label-first judge stopped early)."""
    return isinstance(text, str) and len(text) <= MAX_CHARS and _BARE_ANSWER.fullmatch(text) is not None


def lenient_label(text: object) -> int | None:
    """The grade of the one well-formed `<answer>` section, whatever surrounds it (a lenient read)."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
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
        return ParseError(split.message, split.position, lenient_label(text))
    parsed = _parse_lines(*split["checks"])
    if isinstance(parsed, ParseError):
        return ParseError(parsed.message, parsed.position, lenient_label(text))
    rule_body, rule_at = split["rule"]
    rule = _RULE.match(" ".join(rule_body.split()))
    if not rule:
        return ParseError(
            f"<rule>: expected `ID name`, got {rule_body.strip()[:40]!r}", rule_at, lenient_label(text)
        )
    answer_body, answer_at = split["answer"]
    answer = answer_body.strip()
    if answer not in {"1", "2", "3", "4"}:
        return ParseError(f"<answer>: expected one grade 1-4, got {answer[:40]!r}", answer_at)
    query, product, checks = parsed
    return Reasoning(query, product, checks, rule.group(1), rule.group(2), int(answer))
