"""The size reader: the query's first size, and the product's size of the same family.

Sizes are canonical ("0.5 gal", "500 ml", "12 pack") in the ESCI units; checks convert units.
"""

from __future__ import annotations

import re

from agrl.data.annotate.lexicon import entry, words
from agrl.data.annotate.reader import CHECKS, READERS, Pair, Reading
from agrl.data.annotate.text import field
from agrl.data.catalog import ESCI_UNITS
from agrl.data.slots import compare_size, format_number, parse_size

_UNIT_WORDS: dict[str, list[str]] = entry("size", "units")
if set(_UNIT_WORDS) | {"pack"} != set(ESCI_UNITS):  # pragma: no cover - guards catalogue edits
    raise RuntimeError(
        "every unit of agrl.data.catalog.ESCI_UNITS needs its spellings in annotate/lexicon/size.yaml"
    )
UNIT_OF = {w: u for u, ws in _UNIT_WORDS.items() for w in ws}
_SPELLED: dict[str, float] = entry("size", "spelled_numbers")
# A number: "1-1/2" or "1 1/2" (mixed fraction), "1/2", "1.5", "half" (spelled).
_NUMBER = r"(\d+[ -]\d+/\d+|\d+/\d+|\d+(?:\.\d+)?|" + "|".join(map(re.escape, _SPELLED)) + ")"
_SIZE_RE = re.compile(
    rf"(?<![a-z\d./,]){_NUMBER}\s*-?\s*("
    + "|".join(re.escape(w) for w in sorted(UNIT_OF, key=len, reverse=True))
    + r")(?![a-z\d])"
)
_PACK_RE = re.compile(
    r"(?<![a-z\d./,])(?:(\d+)\s*-?\s*(?:packs?|pk|count|ct|pcs|sets?)|(?:pack|set|box|case) of (\d+))(?![a-z\d])"
)
# After a unit, words that make it something else: "2 in 1" (preposition), "9 M US" (a shoe width).
_NOT_UNIT_AFTER = {"in": re.compile(r"\s+[a-z\d]"), "m": re.compile(r"\s*(?:us|uk|eu|w)\b")}
_NOT_GRAMS = words("size", "not_grams")


def _number(text: str) -> float:
    if text in _SPELLED:
        return float(_SPELLED[text])
    whole, _, fraction = text.replace("-", " ").rpartition(" ") if "/" in text else ("", "", text)
    if "/" in fraction:
        top, bottom = fraction.split("/")
        value = int(top) / int(bottom) if int(bottom) else 0.0
        return value + (int(whole) if whole else 0)
    return float(fraction)


def sizes(text: str) -> list[str]:
    """Sizes in `text`, canonical ("0.5 gal", "500 ml", "12 pack"), in order of appearance."""
    lowered = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text.lower().replace("\u2033", '"'))
    found: list[tuple[int, str]] = []
    for hit in _SIZE_RE.finditer(lowered):
        spelled, unit_word = hit.group(1), hit.group(2)
        unit = UNIT_OF[unit_word]
        after = _NOT_UNIT_AFTER.get(unit)
        if after and unit_word in ("in", "m") and after.match(lowered, hit.end()):
            continue
        if unit == "g" and hit.group(0).replace(" ", "") in _NOT_GRAMS:
            continue
        if spelled.isalpha() and unit not in ("pt", "qt", "gal", "l", "lb", "oz", "in", "ft"):
            continue  # "one g" is no size; "half gallon", "two pound" are
        amount = _number(spelled)
        if amount > 0:
            found.append((hit.start(), f"{format_number(amount)} {unit}"))
    for hit in _PACK_RE.finditer(lowered):
        count = int(hit.group(1) or hit.group(2))
        if count > 0:
            found.append((hit.start(), f"{count} pack"))
    return [size for _, size in sorted(found)]


def _parse(size: str, like: str = "") -> tuple[str, float, str] | None:
    """`size` parsed with the ESCI units; an `oz` beside a volume (`like`) is a fluid ounce."""
    return parse_size(_fluid(size, like), ESCI_UNITS)


def _fluid(size: str, like: str) -> str:
    """ "16 oz" -> "16 floz" when the size it is compared with is a volume (drinkware says oz for fl oz)."""
    other = parse_size(like, ESCI_UNITS) if like else None
    return size[:-2] + "floz" if size.endswith(" oz") and other is not None and other[0] == "volume" else size


@CHECKS.register("size")
def size_check(query: str, product: str) -> str:
    """match (same quantity and unit) / equivalent (same quantity in another unit) / mismatch.
    Labels round conversions ("16.9 fl oz" for 500 ml), so other units may differ by 2 %."""
    q, p = _fluid(query, product), _fluid(product, query)
    same_unit = q.split()[-1:] == p.split()[-1:]
    return compare_size(q, p, ESCI_UNITS, rel_tol=0.0 if same_unit else 0.02)


@READERS.register("size")
def read_size(pair: Pair) -> Reading:
    """The query's first size, and the product's size of the same family (its size field, else the
    title) when the product names one such quantity (or the query's among several)."""
    stated = sizes(pair.query)
    if not stated:
        return Reading(None, None)
    wanted = stated[0]
    for source in (field(pair.product, "size"), field(pair.product, "title")):
        same = [s for s in sizes(source) if _same_family(wanted, s)]
        if not same:
            continue
        for size in same:
            if size_check(wanted, size) in ("match", "equivalent"):
                return Reading(wanted, size)
        # Several different sizes of the family (dimensions, variants): which one is the product's?
        amounts = {round(parsed[1], 6) for s in same if (parsed := _parse(s, wanted)) is not None}
        return Reading(wanted, same[0] if len(amounts) == 1 else None)
    return Reading(wanted, None)


def _same_family(query: str, product: str) -> bool:
    q, p = _parse(query, product), _parse(product, query)
    return q is not None and p is not None and q[0] == p[0]
