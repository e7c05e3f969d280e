"""Word-overlap baseline: the label a surface-matching ranker would give.

It is the yardstick of the `hard` split (every `hard` example is one it gets wrong) and a floor for
any learned judge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

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


def fit_thresholds(records: Sequence[Mapping], step: float = 0.05) -> tuple[float, float, float]:
    """Thresholds for grades 4, 3, 2 that maximise macro-F1 on `records` (a grid, highest first; ties
    go to the first found): the overlap baseline refit to the data it is compared on, so that it is
    not handicapped by thresholds fitted on another dataset."""
    from agrl.evaluate import label_metrics

    ratios = [overlap_ratio(r["query"], r["product"]["title"]) for r in records]
    gold = [int(r["label"]) for r in records]
    grid = [round(i * step, 6) for i in range(int(round(1 / step)) + 1)]
    best, best_score = THRESHOLDS, -1.0
    for t4 in grid:
        for t3 in (t for t in grid if t <= t4):
            for t2 in (t for t in grid if t <= t3):
                predicted = [4 if x >= t4 else 3 if x >= t3 else 2 if x >= t2 else 1 for x in ratios]
                score = label_metrics(gold, predicted)["macro_f1"]
                if score > best_score:
                    best, best_score = (t4, t3, t2), score
    return best


def overlap_completion(query: str, title: str) -> str:
    """A prediction in the evaluation format (`{id, completion}`): the answer section alone.

    It is not well-formed reasoning, so every strict metric scores it 0; `lenient_accuracy` reads
    the answer alone.
    """
    return f"<answer> {overlap_label(query, title)} </answer>"
