"""The type reader: the query's head noun phrase, and what the product's title says it is.

The query's type is its head noun phrase, singular ("paper bags without handles" -> "paper bag");
the product's is the head of the first title phrase that ends in a product noun. It matches on the
same head noun with the query's compound words, is equivalent for a synonym or kind, and mismatches
for another product (an accessory, a part, a different thing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from agrl.data.annotate.color import COLOR_OF
from agrl.data.annotate.gender import GENDER_WORDS
from agrl.data.annotate.lexicon import entry, words
from agrl.data.annotate.negation import NAMES, NEGATORS
from agrl.data.annotate.reader import READERS, Pair, Reading
from agrl.data.annotate.size import UNIT_OF
from agrl.data.annotate.text import STOPWORDS, field, singular, slot_value, words_of

_COMPOUND_TYPES = words("type", "compound_types")
_MATERIALS = words("type", "materials")
_QUERY_TYPE_ALIASES: dict[str, str] = entry("type", "query_type_aliases")
_VAGUE_HEADS = words("type", "vague_heads")
_TYPE_SYNONYMS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in entry("type", "type_synonyms").items()}
_ACCESSORY_NOUNS = words("type", "accessory_nouns")
_PRODUCT_NOUNS = words("type", "product_nouns")
_QUERY_MODIFIERS = words("type", "query_modifiers")
_COUNT_HEADS = words("type", "count_heads")
_STYLE_PHRASES: tuple[str, ...] = tuple(entry("type", "style_phrases"))
_TITLE_CUTS: dict[str, str] = entry("type", "title_cuts")
_SHADES = words("color", "shades")
_TITLE_JUNK = words("type", "title_junk")
# "Book 10", "Vol. 2": the number of a series, not the product's type.
_SERIES = re.compile(r"\b(?:book|vol|volume|part|season|episode|edition)\s+\d+\b")

Phrase = tuple[list[str], str]


def _type_name(tokens: list[str]) -> str:
    """A type's words with the head singular; known aliases resolved."""
    name = " ".join([*tokens[:-1], singular(tokens[-1])]) if tokens else ""
    return _QUERY_TYPE_ALIASES.get(name, name)


def query_type(query: str, brand_words: str = "", compounds: Iterable[str] = ()) -> str | None:
    """The query's product type: its head noun phrase, singular ("paper bags without handles" ->
    "paper bag", "cdj stand" -> "stand"); None when the query names no product (a style, a name).
    `compounds`: two-word types the catalogue confirms for this query (`query_types`)."""
    # Aliases first: "audible books" names audiobooks although "audible" is the brand too.
    text = f" {_aliased(words_of(query.replace('w/o', ' without ')))} "
    for phrase in (brand_words, *NAMES, *_STYLE_PHRASES):
        if phrase:
            text = text.replace(f" {phrase} ", " ")
    tokens = text.split()
    # What follows "for", "without", "with" is the use or an exclusion, not the type.
    for index, token in enumerate(tokens):
        if token in {"for", "without", "with", "w", "that", "to"} and index > 0:
            tokens = tokens[:index]
            break
    tokens = [t for i, t in enumerate(tokens) if not _drops(tokens, i)]
    while tokens and (
        tokens[-1] in _QUERY_MODIFIERS
        or tokens[-1] in GENDER_WORDS
        or tokens[-1] in COLOR_OF
        or (len(tokens) > 1 and singular(tokens[-1]) in _COUNT_HEADS)
    ):
        tokens.pop()
    if not tokens or not tokens[-1].replace("_", "").isalpha() or len(tokens[-1]) < 3:
        return None
    if "_" in tokens[-1]:
        return tokens[-1].replace("_", " ")
    head = singular(tokens[-1])
    if head in _VAGUE_HEADS:
        return _type_name(tokens[-3:]) if len(tokens) >= 3 else _type_name(tokens[-2:])
    for n in (3, 2):
        name = _type_name(tokens[-n:])
        if len(tokens) >= n and (name in _COMPOUND_TYPES or name in _TYPE_SYNONYMS or name in compounds):
            return name
    return _type_name(tokens[-1:])


def _compound_candidate(query: str) -> str | None:
    """The query's head with the word before it ("dog bowl", "drill bit"), when that word may be part
    of the name: a word, not a material ("leather belt" is a belt) or a colour."""
    head = query_type(query)
    if not head or " " in head:
        return None
    tokens = [singular(t) for t in words_of(query).split()]
    if head not in tokens:
        return None
    at = tokens.index(head)
    before = tokens[at - 1] if at else ""
    if len(before) < 3 or not before.isalpha() or before in _MATERIALS | STOPWORDS or before in COLOR_OF:
        return None
    return f"{before} {head}"


