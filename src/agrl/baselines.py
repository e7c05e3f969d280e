"""Word-overlap baseline: the label a surface-matching ranker would give.

It is the yardstick of the `hard` split (every `hard` example is one it gets wrong) and a floor for
any learned judge.
"""

from __future__ import annotations

import re

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


def overlap_label(query: str, title: str) -> int:
    ratio = overlap_ratio(query, title)
    for grade, threshold in zip((4, 3, 2), THRESHOLDS):
        if ratio >= threshold:
            return grade
    return 1


def overlap_completion(query: str, title: str) -> str:
    """A prediction in the evaluation format (`{id, completion}`): the answer section alone.

    It is not well-formed reasoning, so every strict metric scores it 0; `lenient_accuracy` reads
    the answer alone.
    """
    return f"<answer> {overlap_label(query, title)} </answer>"
