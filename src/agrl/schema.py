"""The shared vocabulary of records and reasoning, defined once: every other module imports it.

Slots (what a query can ask for, in reasoning order), check values, grades, the marker of an
absent value, the product fields a record may carry (in prompt order) and value normalisation.
"""

from __future__ import annotations

SLOTS: tuple[str, ...] = ("type", "for", "brand", "model", "gender", "size", "color", "price", "negation")
CHECK_VALUES: tuple[str, ...] = ("match", "equivalent", "mismatch", "unknown")
GRADES: tuple[int, ...] = (1, 2, 3, 4)
ABSENT = "-"  # a slot value one side does not state
# Product fields in the order prompts list them; all are strings but `price` (a number).
PRODUCT_FIELDS: tuple[str, ...] = ("title", "category", "brand", "model", "color", "gender", "size", "price")
TEXT_PRODUCT_FIELDS: tuple[str, ...] = tuple(f for f in PRODUCT_FIELDS if f != "price")


def normalize_value(value: object) -> str:
    """Canonical slot value: lower case, single spaces, no `|` (the reasoning line's value separator)."""
    return " ".join(str(value).lower().replace("|", "/").split())
