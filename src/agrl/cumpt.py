"""CumPT (cumulative-probability tiering, TaoSR1): a label-token distribution -> a graded score and a tier."""

from __future__ import annotations

import math
from collections.abc import Mapping

from agrl.schema import GRADES


def cumpt(probs: Mapping[int, float], threshold: float = 0.5) -> tuple[float, int]:
    """Cumulative-probability tiering (TaoSR1): a graded score in [0, 1] and a tier.

    The tier is the highest grade g whose cumulative probability P(grade >= g) reaches `threshold`;
    one threshold trades precision for recall across all tiers at once. The score is the expected
    grade rescaled to [0, 1], a ranking signal finer than the tier.
    """
    values = [float(probs.get(g, 0.0)) for g in GRADES]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"cumpt needs finite probabilities, got {dict(zip(GRADES, values))}")
    total = sum(max(0.0, v) for v in values)
    if total <= 0:
        raise ValueError("cumpt needs a non-zero probability for at least one grade")
    p = {g: max(0.0, float(probs.get(g, 0.0))) / total for g in GRADES}
    score = sum(p[g] * (g - 1) / 3 for g in GRADES)
    cumulative = 0.0
    for g in sorted(GRADES, reverse=True):
        cumulative += p[g]
        if cumulative >= threshold - 1e-12:
            return score, g
    return score, min(GRADES)  # pragma: no cover - cumulative reaches 1.0 at the lowest grade
