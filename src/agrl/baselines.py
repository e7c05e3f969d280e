"""Word-overlap baseline: the label a surface-matching ranker would give.

It is the yardstick of the `hard` split (every `hard` example is one it gets wrong) and a floor for
any learned judge. The labelling itself is `agrl.data.overlap` (ShopRules needs it and data must
not import upwards); this module adds the refit and the evaluation-format prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agrl.data.overlap import THRESHOLDS, overlap_label, overlap_ratio


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

    A file of bare answers is evaluated on its labels (accuracy, macro-F1, confusion); its reasoning
    metrics are not applicable (`Evaluation.label_only`). Mixed with reasoning, a bare answer is
    malformed and scores 0 on the strict metrics.
    """
    return f"<answer> {overlap_label(query, title)} </answer>"
