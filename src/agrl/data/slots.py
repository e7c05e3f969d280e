"""Slot comparison: query slots x product slots -> checks (match / equivalent / mismatch / unknown).

Shared by the ShopRules generator (which labels with it) and the ESCI annotator (which fills what
it can read from real text). Slot values are canonical strings; see ``agrl.reasoning``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agrl.data.catalog import UNITS
from agrl.schema import ABSENT, SLOTS

Units = Mapping[str, tuple[str, float]]  # unit -> (family, factor to the family's base unit)

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")
_LETTER_SIZES = ("xs", "s", "m", "l", "xl", "xxl", "xxxl")


def parse_size(value: str, units: Units = UNITS) -> tuple[str, float, str] | None:
    """`"1.5 l"` -> ("volume", 1500.0, "l"); a bare value (shoe "10", clothing "xl") is its own family.

    `units` is the unit table: ShopRules' `UNITS` by default, `catalog.ESCI_UNITS` for real listings."""
    text = value.strip().lower()
    found = _SIZE.match(text)
    if found and found.group(2) in units:
        family, factor = units[found.group(2)]
        return family, float(found.group(1)) * factor, found.group(2)
    if found and not found.group(2):
        return "plain", float(found.group(1)), ""
    if text in _LETTER_SIZES:
        return "letter", float(_LETTER_SIZES.index(text)), text
    return None


def format_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def compare_size(query: str, product: str, units: Units = UNITS, rel_tol: float = 0.0) -> str:
    """Same family and quantity: match (same unit) or equivalent (another unit). `rel_tol` lets
    converted quantities differ by that fraction (a label's rounded "16.9 fl oz" is 500 ml)."""
    q, p = parse_size(query, units), parse_size(product, units)
    if q is None or p is None or q[0] != p[0]:
        return "mismatch" if q is not None and p is not None else "unknown"
    if abs(q[1] - p[1]) > max(1e-6, rel_tol * max(abs(q[1]), abs(p[1]))):
        return "mismatch"
    return "match" if q[2] == p[2] else "equivalent"


def compare_price(cap: str, price: str) -> str:
    try:
        limit = float(cap.split()[-1])
        amount = float(price)
    except (ValueError, IndexError):
        return "unknown"
    return "match" if amount <= limit else "mismatch"


def compare_slot(
    slot: str, query: Mapping[str, str], product: Mapping[str, str], type_implied: bool = False
) -> str:
    q, p = query.get(slot, ABSENT), product.get(slot, ABSENT)
    if slot == "for":
        q_type, p_type = query.get("type", ABSENT), product.get("type", ABSENT)
        if q != ABSENT and p != ABSENT:
            return "match" if q == p else "mismatch"
        if p != ABSENT:  # the product is an accessory; the query asks for its main product?
            return "mismatch" if p == q_type else "unknown"
        if q != ABSENT:  # the query asks for an accessory; the product is the main product?
            return "mismatch" if q == p_type else "unknown"
        return "unknown"
    if q == ABSENT or p == ABSENT:
        return "unknown"
    if slot == "type":
        if q != p:
            return "mismatch"
        return "equivalent" if type_implied else "match"
    if slot == "size":
        return compare_size(q, p)
    if slot == "price":
        return compare_price(q, p)
    if slot == "negation":
        return "mismatch" if p.startswith("has ") else "match" if p.startswith("no ") else "unknown"
    if slot == "gender" and p == "unisex":
        return "match"
    return "match" if q == p else "mismatch"


def shown_slots(query: Mapping[str, str], product: Mapping[str, str]) -> list[str]:
    """The slots the reasoning lists: `type`, every slot the query states, and `for` if either side has it."""
    shown = {"type"} | {s for s, v in query.items() if v != ABSENT}
    if product.get("for", ABSENT) != ABSENT:
        shown.add("for")
    return [s for s in SLOTS if s in shown]


def compare(
    query: Mapping[str, str], product: Mapping[str, str], type_implied: bool = False
) -> dict[str, str]:
    return {s: compare_slot(s, query, product, type_implied) for s in shown_slots(query, product)}
