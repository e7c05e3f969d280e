"""Text helpers every reader shares: the `_words` form, whole-word search, slot values, singulars."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

from agrl.data.annotate.lexicon import entry, words
from agrl.schema import normalize_value

STOPWORDS = words("text", "stopwords")
_IRREGULAR: dict[str, str] = entry("text", "irregular_plurals")
_NOT_PLURAL = words("text", "not_plural")
_IE_NOUNS = words("text", "ie_nouns")
_I_NOUNS = words("text", "i_nouns")


def words_of(text: str) -> str:
    """Lower case ASCII words: accents dropped, `'` and `.` inside words dropped, other punctuation a space."""
    text = text.lower().replace("\u2019", "'")
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z0-9])['.](?=[a-z0-9])", "", text)
    return " ".join(re.sub(r"[^a-z0-9&]+", " ", text).split())


def contains(haystack: str, needle: str) -> bool:
    """`needle` as whole words in `haystack` (both already in `words_of` form)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def slot_value(text: str) -> str:
    """A slot value the reasoning format can carry: no `;`, tags or control characters, single spaces, lower case."""
    text = "".join(" " if ch in ";<>" or unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return normalize_value(text)


def field(product: Mapping, key: str) -> str:
    """A product's text field, "" when it is missing or not text."""
    value = product.get(key)
    return value if isinstance(value, str) else ""


@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    """The singular of an English noun, by suffix rules ("boxes" -> "box", "supplies" -> "supply")."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("is") and word[:-1] in _I_NOUNS:
        return word[:-1]
    if len(word) <= 3 or word in _NOT_PLURAL or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-1] if word[:-1] in _IE_NOUNS else word[:-3] + "y"
    if re.search(r"(x|ch|sh|ss|zz)es$", word):
        return word[:-2]
    return word[:-1]


def singular_phrase(phrase: str) -> str:
    """A noun phrase with its last word singular: "water bottles" -> "water bottle"."""
    tokens = words_of(phrase).split()
    return " ".join([*tokens[:-1], singular(tokens[-1])]) if tokens else ""
