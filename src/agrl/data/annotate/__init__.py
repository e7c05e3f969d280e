"""A heuristic slot annotator for real listings (ESCI): query text x product text -> partial annotations.

`annotate` reads the slots it can read reliably (type, brand, gender, size, color, negation) and returns
*partial* annotations in ShopRules' format: only slots the query states, and product values and checks
only where the product side could be read too. There is no rule or reference reasoning: real data has
no ground truth for them, and the rewards score the missing parts as None.

Every product fact comes from text the judge's prompt shows: the title, brand and color (and the
category, gender and size of records that have them), never bullets or descriptions, so that a judge
is never rewarded for a fact it could not see. Where the product side is uncertain it is left out:
a wrong gold fact teaches the judge a wrong fact, a missing one only costs coverage.

One reader per slot (`brand`, `color`, `size`, `negation`, `gender`, `product_type`), registered in
`READERS` by slot name; their word lists are data under `lexicon/`. A new slot reader is one
decorated function: ``@READERS.register("model")``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Importing the reader modules registers them.
from agrl.data.annotate import color, gender, negation, size  # noqa: F401
from agrl.data.annotate.brand import brand_words, query_brands, read_brand
from agrl.data.annotate.product_type import query_types
from agrl.data.annotate.reader import CHECKS, READERS, Pair, Reading
from agrl.data.annotate.text import singular, singular_phrase, slot_value, words_of
from agrl.data.slots import compare_slot
from agrl.schema import SLOTS


def _check(slot: str, query: dict[str, str], product: dict[str, str]) -> str:
    if slot in CHECKS:
        return CHECKS[slot](query[slot], product[slot])
    return compare_slot(slot, query, product)


def read_pair(
    query: str, product: Mapping, query_brands: Iterable[str] = (), query_types: Iterable[str] = ()
) -> Pair:
    """The pair as the readers see it: the brand read first, and the query words naming it."""
    brands = tuple(b for b in query_brands if isinstance(b, str))
    brand = read_brand(query, product, brands)
    found = brand_words(query, product, brand.query, brands)
    unbranded = f" {words_of(query)} ".replace(f" {found} ", " ") if found else query
    types = tuple(t for t in query_types if isinstance(t, str))
    return Pair(query, product, brands, brand, found, unbranded, types)


def query_context(query: str, products: Iterable[Mapping]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the annotator reads off all the products shown for one query: the brands the query names
    (`query_brands`) and its compound types the titles confirm (`query_types`); pass both to
    `annotate` for each of the query's products."""
    products = list(products)
    brands = tuple(query_brands(query, products))
    return brands, query_types(query, products, brands)


def annotate(
    query: str, product: Mapping, query_brands: Iterable[str] = (), query_types: Iterable[str] = ()
) -> dict:
    """Partial slot annotations for one query-product pair, in ShopRules' annotation format.

    Returns ``{"query": {...}, "product": {...}, "checks": {...}, "partial": True}`` over the slots
    type, brand, gender, size, color and negation, in `agrl.schema.SLOTS` order. A slot appears in
    `query` only when the query states it, and in `product` and `checks` only when the product's
    title, brand or color (or category, gender, size) state it too. A slot the annotator cannot read
    on the product side is left out rather than written as ``-`` / ``unknown``: the judge may read it
    where the annotator cannot, and a gold ``unknown`` would reward calling it unknown, which the
    rulebook turns into "everything matches" whatever ESCI says.

    Checks: brand, gender and negation from :func:`agrl.data.slots.compare_slot`; size after unit
    conversion (ESCI units); color matches when any colour the query names is the product's; type
    matches on the same head noun, is equivalent for a synonym and mismatches for another product.

    `query_brands` are brands known to be named by the query (see :func:`query_brands`); without
    them the query's brand is read only when it is the product's brand or a catalogue brand.
    `query_types` are its two-word types that its listings' titles confirm (`query_types`; without
    them the query's type is its head noun or a lexicon compound). `query_context` reads both.
    """
    q: dict[str, str] = {}
    p: dict[str, str] = {}
    checks: dict[str, str] = {}
    if isinstance(query, str) and isinstance(product, Mapping):
        pair = read_pair(query, product, query_brands, query_types)
        for slot in SLOTS:  # in SLOTS order, so that the output is too
            if slot not in READERS:
                continue
            reading: Reading = READERS[slot](pair)
            if reading.query and slot_value(reading.query):
                q[slot] = slot_value(reading.query)
                if reading.product and slot_value(reading.product):
                    p[slot] = slot_value(reading.product)
                    checks[slot] = reading.check if reading.check is not None else _check(slot, q, p)
    return {"query": q, "product": p, "checks": checks, "partial": True}


__all__ = [
    "CHECKS",
    "READERS",
    "Pair",
    "Reading",
    "annotate",
    "query_brands",
    "query_context",
    "query_types",
    "read_pair",
    "singular",
    "singular_phrase",
]
