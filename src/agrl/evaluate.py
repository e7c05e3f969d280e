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

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from agrl.data.io import DataError, atomic_write_text, write_json
from agrl.reasoning import Reasoning, is_label_only, lenient_label, parse_reasoning
from agrl.render import markdown_table
from agrl.rules import Rulebook, default_rulebook, same_rule
from agrl.stats import label_metrics

HEADLINE = (
    "accuracy",
    "macro_f1",
    "format_valid",
    "grounded_adherence",
    "grounded_solved_head",
    "grounded_solved_tail",
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


# Per-record outcomes, in record order: what paired bootstrap CIs resample.
OUTCOMES = ("correct", "solved", "luck_proof", "head", "grounded", "valid")


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` measures: the metrics (shares in [0, 1], None where no record qualifies) and
    the per-record boolean outcomes behind them."""

    n: int
    missing: int
    accuracy: float
    lenient_accuracy: float
    macro_f1: float
    format_valid: float | None
    grounded_adherence: float | None
    self_consistency: float | None
    self_consistency_valid: float | None
    rule_accuracy: float | None
    tail_solved: float | None
    tail_n: int
    head_accuracy: float | None
    head_n: int
    # Faithfulness where the judge is right: the stated checks are the gold ones (and the label follows
    # them), among solved head / solved tail records; self-consistency on head / tail records.
    grounded_solved_head: float | None
    grounded_solved_tail: float | None
    self_consistency_head: float | None
    self_consistency_tail: float | None
    per_class: dict[str, dict[str, Any]]
    confusion: dict[str, dict[str, int]]
    per_rule: dict[str, dict[str, Any]]
    outcomes: dict[str, np.ndarray] = field(repr=False)
    # Every prediction is a bare answer (label-first with early stop): label metrics are read from
    # the answers; the reasoning metrics are None (not applicable), not 0.
    label_only: bool = False

    def get(self, metric: str) -> Any:
        """A metric by name (None for a name this evaluation does not have)."""
        return getattr(self, metric, None) if metric != "outcomes" else None

    def to_json(self) -> dict:
        """JSON-ready: the metrics, and each outcome as a string of 0/1 (compact in large reports)."""
        out = asdict(self)
        out["outcomes"] = {k: "".join("1" if v else "0" for v in a) for k, a in self.outcomes.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping) -> Evaluation:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["outcomes"] = {k: np.array([c == "1" for c in v], dtype=bool)
                              for k, v in (data.get("outcomes") or {}).items()}  # fmt: skip
        return cls(**values)


def evaluate(
    records: Sequence[Mapping],
    predictions: Mapping[str, str],
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
    head_rules: Collection[str] | None = None,
) -> Evaluation:
    """Metrics of `predictions` ({id: completion}) on `records` (labelled).

    `head_rules` (rule ids) adds `head_accuracy`, the accuracy on records decided by those rules,
    and restricts `tail_solved` to the other rules' luck-proof records (head mismatches such as a
    brand rule are luck-proof too, but they are not the tail).
    """
    rulebook = rulebook or default_rulebook()
    head = {r.casefold() for r in head_rules} if head_rules is not None else None
    present = [predictions[str(r["id"])] for r in records if str(r["id"]) in predictions]
    label_only = bool(present) and all(is_label_only(c) for c in present)
    rows: dict[str, list[bool]] = {
        k: [] for k in (*OUTCOMES, "lenient", "consistent", "grounded_n", "rule_known", "rule_hit")
    }
    labels: list[int | None] = []
    missing = 0
    per_rule: dict[str, dict[str, int]] = {}
    stated_by_rule: dict[str, Counter[str]] = {}
    for record in records:
        completion = predictions.get(str(record["id"]))
        missing += completion is None
        parsed = parse_reasoning(completion, fmt) if completion is not None else None
        reasoning = parsed if isinstance(parsed, Reasoning) else None  # None: missing or malformed
        ok = reasoning is not None
        label = reasoning.label if reasoning else (lenient_label(completion) if label_only else None)
        labels.append(label)
        gold = int(record["label"])
        hit = label == gold
        decided = rulebook.decide(reasoning.checks) if reasoning else None
        consistent = bool(
            reasoning
            and decided
            and decided.grade == reasoning.label
            and same_rule(decided.id, reasoning.rule_id)
        )
        annotations = record.get("annotations") or {}
        gold_checks = annotations.get("checks")
        grounded_n = bool(gold_checks) and not annotations.get("partial")
        grounded = (
            grounded_n
            and consistent
            and reasoning is not None
            and reasoning.checks == dict(gold_checks or {})
        )
        gold_rule: str | None = record.get("rule")
        rule_hit = bool(reasoning and gold_rule and same_rule(reasoning.rule_id, gold_rule))
        in_head = gold_rule is not None and head is not None and gold_rule.casefold() in head
        proof = bool(gold_rule) and not in_head and luck_proof(record, rulebook)
        for key, value in (
            ("correct", hit),
            ("solved", hit and rule_hit),
            ("luck_proof", proof),
            ("head", in_head),
            ("grounded", grounded),
            ("valid", ok),
            ("lenient", (label if ok else lenient_label(completion)) == gold),
            ("consistent", consistent),
            ("grounded_n", grounded_n),
            ("rule_known", bool(gold_rule)),
            ("rule_hit", rule_hit),
        ):
            rows[key].append(bool(value))
        if gold_rule:
            bucket = per_rule.setdefault(gold_rule, {"n": 0, "correct": 0, "rule_correct": 0, "solved": 0})
            # what the judge said on this rule's records: "<stated rule> → <label>" (the confusion of
            # gold rule × predicted rule and label, which shows *how* a rule breaks)
            stated = f"{reasoning.rule_id} → {label}" if reasoning else "unparsed"
            stated_by_rule.setdefault(gold_rule, Counter())[stated] += 1
            bucket["n"] += 1
            bucket["correct"] += hit
            bucket["rule_correct"] += rule_hit
            bucket["solved"] += hit and rule_hit
    v = {k: np.array(x, dtype=bool) for k, x in rows.items()}
    n = len(records)

    def share(hits: np.ndarray, among: np.ndarray | None = None) -> float | None:
        among = np.ones(n, dtype=bool) if among is None else among
        return float(hits[among].mean()) if among.any() else None

    grades = label_metrics([int(r["label"]) for r in records], labels)
    applies = not label_only  # the reasoning metrics of bare answers are not applicable

    def reasoning_share(hits: np.ndarray, among: np.ndarray | None = None) -> float | None:
        return share(hits, among) if applies else None

    ordered_rules = [r for r in rulebook.ids if r in per_rule] + sorted(set(per_rule) - set(rulebook.ids))
    return Evaluation(
        n=n,
        missing=missing,
        accuracy=share(v["correct"]) or 0.0,
        lenient_accuracy=share(v["lenient"]) or 0.0,
        macro_f1=grades["macro_f1"],
        format_valid=(share(v["valid"]) or 0.0) if applies else None,
        grounded_adherence=reasoning_share(v["grounded"], v["grounded_n"]),
        self_consistency=(share(v["consistent"]) or 0.0) if applies else None,
        self_consistency_valid=reasoning_share(v["consistent"], v["valid"]),
        rule_accuracy=reasoning_share(v["rule_hit"], v["rule_known"]),
        tail_solved=reasoning_share(v["solved"], v["luck_proof"]),
        tail_n=int(v["luck_proof"].sum()),
        head_accuracy=share(v["correct"], v["head"]),
        head_n=int(v["head"].sum()),
        grounded_solved_head=reasoning_share(v["grounded"], v["solved"] & v["head"]),
        grounded_solved_tail=reasoning_share(v["grounded"], v["solved"] & v["luck_proof"]),
        self_consistency_head=reasoning_share(v["consistent"], v["head"]),
        self_consistency_tail=reasoning_share(v["consistent"], v["luck_proof"]),
        per_class=grades["per_class"],
        confusion=grades["confusion"],
        per_rule={
            r: {
                "n": b["n"],
                "accuracy": b["correct"] / b["n"],
                "rule_accuracy": b["rule_correct"] / b["n"] if applies else None,
                "solved": b["solved"] / b["n"] if applies else None,
                "stated": dict(stated_by_rule[r].most_common()),
            }
            for r, b in ((r, per_rule[r]) for r in ordered_rules)
        },  # fmt: skip
        label_only=label_only,
        outcomes={k: v[k] for k in OUTCOMES}
        | {"solved_head": v["solved"] & v["head"], "solved_tail": v["solved"] & v["luck_proof"]},  # fmt: skip
    )


def check_agreement(
    records: Sequence[Mapping],
    predictions: Mapping[str, str],
    rulebook: Rulebook | None = None,
    fmt: str = "think_first",
) -> dict:
    """Rule adherence where the gold annotations are partial (real data): on each slot the annotator
    decided, how often the judge's stated check is the annotator's (`per_slot`, `overall`: over every
    annotated slot of every record); how often the judge states a parseable reasoning at all
    (`stated`); and how often its label is what the rulebook yields from its own checks
    (`self_consistency`, among the parsed). Shares are None where nothing counts."""
    rulebook = rulebook or default_rulebook()
    slots: dict[str, list[bool]] = {}
    parsed_n = consistent_n = 0
    present = [r for r in records if str(r["id"]) in predictions]
    for record in present:
        reasoning = parse_reasoning(predictions[str(record["id"])], fmt)
        if not isinstance(reasoning, Reasoning):
            continue
        parsed_n += 1
        consistent_n += rulebook.decide(reasoning.checks).grade == reasoning.label
        for slot, verdict in ((record.get("annotations") or {}).get("checks") or {}).items():
            slots.setdefault(slot, []).append(reasoning.checks.get(slot) == verdict)
    every = [hit for hits in slots.values() for hit in hits]
    return {
        "n": len(present),
        "stated": _share(parsed_n, len(present)),
        "self_consistency": _share(consistent_n, parsed_n),
        "overall": _share(sum(every), len(every)),
        "per_slot": {
            slot: {"n": len(h), "agree": _share(sum(h), len(h))} for slot, h in sorted(slots.items())
        },
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def render_report(evaluation: Evaluation, title: str = "Evaluation") -> str:
    m = evaluation.to_json()
    grades = ("1", "2", "3", "4", "none")
    parts = [
        f"# {title}\n\n{m['n']} examples, {m['missing']} without a prediction.\n"
        + (
            "\nEvery prediction is a bare answer (label-first, early stop): label metrics are read from the "
            "answers; the reasoning metrics are not applicable (n/a).\n"
            if m.get("label_only")
            else ""
        ),  # fmt: skip
        markdown_table(["metric", "value (%)"], [(k, _pct(m[k])) for k in HEADLINE]),
        "## Per class\n",
        markdown_table(
            ["grade", "precision", "recall", "F1", "support"],
            [
                (g, _pct(r["precision"]), _pct(r["recall"]), _pct(r["f1"]), r["support"])
                for g, r in m["per_class"].items()
            ],
        ),
        "## Confusion (rows: gold, columns: predicted)\n",
        markdown_table(
            ["gold", *grades], [(g, *(row[k] for k in grades)) for g, row in m["confusion"].items()]
        ),
    ]
    if m["per_rule"]:
        parts += [
            "## Per deciding rule\n",
            markdown_table(
                ["rule", "n", "accuracy", "rule accuracy", "solved"],
                [
                    (r, row["n"], _pct(row["accuracy"]), _pct(row["rule_accuracy"]), _pct(row["solved"]))
                    for r, row in m["per_rule"].items()
                ],
            ),  # fmt: skip
        ]
    return "\n".join(parts)


def prediction_coverage(
    records: Sequence[Mapping], rows: Sequence[tuple[int, str, str]], path: str | Path
) -> tuple[dict[str, str], dict]:
    """Predictions by id (a repeated id: its last row) and how they cover `records`: matched,
    missing (records without a prediction), duplicate and unknown (not a record's) ids, with a few
    examples of each. Nothing matching is an error naming the file: the wrong pair of files."""
    ids = {str(r["id"]) for r in records}
    counts = Counter(pid for _, pid, _ in rows)
    predictions = {pid: completion for _, pid, completion in rows}
    matched = ids & set(predictions)
    unknown = sorted(set(predictions) - ids)
    if records and not matched:
        raise DataError(path, None, "id", f"none of its {len(predictions)} prediction ids is a record's id "
                        f"(e.g. {unknown[:3]}): predictions of another file?")  # fmt: skip
    coverage = {
        "predictions": len(rows),
        "matched": len(matched),
        "missing": len(ids - matched),
        "duplicate_ids": sum(1 for c in counts.values() if c > 1),
        "unknown_ids": len(unknown),
        "examples": {"missing": sorted(ids - matched)[:5], "duplicate": sorted(k for k, c in counts.items() if c > 1)[:5],
                     "unknown": unknown[:5]},
    }  # fmt: skip
    return predictions, coverage


def write_evaluation(
    evaluation: Evaluation, out: str | Path, title: str = "Evaluation", coverage: Mapping | None = None
) -> None:
    out = Path(out)
    write_json(
        out / "metrics.json", evaluation.to_json() | ({"coverage": dict(coverage)} if coverage else {})
    )
    atomic_write_text(out / "report.md", render_report(evaluation, title))
