"""Evaluation metrics on ShopRules predictions, and CumPT tiering."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrl.baselines import overlap_completion
from agrl.cumpt import cumpt
from agrl.data.shoprules import HEAD_RULES
from agrl.evaluate import Evaluation, evaluate, luck_proof, render_report, write_evaluation
from agrl.reasoning import render_reasoning
from agrl.rules import GRADES, default_rulebook, same_rule


@pytest.fixture(scope="module")
def b_eval(shoprules) -> list[dict]:
    return shoprules["b_eval"]


def confusion_total(metrics: dict) -> int:
    return sum(sum(row.values()) for row in metrics.confusion.values())


def test_gold_references_score_perfectly(b_eval):
    metrics = evaluate(b_eval, {r["id"]: r["reference"] for r in b_eval})
    assert metrics.n == len(b_eval) and metrics.missing == 0
    for key in (
        "accuracy",
        "lenient_accuracy",
        "grounded_adherence",
        "self_consistency",
        "format_valid",
        "macro_f1",
        "rule_accuracy",
        "self_consistency_valid",
        "tail_solved",
    ):
        assert getattr(metrics, key) == 1.0, key
    assert metrics.tail_n == sum(luck_proof(r, default_rulebook()) for r in b_eval) > 0
    for g in GRADES:
        assert metrics.per_class[str(g)]["f1"] == 1.0
        assert metrics.confusion[str(g)][str(g)] == metrics.per_class[str(g)]["support"]
    assert confusion_total(metrics) == len(b_eval)
    assert all(row["accuracy"] == 1.0 and row["rule_accuracy"] == 1.0 for row in metrics.per_rule.values())


def test_per_rule_confusion_and_faithfulness_given_solved(b_eval):
    references = {r["id"]: r["reference"] for r in b_eval}
    metrics = evaluate(b_eval, references, head_rules=HEAD_RULES)
    for rule, row in metrics.per_rule.items():
        # gold references state their own rule and label on every record of the rule
        (stated, n), *rest = row["stated"].items()
        assert not rest and n == row["n"] and same_rule(stated.split(" → ")[0], rule), (rule, row["stated"])
    assert metrics.grounded_solved_head == metrics.grounded_solved_tail == 1.0
    assert metrics.self_consistency_head == metrics.self_consistency_tail == 1.0
    # a right label and rule over wrong checks is solved but not grounded: faithfulness given solved falls
    wrong_checks = {}
    for r in b_eval:
        checks = dict(r["annotations"]["checks"])
        slot = next(iter(checks))
        checks[slot] = "match" if checks[slot] != "match" else "mismatch"
        rule = default_rulebook().get(r["rule"])
        assert rule is not None
        a = r["annotations"]
        wrong_checks[r["id"]] = render_reasoning(a["query"], a["product"], checks, rule.tag, r["label"])
    lying = evaluate(b_eval, wrong_checks, head_rules=HEAD_RULES)
    assert lying.tail_solved == 1.0 and lying.grounded_solved_tail == 0.0
    assert lying.per_rule[b_eval[0]["rule"]]["stated"]
    assert lying.outcomes["solved_tail"].sum() == lying.tail_n


def test_constant_label_4_predictor(b_eval):
    metrics = evaluate(b_eval, {r["id"]: "<answer> 4 </answer>" for r in b_eval})
    share = sum(r["label"] == 4 for r in b_eval) / len(b_eval)
    assert 0 < share < 1
    # bare answers only: label metrics read the answers, the reasoning metrics are not applicable
    assert metrics.label_only and metrics.accuracy == metrics.lenient_accuracy == share
    assert (
        metrics.format_valid is None
        and metrics.self_consistency is None
        and metrics.grounded_adherence is None
    )
    assert metrics.rule_accuracy is None
    assert all(metrics.confusion[str(g)]["4"] == sum(r["label"] == g for r in b_eval) for g in GRADES)
    assert confusion_total(metrics) == len(b_eval)


@pytest.mark.parametrize("grade", GRADES)
def test_a_constant_answer_cannot_score_tail_solved(shoprules, grade):
    # A well-formed reasoning that states the gold checks but always answers one grade with the
    # head rule of that grade: the label is right by luck on some tail records, tail solved stays 0.
    from agrl.constant import constant_completions

    tail = shoprules["tail"]
    predictions = constant_completions(tail, default_rulebook(), HEAD_RULES)[grade]
    metrics = evaluate(tail, predictions)
    assert metrics.tail_n == len(tail)
    assert metrics.tail_solved == 0.0
    assert metrics.accuracy == sum(r["label"] == grade for r in tail) / len(tail)


def test_a_model_blind_to_the_tail_feature_gets_every_tail_label_wrong(shoprules):
    rulebook = default_rulebook()
    tail = shoprules["tail"]
    predictions = {}
    for r in tail:
        rule = rulebook.blind_decision(r["annotations"]["checks"])
        predictions[r["id"]] = render_reasoning(
            r["annotations"]["query"],
            r["annotations"]["product"],
            r["annotations"]["checks"],
            rule.tag,
            rule.grade,
        )
    metrics = evaluate(tail, predictions)
    assert metrics.accuracy == 0.0 and metrics.tail_solved == 0.0
    assert {r["rule"] for r in tail} == {"R03", "R09", "R10"}


def test_grounded_adherence_needs_the_gold_checks_self_consistency_does_not(b_eval):
    # every check flipped to "unknown" and the label the rulebook gives for that: self-consistent,
    # but not grounded in the gold checks
    rulebook = default_rulebook()
    predictions = {}
    for r in b_eval:
        notes = r["annotations"]
        checks = {k: "unknown" for k in notes["checks"]}
        rule = rulebook.decide(checks)
        predictions[r["id"]] = render_reasoning(
            notes["query"], notes["product"], checks, rule.tag, rule.grade
        )
    metrics = evaluate(b_eval, predictions)
    assert metrics.self_consistency == 1.0
    assert metrics.grounded_adherence == 0.0


def test_head_accuracy_and_outcomes(shoprules):
    records = shoprules["w_eval"]
    predictions = {r["id"]: r["reference"] if r["rule"] in HEAD_RULES else "junk" for r in records}
    metrics = evaluate(records, predictions, head_rules=HEAD_RULES)
    head = [r for r in records if r["rule"] in HEAD_RULES]
    assert metrics.head_n == len(head) and metrics.head_accuracy == 1.0
    # head mismatches (a brand rule, say) are luck-proof too, but tail solved counts the tail only
    rulebook = default_rulebook()
    assert metrics.tail_n == sum(luck_proof(r, rulebook) and r["rule"] not in HEAD_RULES for r in records) > 0
    assert metrics.tail_solved == 0.0
    assert evaluate(records, predictions).tail_n > metrics.tail_n
    assert metrics.accuracy == len(head) / len(records)
    outcomes = metrics.outcomes
    assert all(len(v) == len(records) for v in outcomes.values())
    head_rows = [r["rule"] in HEAD_RULES for r in records]
    assert outcomes["correct"].dtype == bool
    assert outcomes["correct"].tolist() == outcomes["head"].tolist() == head_rows


def test_missing_predictions_are_counted(b_eval):
    predictions = {r["id"]: r["reference"] for r in b_eval[::2]}
    metrics = evaluate(b_eval, predictions)
    missing = len(b_eval) - len(predictions)
    assert metrics.missing == missing
    assert metrics.accuracy == len(predictions) / len(b_eval)
    assert metrics.format_valid == len(predictions) / len(b_eval)
    assert sum(row["none"] for row in metrics.confusion.values()) == missing
    assert confusion_total(metrics) == len(b_eval)
    # predictions for ids that are not in the records are ignored
    metrics = evaluate(b_eval, {**predictions, "no-such-id": "<answer> 4 </answer>"})
    assert metrics.n == len(b_eval) and metrics.missing == missing


def test_wrong_but_consistent_and_inconsistent_predictions(b_eval):
    rulebook = default_rulebook()
    predictions = {}
    for r in b_eval:
        notes = r["annotations"]
        wrong = (r["label"] % 4) + 1  # gold reasoning, label changed: not adherent
        predictions[r["id"]] = render_reasoning(
            notes["query"], notes["product"], notes["checks"], rulebook.get(r["rule"]).tag, wrong
        )
    metrics = evaluate(b_eval, predictions)
    assert metrics.accuracy == 0.0
    assert metrics.format_valid == 1.0
    assert metrics.self_consistency == 0.0 and metrics.grounded_adherence == 0.0
    assert metrics.rule_accuracy == 1.0
    assert metrics.macro_f1 == 0.0
    assert confusion_total(metrics) == len(b_eval)
    assert all(row["none"] == 0 for row in metrics.confusion.values())


def test_per_rule_keys_are_rule_ids_in_rulebook_order(shoprules):
    rulebook = default_rulebook()
    for split in ("b_eval", "w_eval", "hard", "tail"):
        records = shoprules[split]
        metrics = evaluate(
            records, {r["id"]: overlap_completion(r["query"], r["product"]["title"]) for r in records}
        )
        keys = list(metrics.per_rule)
        assert set(keys) == {r["rule"] for r in records}
        assert keys == [i for i in rulebook.ids if i in keys]
        assert sum(row["n"] for row in metrics.per_rule.values()) == len(records)
        assert confusion_total(metrics) == len(records)
        assert metrics.label_only and metrics.format_valid is None  # the overlap baseline writes bare answers
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in metrics.per_rule.values())


def test_confusion_matrix_sums_to_n_for_mixed_predictions(b_eval):
    kinds = [lambda r: r["reference"], lambda r: "<answer> 2 </answer>", lambda r: "junk", lambda r: None]
    predictions = {r["id"]: kinds[i % 4](r) for i, r in enumerate(b_eval) if kinds[i % 4](r) is not None}
    metrics = evaluate(b_eval, predictions)
    assert confusion_total(metrics) == metrics.n == len(b_eval)
    assert metrics.missing == len(b_eval) - len(predictions)
    assert sum(row["support"] for row in metrics.per_class.values()) == len(b_eval)


def test_report_and_files(b_eval, tmp_path):
    metrics = evaluate(b_eval, {r["id"]: r["reference"] for r in b_eval[:10]})
    report = render_report(metrics, "Tiny")
    assert report.startswith("# Tiny")
    assert "| accuracy |" in report and "R01" in report
    write_evaluation(metrics, tmp_path / "eval", "Tiny")
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics.to_json()))
    again = Evaluation.from_json(saved)  # what a resumed report reads back
    assert again.accuracy == metrics.accuracy and again.per_rule == metrics.per_rule
    assert all((again.outcomes[k] == v).all() for k, v in metrics.outcomes.items())
    assert (tmp_path / "eval" / "report.md").read_text() == report


# --- CumPT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("grade", GRADES)
@pytest.mark.parametrize("threshold", [0.01, 0.5, 0.99, 1.0])
def test_cumpt_one_hot(grade, threshold):
    score, tier = cumpt({grade: 1.0}, threshold)
    assert tier == grade
    assert score == pytest.approx((grade - 1) / 3)


def test_cumpt_examples():
    probs = {4: 0.3, 3: 0.3, 2: 0.2, 1: 0.2}
    assert cumpt(probs, 0.25)[1] == 4
    assert cumpt(probs, 0.5)[1] == 3
    assert cumpt(probs, 0.8)[1] == 2
    assert cumpt(probs, 0.95)[1] == 1
    assert cumpt(probs)[0] == pytest.approx((0.3 * 3 + 0.3 * 2 + 0.2 * 1) / 3)
    # unnormalised weights are normalised; negative ones count as zero
    assert cumpt({4: 3.0, 1: 1.0}) == cumpt({4: 0.75, 1: 0.25})
    assert cumpt({4: 1.0, 2: -5.0}) == cumpt({4: 1.0})


@pytest.mark.parametrize("probs", [{}, {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}, {4: -1.0}, {5: 1.0}])
def test_cumpt_rejects_distributions_without_mass(probs):
    with pytest.raises(ValueError):
        cumpt(probs)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_cumpt_rejects_non_finite_mass(bad):
    # an infinite or NaN weight has no share to normalise to: an error, never a NaN score
    with pytest.raises(ValueError, match="finite"):
        cumpt({4: bad, 1: 1.0})


PROBS = st.fixed_dictionaries({g: st.floats(0.0, 1e6, allow_nan=False) for g in GRADES}).filter(
    lambda p: sum(p.values()) > 0
)


@settings(max_examples=300, deadline=None)
@given(PROBS, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_cumpt_properties(probs, t1, t2):
    low, high = sorted((t1, t2))
    score, tier_low = cumpt(probs, low)
    score_high, tier_high = cumpt(probs, high)
    assert 0.0 <= score <= 1.0
    assert score == score_high  # the score does not depend on the threshold
    assert tier_low in GRADES and tier_high in GRADES
    assert tier_high <= tier_low  # a stricter threshold never gives a higher tier
    # the tier's cumulative probability reaches the threshold
    total = sum(probs.values())
    assert sum(probs[g] for g in GRADES if g >= tier_high) / total >= high - 1e-9
    # ... and it is the highest grade that does
    if tier_high < max(GRADES):
        assert sum(probs[g] for g in GRADES if g > tier_high) / total < high + 1e-9


def _predictions_file(path, rows) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["id", "completion"])
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(dict(zip(("id", "completion"), r))) + "\n" for r in rows))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_eval_reads_what_predict_writes_and_reports_id_coverage(tmp_path, shoprules, suffix):
    from agrl.cli import main

    records = shoprules["b_eval"][:6]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = [(r["id"], r["reference"]) for r in records[:4]] + [(records[0]["id"], "junk"), ("nope", "x")]
    preds = tmp_path / f"preds{suffix}"
    _predictions_file(preds, rows)
    assert (
        main(["eval", "--data", str(data), "--predictions", str(preds), "--out", str(tmp_path / "ev")]) == 0
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    coverage = metrics["coverage"]
    assert (coverage["matched"], coverage["missing"], coverage["duplicate_ids"], coverage["unknown_ids"]) == (
        4,
        2,
        1,
        1,
    )
    assert coverage["examples"]["unknown"] == ["nope"] and coverage["examples"]["duplicate"] == [
        records[0]["id"]
    ]
    # record 0's last row ("junk") wins; records 1-3 are gold; 4-5 have no prediction
    assert metrics["accuracy"] == pytest.approx(3 / 6)


def test_eval_fails_when_no_prediction_matches_and_on_empty_data(tmp_path, shoprules, capsys):
    from agrl.cli import main

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in shoprules["b_eval"][:3]))
    preds = tmp_path / "other.jsonl"
    _predictions_file(preds, [("x1", "a"), ("x2", "b")])
    assert (
        main(["eval", "--data", str(data), "--predictions", str(preds), "--out", str(tmp_path / "ev")]) != 0
    )
    assert "other.jsonl" in capsys.readouterr().err and not (tmp_path / "ev").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert (
        main(["eval", "--data", str(empty), "--predictions", str(preds), "--out", str(tmp_path / "ev2")]) != 0
    )
    assert "no records to evaluate on" in capsys.readouterr().err


def test_bare_answers_are_scored_on_their_labels_and_reasoning_metrics_are_not_applicable(shoprules):
    records = shoprules["b_eval"][:40]
    answers = {
        r["id"]: f"<answer> {r['label'] if i % 4 else (r['label'] % 4) + 1} </answer>"
        for i, r in enumerate(records)
    }
    m = evaluate(records, answers, head_rules=HEAD_RULES)
    assert m.label_only and m.accuracy == pytest.approx(30 / 40) and m.macro_f1 > 0
    assert sum(sum(row.values()) for row in m.confusion.values()) == 40
    for name in ("format_valid", "self_consistency", "grounded_adherence", "tail_solved", "rule_accuracy",
                 "grounded_solved_head", "self_consistency_tail"):  # fmt: skip
        assert m.get(name) is None, name
    assert all(row["solved"] is None for row in m.per_rule.values())
    assert "not applicable" in render_report(m) and Evaluation.from_json(m.to_json()).label_only
    # one full reasoning among them: strict scoring as before, a bare answer is malformed there
    mixed = dict(answers) | {records[0]["id"]: records[0]["reference"]}
    strict = evaluate(records, mixed, head_rules=HEAD_RULES)
    assert (
        not strict.label_only
        and strict.format_valid == pytest.approx(1 / 40)
        and strict.accuracy == pytest.approx(1 / 40)
    )


# --- rule adherence on partial (real-data) annotations --------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    flip=st.sets(st.sampled_from(["type", "brand", "color"])),
    fmt=st.sampled_from(["think_first", "label_first"]),
)
def test_check_agreement_counts_the_slots_the_annotator_decided(flip, fmt):
    from agrl.evaluate import check_agreement
    from agrl.reasoning import render_reasoning
    from agrl.rules import default_rulebook

    rulebook = default_rulebook()
    checks = {"type": "match", "brand": "match", "color": "mismatch"}
    record = {"id": "r", "label": 3, "query": "q", "product": {"title": "t"},
              "annotations": {"checks": checks, "partial": True}}  # fmt: skip
    stated = {
        slot: ("mismatch" if v == "match" else "match") if slot in flip else v for slot, v in checks.items()
    }
    decided = rulebook.decide(stated)
    values = dict.fromkeys(stated, "x")
    completion = render_reasoning(values, values, stated, decided.tag, decided.grade, fmt)
    out = check_agreement(
        [record, {**record, "id": "junk"}], {"r": completion, "junk": "no reasoning"}, rulebook, fmt
    )
    assert out["n"] == 2 and out["stated"] == 0.5 and out["self_consistency"] == 1.0
    assert out["overall"] == pytest.approx(1 - len(flip) / 3)
    assert all(out["per_slot"][s]["agree"] == (0.0 if s in flip else 1.0) for s in checks)
    # a label that does not follow from the judge's own checks is not self-consistent
    wrong = render_reasoning(values, values, stated, decided.tag, 1 if decided.grade != 1 else 4, fmt)
    assert check_agreement([record], {"r": wrong}, rulebook, fmt)["self_consistency"] == 0.0
    assert check_agreement([record], {}, rulebook, fmt)["stated"] is None
