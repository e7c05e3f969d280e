"""The extension point of the annotator: one reader per slot, registered by slot name.

A reader takes a `Pair` and returns a `Reading`: the value the query states (None: it states none),
the product's value (None: the product side cannot be read) and, optionally, its own check. Without
one, the check comes from the slot's registered check, else `agrl.data.slots.compare_slot`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from agrl.registry import Registry


@dataclass(frozen=True)
class Pair:
    """One query-product pair as the readers see it.

    The brand is read first (`brand`: the brand reader's reading) because other readers skip the
    query words that name it (`brand_words`): "black & decker" is no colour, "listen without
    prejudice" as a brand is no exclusion. `unbranded` is the query without those words.
    `query_types`: the compound types the query's other listings confirm (`query_types`)."""

    query: str
    product: Mapping
    query_brands: tuple[str, ...]
    brand: Reading
    brand_words: str
    unbranded: str
    query_types: tuple[str, ...] = ()


class Reading(NamedTuple):
    query: str | None
    product: str | None
    check: str | None = None


NONE = Reading(None, None)

READERS: Registry = Registry("slot reader")
CHECKS: Registry = Registry("slot check")

ReaderFn = Callable[[Pair], Reading]
CheckFn = Callable[[str, str], str]
