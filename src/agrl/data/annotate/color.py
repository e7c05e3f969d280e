"""The color reader: colours the query names, and the product's from its color field, else its title."""

from __future__ import annotations

import re

from agrl.data.annotate.lexicon import entry
from agrl.data.annotate.reader import CHECKS, READERS, Pair, Reading
from agrl.data.annotate.text import field, words_of
from agrl.data.catalog import COLORS

_EXTRA_COLORS: dict[str, list[str]] = entry("color", "extra_colors")
_COLOR_SURFACES = sorted(
    ((s, c) for c, ss in {**COLORS, **_EXTRA_COLORS}.items() for s in ss), key=lambda sc: -len(sc[0])
)
COLOR_OF = dict(_COLOR_SURFACES)
_COLOR_WORDS = "|".join(re.escape(s) for s, _ in _COLOR_SURFACES)
_COLOR_RE = re.compile(rf"\b({_COLOR_WORDS})\b")
# Colour words inside other names (green tea, white noise) or about people are not the product's colour.
_NOT_COLORS = re.compile(
    r"\b(?:green tea|white noise|black friday|red wine|white wine|orange juice|black pepper|white board|"
    r"black board|blue tooth|gold toe|black light|silver ware|red bull|white chocolate|brown sugar|"
    r"brown rice|white rice|black tea|blue cheese|red velvet|golden retriever|white house|black hole|"
    r"black beans|green beans|black panther|black widow|white claw|gold bond|blue buffalo|black diamond|"
    r"green giant|pink floyd|black sabbath|orange is the new black|white vinegar|red pepper|"
    r"clear coat|clear skin|black (?:& |and )?decker)\b"
    rf"|\b(?:for )?(?:{_COLOR_WORDS}) (?:women|woman|men|man|girls?|boys?|people|folks|owned|history|lives)\b"
)


def colors(text: str) -> list[str]:
    """Canonical colours in `text`, in order, without repeats."""
    found = _NOT_COLORS.sub(" ", words_of(text))
    return list(dict.fromkeys(COLOR_OF[m] for m in _COLOR_RE.findall(found)))


@READERS.register("color")
def read_color(pair: Pair) -> Reading:
    """Query colours joined with "/" ("black and white" -> "black/white") and the product's colours:
    from its color field, else (when the field names none) from its title. The query's brand words
    are skipped (black & decker)."""
    stated = colors(pair.unbranded)
    if not stated:
        return Reading(None, None)
    for source in (field(pair.product, "color"), field(pair.product, "title")):
        found = colors(source)
        if found:
            return Reading("/".join(stated), "/".join(found))
    return Reading("/".join(stated), None)


@CHECKS.register("color")
def color_check(query: str, product: str) -> str:
    """Any colour the query names is a colour of the product ("Black/White" shoes are black)."""
    return "match" if set(query.split("/")) & set(product.split("/")) else "mismatch"