def query_types(query: str, products: Iterable[Mapping], brands: Iterable[str] = ()) -> tuple[str, ...]:
    """Two-word types of `query` that the titles of its products confirm: "red dog bowl" is a dog
    bowl when listings of two makers shown for it are titled "... Dog Bowl ...", else a bowl (as
    "brass tray" stays a tray). Read off all of a query's products, like `query_brands`, so that a query reads the same
    beside each of them; a listing that does not name the compound ("Bella Bowls") then gets no
    verdict rather than a match on the bare head."""
    text = f" {words_of(query)} "
    for brand in brands:  # the query's brand words are no part of a type ("apple earbuds")
        if isinstance(brand, str) and words_of(brand):
            text = text.replace(f" {words_of(brand)} ", " ")
    candidate = _compound_candidate(text)
    if candidate is None:
        return ()
    makers = set()
    for product in products:
        if not isinstance(product, Mapping):
            continue
        title = [singular(w) for w in words_of(field(product, "title")).split()]
        if _find(title, candidate) != -1:
            makers.add(words_of(field(product, "brand")) or " ".join(title[:2]))
    # Two makers: a model or product line ("UGG Dakota Slipper", "Headliner CDJ Stand") is one
    # maker's name; a kind of product ("Dog Bowl") is what several makers call theirs.
    return (candidate,) if len(makers) >= 2 else ()


def _aliased(text: str) -> str:
    """`text` with type aliases (matched singular) replaced by their type, joined by `_`."""
    tokens = text.split()
    plain = [singular(t) for t in tokens]
    for alias, name in _QUERY_TYPE_ALIASES.items():
        size = len(alias.split())
        for start in range(len(tokens) - size, -1, -1):
            if " ".join(plain[start : start + size]) == alias:
                tokens[start : start + size] = [name.replace(" ", "_")]
                plain[start : start + size] = [name]
    return " ".join(tokens)


def _drops(tokens: list[str], index: int) -> bool:
    """Whether the query token at `index` is no part of a type: a number, a size, a gender, a
    negation ("non leather", "sugar free") or a stop word."""
    token = tokens[index]
    before = tokens[index - 1] if index else ""
    after = tokens[index + 1] if index + 1 < len(tokens) else ""
    return (
        not token.replace("_", "").isalpha()
        or token in UNIT_OF
        or token in STOPWORDS
        or token in NEGATORS
        or before in {"non", "no"}
        or token == "free"
        or after == "free"
        or token in {"mens", "womens", "men", "women", "ladies", "kids", "half", "pint", "gallon", "quart"}
    )


def _title_phrases(title: str) -> list[Phrase]:
    """The title cut into phrases (at punctuation and at "for", "with", ...), each as singular words
    with its kind: "own" (the product's name), "for" (what it is for), "with" (parts it comes with)."""
    text = _SERIES.sub(" ", title.lower().replace("w/", " with "))
    phrases: list[Phrase] = []
    for chunk in re.split(r"[,;:()\[\]{}|!/+]|\s[-\u2013\u2014]\s|\s[-\u2013\u2014]|[-\u2013\u2014]\s", text):
        tokens: list[str] = []
        kind = "own"
        for word in _unnamed(words_of(chunk)).split():
            # "Controller w Software": with; "Women's W Dakota Slipper": a women's line.
            if word in _TITLE_CUTS or (word == "w" and tokens and tokens[-1] not in GENDER_WORDS):
                if tokens:
                    phrases.append((tokens, kind))
                tokens, kind = [], _TITLE_CUTS.get(word, "with")
                continue
            tokens.append(singular(word))
        if tokens:
            phrases.append((tokens, kind))
    return phrases


def _unnamed(text: str) -> str:
    """`text` without names that contain a negation ("Listen Without Prejudice T-Shirt")."""
    text = f" {text} "
    for name in NAMES:
        text = text.replace(f" {name} ", " ")
    return text.strip()


def _head(tokens: list[str]) -> int:
    """Index of a phrase's head: its last word that is no count, size, colour or model number."""
    index = len(tokens) - 1
    while index >= 0:
        word = tokens[index]
        if word in COLOR_OF:
            index -= 1
            while index >= 0 and tokens[index] in _SHADES:  # "Light Dark Brown"
                index -= 1
        elif word in _TITLE_JUNK or not word.isalpha() or len(word) < 3:
            index -= 1
        else:
            return index
    return index


def _find(tokens: list[str], name: str) -> int:
    """Index of the last word of `name` (several words, head singular) in `tokens`, or -1."""
    parts = name.split()
    for end in range(len(tokens) - 1, len(parts) - 2, -1):
        if tokens[end - len(parts) + 1 : end + 1] == parts:
            return end
    return -1


