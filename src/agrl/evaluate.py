"""Evaluation: accuracy, macro-F1, per-class P/R/F1, confusion, format validity, rule adherence,
deciding-rule accuracy and per-rule accuracy (the long tail); CumPT tiering.

Predictions are raw model text. Accuracy reads the label leniently (one `<answer>` section is
enough, so a label-only predictor can be scored); format validity and rule adherence need the
full structured reasoning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from agrl.data.io import atomic_write_text, write_json
from agrl.reasoning import parse_reasoning
from agrl.rules import GRADES, Rulebook, default_rulebook, same_rule


def predicted_label(completion: str | None, fmt: str = "think_first") -> int | None:
    if completion is None:
        return None
    parsed = parse_reasoning(completion, fmt)
    return parsed.label


def evaluate(
    records: Sequence[Mapping], predictions: Mapping[str, str], rulebook: Rulebook | None = None,
    fmt: str = "think_first",
) -> dict:
    """Metrics of `predictions` ({id: completion}) on `records` (labelled)."""
    rulebook = rulebook or default_rulebook()
    n = len(records)
    confusion = {g: {p: 0 for p in (*GRADES, "none")} for g in GRADES}
    correct = valid = adherent = rule_hits = rule_known = missing = 0
    per_rule: dict[str, dict[str, int]] = {}
    for record in records:
        completion = predictions.get(str(record["id"]))
        if completion is None:
            missing += 1
        parsed = parse_reasoning(completion, fmt) if completion is not None else None
        label = parsed.label if parsed is not None else None
        gold = int(record["label"])
        confusion[gold][label if label in GRADES else "none"] += 1
        hit = label == gold
        correct += hit
        if parsed is not None and parsed.ok:
            valid += 1
            decided = rulebook.decide(parsed.checks)
            adherent += decided.grade == parsed.label and same_rule(decided.id, parsed.rule_id)
        gold_rule = record.get("rule")
        if gold_rule:
            rule_known += 1
            rule_hit = bool(parsed is not None and parsed.ok and same_rule(parsed.rule_id, gold_rule))
            rule_hits += rule_hit
            bucket = per_rule.setdefault(gold_rule, {"n": 0, "correct": 0, "rule_correct": 0})
            bucket["n"] += 1
            bucket["correct"] += hit
            bucket["rule_correct"] += rule_hit
    per_class = {}
    f1s = []
    for g in GRADES:
        tp = confusion[g][g]
        predicted = sum(confusion[r][g] for r in GRADES)
        actual = sum(confusion[g].values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(g)] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
        if actual:
            f1s.append(f1)
    ordered_rules = [r for r in rulebook.ids if r in per_rule] + sorted(set(per_rule) - set(rulebook.ids))
    return {
        "n": n,
        "missing": missing,
        "accuracy": correct / n if n else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "format_valid": valid / n if n else 0.0,
        "rule_adherence": adherent / n if n else 0.0,
        "rule_adherence_valid": adherent / valid if valid else 0.0,
        "rule_accuracy": rule_hits / rule_known if rule_known else None,
        "per_class": per_class,
        "confusion": {str(g): {str(p): c for p, c in row.items()} for g, row in confusion.items()},
        "per_rule": {
            r: {"n": per_rule[r]["n"], "accuracy": per_rule[r]["correct"] / per_rule[r]["n"],
                "rule_accuracy": per_rule[r]["rule_correct"] / per_rule[r]["n"]}
            for r in ordered_rules
        },
    }


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


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def render_report(metrics: Mapping, title: str = "Evaluation") -> str:
    lines = [f"# {title}", "", f"{metrics['n']} examples, {metrics['missing']} without a prediction.", "",
             "| metric | value (%) |", "|---|---|"]
    for key in ("accuracy", "macro_f1", "format_valid", "rule_adherence", "rule_accuracy"):
        lines.append(f"| {key} | {_pct(metrics[key])} |")
    lines += ["", "## Per class", "", "| grade | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for g, row in metrics["per_class"].items():
        lines.append(f"| {g} | {_pct(row['precision'])} | {_pct(row['recall'])} | {_pct(row['f1'])} | {row['support']} |")
    lines += ["", "## Confusion (rows: gold, columns: predicted)", "", "| gold | 1 | 2 | 3 | 4 | none |", "|---|---|---|---|---|---|"]
    for g, row in metrics["confusion"].items():
        lines.append(f"| {g} | " + " | ".join(str(row[k]) for k in ("1", "2", "3", "4", "none")) + " |")
    if metrics["per_rule"]:
        lines += ["", "## Per deciding rule", "", "| rule | n | accuracy | rule accuracy |", "|---|---|---|---|"]
        for r, row in metrics["per_rule"].items():
            lines.append(f"| {r} | {row['n']} | {_pct(row['accuracy'])} | {_pct(row['rule_accuracy'])} |")
    return "\n".join(lines) + "\n"


def write_evaluation(metrics: Mapping, out: str | Path, title: str = "Evaluation") -> None:
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics, title))
