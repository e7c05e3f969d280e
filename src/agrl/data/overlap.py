"""Word-overlap labelling: the label a surface-matching ranker would give a (query, title) pair.

It lives under `agrl.data` because ShopRules builds its `hard` split against it (every `hard`
example is one it gets wrong); `agrl.baselines` reports it as a baseline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")
# Overlap ratio thresholds for grades 4, 3, 2 (below the last: 1), grid-searched on the sft split.
THRESHOLDS = (0.9, 0.8, 0.25)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def overlap_ratio(query: str, title: str) -> float:
    q = set(words(query))
    if not q:
        return 0.0
    return len(q & set(words(title))) / len(q)


def overlap_label(query: str, title: str, thresholds: Sequence[float] = THRESHOLDS) -> int:
    ratio = overlap_ratio(query, title)
    for grade, threshold in zip((4, 3, 2), thresholds):
        if ratio >= threshold:
            return grade
    return 1