def product_type(qtype: str, product: Mapping) -> tuple[str | None, str | None]:
    """The product's type and the type check, or (None, None) when the title does not say clearly.

    The product's type is the head of the first of the title's first three phrases that ends in a
    product noun. It matches when it is the query's head noun with the query's compound words (a
    "laptop stand" is a stand), is equivalent when it is a synonym or kind of the query's type
    ("thong sandal", "tea towel"), and mismatches when it is another product noun: an accessory
    ("towel hooks", "planer blade set", "case for ..."), or a different product whose title never
    names the query's type. Phrases of parts ("with ...") are never the product's type, and phrases
    of use ("for ...") only for a vague query ("emulsion remover for screen printing").
    """
    phrases = _title_phrases(field(product, "title"))
    category = field(product, "category")
    if category:
        phrases.insert(0, ([singular(w) for w in words_of(re.split(r"[>/|]", category)[-1]).split()], "own"))
    named = 0  # phrases read so far that have a head word (a count like "[50 Sets]" has none)
    for position, (tokens, kind) in enumerate(phrases):
        end = _head(tokens)
        named += end >= 0
        # The first three phrases with a head word: ESCI titles often open with a brand and a model
        # ("YETI Boomer 8, Stainless Steel, Non-Slip Dog Bowl"); later ones describe uses and parts.
        if named > 3:
            break
        # What a product is for names its type only for a vague query ("ink for screen printing").
        if end >= 0 and (kind == "own" or (kind == "for" and qtype.split()[-1] in _VAGUE_HEADS)):
            verdict = _phrase_verdict(qtype, tokens[: end + 1], phrases[position + 1 :])
            if verdict != "next":
                return verdict
        if qtype.split()[-1] in tokens:
            return None, None  # the query's type in a phrase that names no clear product
    return None, None


def _phrase_verdict(qtype: str, tokens: list[str], rest: list[Phrase]):
    """The type reading of one title phrase ending in its head; "next" when the phrase names no product."""
    parts = qtype.split()
    head, noun = parts[-1], tokens[-1]
    synonyms = _TYPE_SYNONYMS.get(qtype, ())
    if head in _VAGUE_HEADS:
        # "screen printing supplies": anything named a screen printing thing is one.
        kind = " ".join(parts[:-1])
        if len(parts) < 2 or _find(tokens, kind) == -1:
            return "next"
        return (f"{kind} {noun}" if _find(tokens, kind) < len(tokens) - 1 else qtype), "equivalent"
    for synonym in synonyms:
        if _find(tokens, synonym) == len(tokens) - 1:
            return synonym, "match" if _find(tokens, qtype) != -1 else "equivalent"
    if len(parts) > 1 and noun == parts[-2]:
        return None, None  # "brad point drill" for a drill bit: the tool, or the bit called by it? unsure
    if noun == head:
        if all(p in tokens[:-1] for p in parts[:-1]):
            return _phrase_type(tokens), "match"
        return None, None  # the same head, other words ("sports bottle" for a water bottle): unsure
    if noun not in _PRODUCT_NOUNS and noun not in _ACCESSORY_NOUNS:
        # A phrase ending in no product noun may still name the type in several words ("Fire TV
        # Stick 4K streaming device"); one word is too weak ("Stand Alone USB Player").
        for name in (qtype, *synonyms):
            if len(name.split()) > 1 and _find(tokens, name) != -1:
                return name, "match" if name == qtype else "equivalent"
        return "next"
    names = (qtype, *synonyms)
    if (
        noun in _ACCESSORY_NOUNS
        and len(tokens) > 1
        and any(_find(tokens[:-1], n) == len(tokens) - 2 for n in (head, *names))
    ):
        return f"{tokens[-2]} {noun}", "mismatch"  # "towel hooks", "planer blades": an accessory
    if noun in _ACCESSORY_NOUNS and any(kind == "for" and _names(w, head, names) for w, kind in rest):
        return noun, "mismatch"  # "case for fire tv stick"
    if _names(tokens, head, names) or any(_names(w, head, names) for w, _ in rest):
        return None, None  # the title names the query's type somewhere else: unsure
    return _phrase_type(tokens), "mismatch"


def _names(tokens: list[str], head: str, names: Iterable[str]) -> bool:
    """Whether `tokens` mention the query's type: its head noun, a word made of it ("heeled sandal"
    for heels, "hooded sweatshirt" for a hood) or a name of it."""
    derived = {head + "d" if head.endswith("e") else head + "ed", head + "ing"}
    return (
        head in tokens
        or any(w in derived for w in tokens)
        or any(_find(tokens, name) != -1 for name in names)
    )


def _phrase_type(tokens: list[str]) -> str:
    """A phrase's type as its title names it: the head with the word before it ("laptop stand")."""
    before = tokens[-2] if len(tokens) > 1 else ""
    plain = (
        before.isalpha()
        and before not in _TITLE_JUNK | STOPWORDS
        and before not in COLOR_OF
        and len(before) > 2
    )
    return f"{before} {tokens[-1]}" if plain else tokens[-1]


@READERS.register("type")
def read_type(pair: Pair) -> Reading:
    """The query's type (without its brand words), the product's, and the type reading's own check."""
    qtype = query_type(pair.query, pair.brand_words, pair.query_types)
    if not qtype or not slot_value(qtype):
        return Reading(None, None)
    return Reading(slot_value(qtype), *product_type(slot_value(qtype), product=pair.product))
