"""The negation reader: the feature the query excludes, and whether the product's title says it has it.

`without X`, `no X`, `not X`, `non-X`, `X-free` and ShopRules' phrasings ("laceless") exclude a
feature; a product that says neither that it has the feature nor that it lacks it is left out:
nothing the judge sees tells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from agrl.data.annotate.color import COLOR_OF
from agrl.data.annotate.lexicon import entry, words
from agrl.data.annotate.reader import READERS, Pair, Reading
from agrl.data.annotate.text import STOPWORDS, contains, field, singular, singular_phrase, words_of
from agrl.data.catalog import FEATURES

NEGATORS = words("negation", "negators")
# Words after which a negated phrase ends ("without laces for men" -> laces).
_PHRASE_END = STOPWORDS | {"size", "sizes", "pack", "set", "men", "mens", "women", "womens", "kids"}
_FREE_COMPOUNDS = words("negation", "free_compounds")
_FREE_QUALITIES = words("negation", "free_qualities")
_NEGATED_QUALITIES = words("negation", "negated_qualities")
NAMES: tuple[str, ...] = tuple(entry("negation", "names"))
# FEATURES phrasings without the feature word itself ("laceless", "unscented", "cordless").
_FEATURE_NEGATIONS: dict[str, str] = {
    phrase: feature
    for feature, info in FEATURES.items()
    for phrase in info["query"]
    if feature not in phrase.split()
}
# Words that attach a part to the product ("with lids", "w/ straw", "lids included").
_WITH = r"(?:with|w|plus|and|&|includes|including|featuring)"
_TOOL_NOUNS = "|".join(entry("negation", "tool_nouns"))
_FEATURES_BY_SINGULAR = {singular(name): info for name, info in FEATURES.items()}


def _negated_phrase(tokens: list[str], index: int) -> str | None:
    """The feature negated by the negator at `index` ("without the laces for men" -> "laces")."""
    rest = tokens[index + 1 :]
    while rest and rest[0] in {"a", "an", "the", "any"}:
        rest = rest[1:]
    phrase: list[str] = []
    for token in rest:
        if token in _PHRASE_END or token in NEGATORS or token in COLOR_OF or not token[0].isalpha():
            break
        phrase.append(token)
    # "non-leather jacket", "no show socks": these negate one word. "without" takes a two-word
    # feature only when it closes the phrase ("without led lamp").
    if tokens[index] != "without" or len(phrase) > 2:
        phrase = phrase[:1]
    if not phrase or len(phrase[0]) < 2 or (tokens[index] != "without" and phrase[0] in _NEGATED_QUALITIES):
        return None
    return " ".join(phrase)


def negated_feature(query: str) -> str | None:
    """The feature the query excludes: `without X`, `no X`, `not X`, `non-X`, `X-free`, `laceless`."""
    text = f" {words_of(query.replace('w/o', ' without '))} "
    for name in NAMES:
        text = text.replace(f" {name} ", " ")
    tokens = text.split()
    for index, word in enumerate(tokens):
        if word in NEGATORS:
            phrase = _negated_phrase(tokens, index)
            if phrase:
                return phrase
        if word == "free" and index > 0:
            before = tokens[index - 1]
            after = tokens[index + 1] if index + 1 < len(tokens) else ""
            if (
                before not in STOPWORDS
                and before not in NEGATORS
                and before[0].isalpha()
                and len(before) >= 2
                and after not in _FREE_COMPOUNDS
                and before not in _FREE_QUALITIES
            ):
                return before
    joined = " ".join(tokens)
    for phrase, feature in _FEATURE_NEGATIONS.items():
        if contains(joined, words_of(phrase)):
            return feature
    return None


def _variants(word: str) -> set[str]:
    """The word with its likely singular and plural."""
    one = singular(word)
    out = {word, one, one + "s"}
    if one.endswith("y"):
        out.add(one[:-1] + "ies")
    if re.search(r"(s|x|z|ch|sh)$", one):
        out.add(one + "es")
    return out


def _alternation(options: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(options, key=len, reverse=True))


@lru_cache(maxsize=4096)
def _mentions(feature: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """Patterns for the product saying it lacks `feature`, for it saying it has it, and for a tool
    named after it ("straw cleaner")."""
    parts = feature.split()
    head = _alternation(_variants(parts[-1]))
    name = r"\s+".join([*(re.escape(p) for p in parts[:-1]), f"(?:{head})"])
    negated = [
        rf"\b(?:without|no|non|not|w o)\s+(?:(?:a|an|the|any)\s+)?(?:\w+\s+)?{name}\b",
        rf"\b(?:{head})\s?(?:free|less)\b",
        rf"\b{name}\s+(?:not included|sold separately)\b",
    ]
    positive = [
        # "with airtight lids", "w/ straw", "& lids": the part, up to two describing words before it.
        rf"\b{_WITH}\s+(?:(?:a|an|the|\d+)\s+)?(?:(?!for\b|without\b)[a-z0-9]+\s+){{0,2}}{name}\b(?!\s+(?:{_TOOL_NOUNS})\b)",
        rf"\b{name}\s+(?:included|includes|attached)\b",
    ]
    info = _FEATURES_BY_SINGULAR.get(feature)
    if info:
        # ShopRules' surface forms: "slip-on" means no laces, "lace-up" means laces.
        negated += [rf"\b{re.escape(words_of(p))}\b" for p in (*info["title_no"], *info["query"])]
        positive += [rf"\b{re.escape(words_of(p))}\b" for p in info["title_yes"]]
    tools = re.compile(rf"\b{name}\s+(?:{_TOOL_NOUNS})\b")
    return re.compile("|".join(negated)), re.compile("|".join(positive)), tools


@READERS.register("negation")
def read_negation(pair: Pair) -> Reading:
    """The excluded feature, and whether the product's title (or color) says it has it or lacks it.
    The query is read without the words of its brand ("listen without prejudice" as a brand is a
    name, not an exclusion)."""
    feature = negated_feature(pair.unbranded)
    if feature is None:
        return Reading(None, None)
    feature = singular_phrase(feature)  # "without lids" and "without lid" exclude the same part
    negated, positive, tools = _mentions(feature)
    for source in (field(pair.product, "title"), field(pair.product, "color")):
        text = words_of(source.replace("w/o", " without ").replace("w/", " with ").replace("+", " plus "))
        # A negated mention ("lights without wiring") is not the feature being present, nor is a
        # tool for it ("straw cleaner brush").
        remaining = negated.sub(" ", text)
        if positive.search(tools.sub(" ", remaining)):
            return Reading(feature, f"has {feature}")
        if remaining != text:
            return Reading(feature, f"no {feature}")
    return Reading(feature, None)
