"""The brand reader: the query's brand (its words, squashed or initials) and the product's brand field.

A query's brand is known from the product's own brand field, from brands other products of the same
query carry (`query_brands`) or from the catalogue; a product of another brand is a mismatch only when
its title does not name the asked-for brand (a compatible accessory) and it is no sub-brand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from agrl.data.annotate.lexicon import words
from agrl.data.annotate.reader import READERS, Pair, Reading
from agrl.data.annotate.text import contains, field, slot_value, words_of
from agrl.data.catalog import BRAND_ALIASES, BRANDS

_NO_BRAND = words("brand", "no_brand")
_AMBIGUOUS_BRANDS = words("brand", "ambiguous_brands")
_NOT_INITIALS = words("brand", "not_initials")
NEGATORS = words("negation", "negators")

# Every catalogue brand and alias in `words_of` form -> canonical brand, and back.
BRAND_KEYS: dict[str, str] = {}
for _brand_names in BRANDS.values():
    for _name in _brand_names:
        BRAND_KEYS[words_of(_name)] = _name
for _name, _aliases in BRAND_ALIASES.items():
    for _alias in _aliases:
        BRAND_KEYS.setdefault(words_of(_alias), _name)
ALIASES_OF: dict[str, set[str]] = {}
for _alias, _name in BRAND_KEYS.items():
    ALIASES_OF.setdefault(_name, set()).add(_alias)
_LONGEST_BRAND = max(len(k.split()) for k in BRAND_KEYS)


def _catalog_brands_in(text: str) -> list[tuple[str, str]]:
    """Catalogue (alias, brand) pairs whose alias is in `text`, longest alias first."""
    tokens = text.split()
    found = []
    for n in range(min(_LONGEST_BRAND, len(tokens)), 0, -1):
        for i in range(len(tokens) - n + 1):
            alias = " ".join(tokens[i : i + n])
            name = BRAND_KEYS.get(alias)
            if name and alias not in _AMBIGUOUS_BRANDS and name not in _AMBIGUOUS_BRANDS:
                found.append((alias, name))
    return found


@lru_cache(maxsize=65536)
def brand_key(brand: str) -> str:
    """A brand field in `words_of` form, "" when it names no brand ("Generic", "N/A", one letter)."""
    key = words_of(brand)
    return "" if key in _NO_BRAND or len(key.replace(" ", "")) < 2 or not re.search("[a-z]", key) else key


@lru_cache(maxsize=65536)
def canonical_brand(brand: str) -> str:
    return BRAND_KEYS.get(words_of(brand), slot_value(brand))


def _initials(key: str) -> str:
    """ "under armour" -> "ua": how queries abbreviate multi-word brands."""
    parts = key.split()
    initials = "".join(w[0] for w in parts) if len(parts) >= 2 else ""
    return "" if initials in _NOT_INITIALS or not initials.isalpha() else initials


def brand_stated(key: str, text: str) -> bool:
    """Whether a brand (in `words_of` form) is in the query: as words, squashed, or as initials (ua)."""
    squashed = key.replace(" ", "")
    tokens = text.split()
    return contains(text, key) or (len(squashed) >= 4 and squashed in tokens) or _initials(key) in tokens


def _brand_in_query(key: str, text: str) -> str:
    """The query words that name the brand `key` (as written in the query), or ""."""
    if contains(text, key):
        return key
    squashed, initials = key.replace(" ", ""), _initials(key)
    for token in text.split():
        if (len(squashed) >= 4 and token == squashed) or (initials and token == initials):
            return token
    return ""


def read_brand(query: str, product: Mapping, query_brands: Iterable[str] = ()) -> Reading:
    """The query's brand and the product's (None where the product side is not a clear brand)."""
    text = words_of(query)
    raw = product.get("brand")
    key = brand_key(raw) if isinstance(raw, str) else ""
    if key and brand_stated(key, text) and (not NEGATORS & set(key.split()) or _confirmed(key, query_brands)):
        value = canonical_brand(raw)
        return Reading(value, value)
    # Brands the query is known to name (read off other products of the same query), then the catalogue's.
    known = {brand_key(b): canonical_brand(b) for b in query_brands if isinstance(b, str) and brand_key(b)}
    candidates = [
        (k, v) for k, v in sorted(known.items(), key=lambda kv: -len(kv[0])) if brand_stated(k, text)
    ]
    candidates += _catalog_brands_in(text)
    if not candidates:
        return Reading(None, None)
    stated = candidates[0][1]
    if not key:
        return Reading(stated, None)
    aliases = (
        {k for k, v in known.items() if v == stated} | ALIASES_OF.get(stated, set()) | {words_of(stated)}
    )
    title = words_of(field(product, "title"))
    # A title naming the asked-for brand is a compatible accessory ("case for apple watch"), and a
    # brand field starting with it a sub-brand ("adidas originals"): neither is a clear mismatch.
    for alias in aliases:
        if contains(title, alias) or key.startswith(alias + " ") or alias.startswith(key + " "):
            return Reading(stated, None)
    return Reading(stated, canonical_brand(raw))


def brand_words(query: str, product: Mapping, brand: str | None, query_brands: Iterable[str]) -> str:
    """The query's words that name its brand, so that other slots skip them (black & decker is no colour)."""
    if not brand:
        return ""
    text = words_of(query)
    keys = {words_of(brand)} | ALIASES_OF.get(brand, set())
    keys |= {brand_key(b) for b in (*query_brands, field(product, "brand")) if isinstance(b, str)}
    keys = {
        k
        for k in keys
        if k and (canonical_brand(k) == brand or words_of(canonical_brand(k)) == words_of(brand))
    }
    for key in sorted(keys, key=len, reverse=True):
        found = _brand_in_query(key, text)
        if found:
            return found
    return ""


def _confirmed(key: str, query_brands: Iterable[str]) -> bool:
    """Whether the group's brands (or the catalogue) confirm a brand. A brand field that reads as a
    negation ("Listen Without Prejudice" on one shirt) is the query's brand only then: otherwise
    the query may well exclude something, or name a design."""
    return key in BRAND_KEYS or any(brand_key(b) == key for b in query_brands)


@READERS.register("brand")
def _brand(pair: Pair) -> Reading:
    return pair.brand  # read before the other slots (see `Pair`)


def query_brands(query: str, products: Iterable[Mapping], min_products: int = 2) -> list[str]:
    """Brands of `products` that `query` names: what the products' brand fields reveal about the query.

    The loader passes them to :func:`agrl.data.annotate.annotate` for every product of the query, so
    that a product of another brand is annotated as a brand mismatch even when the query's brand is
    not in the catalogue. A brand outside the catalogue counts only when at least `min_products`
    products carry it: one product whose brand field happens to repeat query words ("listen without
    prejudice") must not turn every other product of the query into a brand mismatch.
    """
    text = words_of(query)
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for product in products:
        raw = product.get("brand")
        if not isinstance(raw, str):
            continue
        key = brand_key(raw)
        if key and brand_stated(key, text):
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, raw)
    return [first[k] for k, n in counts.items() if n >= min_products or k in BRAND_KEYS]
