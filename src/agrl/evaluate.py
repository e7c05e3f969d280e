"""Evaluation: accuracy, macro-F1, per-class P/R/F1, confusion, format validity, grounded adherence,
self-consistency, deciding-rule accuracy, per-rule accuracy and *tail solved*.

Predictions are raw model text, parsed strictly for every metric: a malformed completion is wrong.
The one lenient read (a single well-formed `<answer>` anywhere) is reported under its own name,
`lenient_accuracy`, so a label-only predictor can still be compared.

*Solved* means label **and** deciding rule right. *Tail solved* counts it on the luck-proof tail
examples: those whose grade differs from what a model blind to the deciding feature would answer
(`Rulebook.blind_decision` on the gold checks), so that ignoring the tail cannot score.
*Grounded adherence*: the stated checks equal the gold checks and the label and rule follow the
rulebook from them. *Self-consistency* only asks that the label follow the model's own checks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from agrl.data.io import atomic_write_text, write_json
from agrl.reasoning import lenient_label, parse_reasoning
from agrl.rules import GRADES, Rulebook, default_rulebook, same_rule

HEADLINE = (
    "accuracy",
    "macro_f1",
    "format_valid",
    "grounded_adherence",
    "self_consistency",
    "rule_accuracy",
    "tail_solved",
    "head_accuracy",
    "lenient_accuracy",
)


def luck_proof(record: Mapping, rulebook: Rulebook) -> bool:
    """True when a model blind to the deciding rule's feature would get this record's label wrong."""
    checks = (record.get("annotations") or {}).get("checks")
    if not checks or not record.get("rule") or (record.get("annotations") or {}).get("partial"):
        return False
    return rulebook.blind_decision(checks).grade != int(record["label"])


def _share(hits: int, n: int) -> float | None:
    return hits / n if n else None


def evaluate(
    records: Sequence[Mapping],
    predictions: Mapping[str, str],
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
    head_rules: Collection[str] | None = None,
) -> dict:
    """Metrics of `predictions` ({id: completion}) on `records` (labelled).

    `head_rules` (rule ids) adds `head_accuracy`, the accuracy on records decided by those rules,
    and restricts `tail_solved` to the other rules' luck-proof records (head mismatches such as a
    brand rule are luck-proof too, but they are not the tail).
    """
    rulebook = rulebook or default_rulebook()
    head = {r.casefold() for r in head_rules} if head_rules is not None else None
    n = len(records)
    confusion = {g: {p: 0 for p in (*GRADES, "none")} for g in GRADES}
    count = dict.fromkeys(
        (
            "correct",
            "lenient",
            "valid",
            "consistent",
            "rule_hits",
            "rule_known",
            "missing",
            "grounded",
            "grounded_n",
            "tail_n",
            "tail_solved",
            "head_n",
            "head_correct",
        ),
        0,
    )
    per_rule: dict[str, dict[str, int]] = {}
    # Per-record outcomes as 0/1 strings in record order: what paired bootstrap CIs resample.
    outcomes: dict[str, list[str]] = {
        k: [] for k in ("correct", "solved", "luck_proof", "head", "grounded", "valid")
    }
    for record in records:
        completion = predictions.get(str(record["id"]))
        count["missing"] += completion is None
        parsed = parse_reasoning(completion, fmt) if completion is not None else None
        ok = parsed is not None and parsed.ok
        label = parsed.label if ok else None
        gold = int(record["label"])
        confusion[gold][label if label in GRADES else "none"] += 1
        hit = label == gold
        count["correct"] += hit
        count["lenient"] += (label if ok else lenient_label(completion)) == gold
        decided = rulebook.decide(parsed.checks) if ok else None
        if ok:
            count["valid"] += 1
            count["consistent"] += decided.grade == parsed.label and same_rule(decided.id, parsed.rule_id)
        gold_checks = (record.get("annotations") or {}).get("checks")
        grounded = False
        if gold_checks and not (record.get("annotations") or {}).get("partial"):
            count["grounded_n"] += 1
            grounded = bool(
                ok
                and parsed.checks == dict(gold_checks)
                and decided.grade == parsed.label
                and same_rule(decided.id, parsed.rule_id)
            )
            count["grounded"] += grounded
        gold_rule = record.get("rule")
        rule_hit = bool(ok and gold_rule and same_rule(parsed.rule_id, gold_rule))
        in_head = bool(gold_rule) and head is not None and gold_rule.casefold() in head
        proof = bool(gold_rule) and not in_head and luck_proof(record, rulebook)
        for key, value in (
            ("correct", hit),
            ("solved", hit and rule_hit),
            ("luck_proof", proof),
            ("head", in_head),
            ("grounded", grounded),
            ("valid", ok),
        ):
            outcomes[key].append("1" if value else "0")
        if gold_rule:
            count["rule_known"] += 1
            count["rule_hits"] += rule_hit
            bucket = per_rule.setdefault(gold_rule, {"n": 0, "correct": 0, "rule_correct": 0, "solved": 0})
            bucket["n"] += 1
            bucket["correct"] += hit
            bucket["rule_correct"] += rule_hit
            bucket["solved"] += hit and rule_hit
            if proof:
                count["tail_n"] += 1
                count["tail_solved"] += hit and rule_hit
            if in_head:
                count["head_n"] += 1
                count["head_correct"] += hit
    per_class, macro_f1 = _per_class(confusion)
    ordered_rules = [r for r in rulebook.ids if r in per_rule] + sorted(set(per_rule) - set(rulebook.ids))
    return {
        "n": n,
        "missing": count["missing"],
        "accuracy": count["correct"] / n if n else 0.0,
        "lenient_accuracy": count["lenient"] / n if n else 0.0,
        "macro_f1": macro_f1,
        "format_valid": count["valid"] / n if n else 0.0,
        "grounded_adherence": _share(count["grounded"], count["grounded_n"]),
        "self_consistency": count["consistent"] / n if n else 0.0,
        "self_consistency_valid": _share(count["consistent"], count["valid"]),
        "rule_accuracy": _share(count["rule_hits"], count["rule_known"]),
        "tail_solved": _share(count["tail_solved"], count["tail_n"]),
        "tail_n": count["tail_n"],
        "head_accuracy": _share(count["head_correct"], count["head_n"]),
        "head_n": count["head_n"],
        "per_class": per_class,
        "confusion": {str(g): {str(p): c for p, c in row.items()} for g, row in confusion.items()},
        "per_rule": {
            r: {
                "n": b["n"],
                "accuracy": b["correct"] / b["n"],
                "rule_accuracy": b["rule_correct"] / b["n"],
                "solved": b["solved"] / b["n"],
            }
            for r, b in ((r, per_rule[r]) for r in ordered_rules)
        },
        "outcomes": {k: "".join(v) for k, v in outcomes.items()},
    }


def _per_class(confusion: Mapping[int, Mapping]) -> tuple[dict, float]:
    """Per-grade precision/recall/F1/support from `confusion[gold][predicted]`, and the macro-F1 over
    the grades that occur (a grade absent from the gold labels has no recall to average)."""
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
    return per_class, (sum(f1s) / len(f1s) if f1s else 0.0)


def label_metrics(gold: Sequence[int], predicted: Sequence[int | None]) -> dict:
    """Accuracy, macro-F1, per-grade P/R/F1 and the confusion matrix of predicted grades (None: no
    readable label, counted wrong) — for judges that output a grade alone (peers, early stop)."""
    confusion = {g: {p: 0 for p in (*GRADES, "none")} for g in GRADES}
    for g, p in zip(gold, predicted, strict=True):
        confusion[int(g)][p if p in GRADES else "none"] += 1
    per_class, macro_f1 = _per_class(confusion)
    n = len(gold)
    return {
        "n": n,
        "accuracy": sum(confusion[g][g] for g in GRADES) / n if n else 0.0,
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion": {str(g): {str(p): c for p, c in row.items()} for g, row in confusion.items()},
        "predicted_share": {
            str(p): sum(row[p] for row in confusion.values()) / n if n else 0.0 for p in (*GRADES, "none")
        },
    }


def bootstrap_by_group(
    gold: Sequence[int],
    predicted: Sequence[int | None],
    groups: Sequence[str],
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    baseline: Sequence[int | None] | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of `label_metrics` resampling whole groups (queries) with replacement:
    the products judged for one query are not independent, so resampling rows would understate the
    spread. With `baseline` (another judge's grades on the same rows), the CIs are of the paired
    difference `predicted − baseline`, both scored on the same resampled queries."""
    import numpy as np

    by_group: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        by_group.setdefault(str(group), []).append(i)
    names = sorted(by_group)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n_boot):
        rows = [i for k in rng.integers(0, len(names), len(names)) for i in by_group[names[k]]]
        sample = [gold[i] for i in rows]
        result = label_metrics(sample, [predicted[i] for i in rows])
        other = label_metrics(sample, [baseline[i] for i in rows]) if baseline is not None else None
        for m in metrics:
            draws[m].append(result[m] - (other[m] if other else 0.0))
    tail = (1.0 - level) / 2 * 100
    return {m: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for m, v in draws.items()}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def render_report(metrics: Mapping, title: str = "Evaluation") -> str:
    lines = [
        f"# {title}",
        "",
        f"{metrics['n']} examples, {metrics['missing']} without a prediction.",
        "",
        "| metric | value (%) |",
        "|---|---|",
    ]
    for key in HEADLINE:
        if key in metrics:
            lines.append(f"| {key} | {_pct(metrics[key])} |")
    lines += [
        "",
        "## Per class",
        "",
        "| grade | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for g, row in metrics["per_class"].items():
        lines.append(
            f"| {g} | {_pct(row['precision'])} | {_pct(row['recall'])} | {_pct(row['f1'])} | {row['support']} |"
        )
    lines += [
        "",
        "## Confusion (rows: gold, columns: predicted)",
        "",
        "| gold | 1 | 2 | 3 | 4 | none |",
        "|---|---|---|---|---|---|",
    ]
    for g, row in metrics["confusion"].items():
        lines.append(f"| {g} | " + " | ".join(str(row[k]) for k in ("1", "2", "3", "4", "none")) + " |")
    if metrics["per_rule"]:
        lines += [
            "",
            "## Per deciding rule",
            "",
            "| rule | n | accuracy | rule accuracy | solved |",
            "|---|---|---|---|---|",
        ]
        for r, row in metrics["per_rule"].items():
            lines.append(
                f"| {r} | {row['n']} | {_pct(row['accuracy'])} | {_pct(row['rule_accuracy'])} | {_pct(row['solved'])} |"
            )
    return "\n".join(lines) + "\n"


def write_evaluation(metrics: Mapping, out: str | Path, title: str = "Evaluation") -> None:
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics, title))
