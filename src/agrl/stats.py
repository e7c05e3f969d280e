"""Statistics every report shares: label metrics (scikit-learn), bootstrap intervals
(`scipy.stats.bootstrap`) and seed-level t-intervals (`scipy.stats.t`).

One bootstrap serves every resampling scheme. A resample is a vector of *row weights*: how many
times each row was drawn. Resampling by example draws rows; resampling by group (the products
judged for one query are not independent) draws whole groups, and each row weighs what its group
drew. A statistic maps weights of shape (B, n) to values of shape (B,) (or (k, B) for k metrics at
once), so one function scores metrics, paired differences (a − b under the same weights) and means
over seeds (every seed under the same resampled examples) alike.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from agrl.schema import GRADES

N_RESAMPLES = 2000
LEVEL = 0.95
NO_LABEL = 0  # a prediction with no readable label: wrong for every grade

Statistic = Callable[[np.ndarray], np.ndarray]


def _labels(values: Sequence[int | None]) -> np.ndarray:
    return np.array([NO_LABEL if v is None else int(v) for v in values], dtype=int)


def _confusions(gold: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted confusion matrices (B, grades, grades + 1): gold × predicted, the last column for rows
    without a readable label; one matrix product for all B weight vectors."""
    columns = [*GRADES, NO_LABEL]
    cell = np.array(
        [GRADES.index(int(g)) * len(columns) + columns.index(int(v)) for g, v in zip(gold, predicted)]
    )
    onehot = np.zeros((len(gold), len(GRADES) * len(columns)))
    onehot[np.arange(len(gold)), cell] = 1.0
    return (weights @ onehot).reshape(len(weights), len(GRADES), len(columns))


def _scores(confusions: np.ndarray) -> np.ndarray:
    """(accuracy, macro-F1) of each confusion matrix, shape (2, B): the resampling path of what
    `label_metrics` reads from scikit-learn (tests check they agree). F1 = 2TP / (support + predicted);
    macro-F1 averages the grades present in the gold labels."""
    k = len(GRADES)
    tp = np.diagonal(confusions[:, :, :k], axis1=1, axis2=2)
    support, predicted = confusions.sum(axis=2), confusions[:, :, :k].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        present = support > 0
        macro = np.where(present.any(axis=1), (f1 * present).sum(axis=1) / present.sum(axis=1), 0.0)
        accuracy = tp.sum(axis=1) / confusions.sum(axis=(1, 2))
    return np.stack([accuracy, macro])


def label_metrics(gold: Sequence[int], predicted: Sequence[int | None]) -> dict:
    """Accuracy, macro-F1, per-grade P/R/F1, confusion (gold × predicted, "none" for no readable label)
    and the predicted-grade shares of a judge's grades."""
    y, p = _labels(gold), _labels(predicted)
    if len(y) != len(p):
        raise ValueError(f"label_metrics: {len(y)} gold labels but {len(p)} predictions")
    n = len(y)
    if not n:
        empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {
            "n": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_class": {str(g): dict(empty) for g in GRADES},
            "confusion": {str(g): {str(c): 0 for c in (*GRADES, "none")} for g in GRADES},
            "predicted_share": {str(c): 0.0 for c in (*GRADES, "none")},
        }  # fmt: skip
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=list(GRADES), zero_division=0
    )
    present = np.asarray(support) > 0
    macro = float(np.mean(f1[present])) if present.any() else 0.0
    columns = [*GRADES, NO_LABEL]
    matrix = confusion_matrix(y, p, labels=columns)
    names = [*map(str, GRADES), "none"]
    return {
        "n": n,
        "accuracy": float(accuracy_score(y, p)),
        "macro_f1": macro,
        "per_class": {
            str(g): {"precision": float(pr), "recall": float(rc), "f1": float(f), "support": int(s)}
            for g, pr, rc, f, s in zip(GRADES, precision, recall, f1, support)
        },
        "confusion": {str(g): dict(zip(names, map(int, matrix[i]))) for i, g in enumerate(GRADES)},
        "predicted_share": dict(zip(names, (matrix[: len(GRADES)].sum(axis=0) / n).tolist())),
    }


def interval(
    statistic: Statistic,
    n: int,
    groups: Sequence | None = None,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Percentile bootstrap CI of `statistic` (row weights (B, n) -> (B,) or (k, B)): rows resampled
    by example, or by `groups` (one label per row) when given. Returns [low, high] (shape (2,) or
    (k, 2)); NaN where no resample defined the statistic."""
    if groups is None:
        unit_of_row = np.arange(n)
    else:
        if len(groups) != n:
            raise ValueError(f"interval: {len(groups)} group labels for {n} rows")
        _, unit_of_row = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    units = int(unit_of_row.max()) + 1 if n else 0

    def on_units(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        drawn = np.moveaxis(drawn, axis, -1).reshape(-1, drawn.shape[axis])
        counts = np.zeros((drawn.shape[0], units))
        np.add.at(counts, (np.arange(drawn.shape[0])[:, None], drawn), 1.0)
        return statistic(counts[:, unit_of_row])

    result = scipy_stats.bootstrap(
        (np.arange(units),),
        on_units,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return np.stack([result.confidence_interval.low, result.confidence_interval.high], axis=-1)


def label_statistic(
    gold: Sequence[int],
    predicted: Sequence[int | None],
    baseline: Sequence[int | None] | None = None,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
) -> Statistic:
    """`metrics` of a judge's grades (minus `baseline`'s on the same rows) under row weights."""
    y, p = _labels(gold), _labels(predicted)
    b = _labels(baseline) if baseline is not None else None
    keep = [("accuracy", "macro_f1").index(m) for m in metrics]

    def statistic(weights: np.ndarray) -> np.ndarray:
        values = _scores(_confusions(y, p, weights))
        if b is not None:
            values -= _scores(_confusions(y, b, weights))
        return values[keep]

    return statistic


def label_intervals(
    gold: Sequence[int],
    predicted: Sequence[int | None],
    groups: Sequence | None = None,
    baseline: Sequence[int | None] | None = None,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    **kwargs,
) -> dict[str, tuple[float, float]]:
    """Bootstrap CIs of label metrics, by example or by group; of `predicted − baseline` when given."""
    bounds = interval(label_statistic(gold, predicted, baseline, metrics), len(gold), groups, **kwargs)
    return {m: (float(lo), float(hi)) for m, (lo, hi) in zip(metrics, bounds)}


def share_statistic(hits: np.ndarray, mask: np.ndarray | None = None) -> Statistic:
    """Mean over seeds of the share of `hits` among `mask` rows: hits and mask of shape (seeds, n),
    every seed scored on the same resampled rows."""
    hits = np.atleast_2d(np.asarray(hits, dtype=float))
    mask = np.ones_like(hits) if mask is None else np.atleast_2d(np.asarray(mask, dtype=float))

    def statistic(weights: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples stay NaN
            shares = (weights @ (hits * mask).T) / (weights @ mask.T)  # (B, seeds)
            return np.nanmean(shares, axis=1)  # a seed whose resample holds no `mask` row drops out

    return statistic


def sample_sd(values: Sequence[float]) -> float:
    """Sample standard deviation (n − 1); 0.0 for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def seed_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t interval of the mean over seeds (None with fewer than two seeds)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    sem = float(np.std(x, ddof=1) / np.sqrt(x.size))
    if sem == 0.0:
        return float(x.mean()), float(x.mean())
    low, high = scipy_stats.t.interval(level, df=x.size - 1, loc=float(x.mean()), scale=sem)
    return float(low), float(high)
