"""The gender reader: men / women / kids from the query, and from the product's gender field or title."""

from __future__ import annotations

from agrl.data.annotate.lexicon import entry
from agrl.data.annotate.reader import READERS, Pair, Reading
from agrl.data.annotate.text import field, words_of

GENDER_WORDS: dict[str, str] = entry("gender", "gender_words")


def genders(text: str) -> set[str]:
    return {GENDER_WORDS[w] for w in words_of(text).split() if w in GENDER_WORDS}


@READERS.register("gender")
def read_gender(pair: Pair) -> Reading:
    """The query's one gender, and the product's (both men and women, or "unisex": unisex)."""
    stated = genders(pair.query) - {"unisex"}
    if len(stated) != 1:
        return Reading(None, None)
    wanted = stated.pop()
    for source in (
        field(pair.product, "gender"),
        field(pair.product, "title"),
        field(pair.product, "category"),
    ):
        found = genders(source)
        if "kids" in found and not found & {"men", "women"}:
            return Reading(wanted, "kids")  # "unisex child": a kids' product
        if "unisex" in found or {"men", "women"} <= found:
            return Reading(wanted, "unisex")
        if len(found) == 1:
            return Reading(wanted, found.pop())
        if found:
            return Reading(wanted, None)
    return Reading(wanted, None)
