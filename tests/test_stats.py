"""Label metrics (scikit-learn), bootstrap intervals (scipy) and seed-level t-intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrl.reasoning import lenient_label
from agrl.schema import GRADES
from agrl.stats import (
    interval,
    label_intervals,
    label_metrics,
    label_statistic,
    seed_interval,
    share_statistic,
)

ROOT = Path(__file__).resolve().parents[1]
PREDICTIONS = ROOT / "results" / "esci" / "predictions"


def test_label_metrics_on_a_hand_computed_case():
    gold = [4, 4, 4, 3, 3, 1]
    predicted = [4, 4, 3, 3, None, 4]
    m = label_metrics(gold, predicted)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # grade 4: P 2/3 R 2/3; grade 3: P 1/2 R 1/2; grade 1: P 0 R 0; grade 2 absent (not averaged)
    assert m["per_class"]["4"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["3"]["f1"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["confusion"]["3"]["none"] == 1
    assert m["predicted_share"]["4"] == pytest.approx(3 / 6)


def test_constant_answer_scores_its_share_and_a_low_macro_f1():
    gold = [4] * 60 + [3] * 30 + [1] * 10
    m = label_metrics(gold, [4] * 100)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_f1"] == pytest.approx((2 * 0.6 / 1.6) / 3)


def test_label_metrics_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        label_metrics([4, 3], [4])


LABELS = st.lists(
    st.tuples(st.sampled_from(GRADES), st.sampled_from((*GRADES, None))), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(LABELS)
def test_label_metrics_counts_agree_with_the_rows(pairs):
    gold, predicted = [g for g, _ in pairs], [p for _, p in pairs]
    m = label_metrics(gold, predicted)
    assert m["accuracy"] == pytest.approx(np.mean([g == p for g, p in pairs]))
    assert sum(sum(row.values()) for row in m["confusion"].values()) == len(pairs)
    assert sum(m["predicted_share"].values()) == pytest.approx(1.0)
    for g in GRADES:
        assert m["per_class"][str(g)]["support"] == gold.count(g)
    present = [m["per_class"][str(g)]["f1"] for g in GRADES if g in gold]
    assert m["macro_f1"] == pytest.approx(np.mean(present))


@settings(max_examples=200, deadline=None)
@given(LABELS, st.data())
def test_resampling_path_agrees_with_scikit_learn_under_any_weights(pairs, data):
    """The bootstrap scores resamples from weighted confusion matrices (one matrix product for all
    resamples); scikit-learn with `sample_weight` is the reference."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    gold = [g for g, _ in pairs]
    predicted = [0 if p is None else p for _, p in pairs]
    weights = np.array(
        data.draw(st.lists(st.integers(0, 5), min_size=len(pairs), max_size=len(pairs))), float
    )
    if not weights.any():
        weights[0] = 1.0
    _, _, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(GRADES), sample_weight=weights, zero_division=0
    )
    expected = (accuracy_score(gold, predicted, sample_weight=weights), np.mean(f1[np.asarray(support) > 0]))
    got = label_statistic(gold, [p for _, p in pairs])(weights[None, :])
    assert got[:, 0] == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(LABELS)
def test_label_statistic_under_unit_weights_is_the_metric(pairs):
    gold, predicted = [g for g, _ in pairs], [p for _, p in pairs]
    m = label_metrics(gold, predicted)
    values = label_statistic(gold, predicted)(np.ones((2, len(pairs))))
    assert values.shape == (2, 2)
    assert values[0] == pytest.approx([m["accuracy"]] * 2) and values[1] == pytest.approx([m["macro_f1"]] * 2)


def test_bootstrap_resamples_groups_not_rows():
    # One query all right, one all wrong: resampling queries can draw either twice, so the CI spans
    # (nearly) 0..1; resampling 200 rows gives about 0.43..0.57.
    gold = [4] * 200
    predicted = [4] * 100 + [1] * 100
    groups = ["a"] * 100 + ["b"] * 100
    by_group = label_intervals(gold, predicted, groups, metrics=("accuracy",), n_resamples=400)["accuracy"]
    assert by_group == pytest.approx((0.0, 1.0))
    lo, hi = label_intervals(gold, predicted, metrics=("accuracy",), n_resamples=400)["accuracy"]
    assert 0.40 < lo < 0.5 < hi < 0.60


def test_paired_interval_of_a_judge_against_itself_is_zero_and_of_a_better_one_positive():
    gold = [4, 3, 1, 4] * 25
    groups = [str(i // 4) for i in range(100)]
    worse = [4] * 100
    same = label_intervals(gold, worse, groups, baseline=worse, n_resamples=200)
    assert same == {"accuracy": (0.0, 0.0), "macro_f1": (0.0, 0.0)}
    lo, _ = label_intervals(gold, gold, groups, baseline=worse, metrics=("accuracy",), n_resamples=200)[
        "accuracy"
    ]
    assert lo == pytest.approx(0.5)


def test_share_statistic_pairs_seeds_on_the_same_resampled_rows():
    hits = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)
    statistic = share_statistic(hits, mask)
    assert statistic(np.ones((1, 4))) == pytest.approx([(2 / 3 + 1 / 3) / 2])
    # row 0 drawn four times: every seed scores 1 on it
    assert statistic(np.array([[4.0, 0, 0, 0]])) == pytest.approx([1.0])
    lo, hi = interval(statistic, 4, n_resamples=300)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_interval_rejects_group_labels_of_another_length():
    with pytest.raises(ValueError, match="3 group labels for 4 rows"):
        interval(share_statistic(np.ones((1, 4))), 4, groups=["a", "b", "c"])


def test_seed_interval_is_the_student_t_interval():
    # mean 0.5247, SD 0.2532, t(0.975, 2) = 4.3027: 0.5247 ± 4.3027 * 0.2532 / sqrt(3)
    lo, hi = seed_interval([0.478, 0.798, 0.298])
    assert lo == pytest.approx(0.5247 - 0.6290, abs=1e-3) and hi == pytest.approx(0.5247 + 0.6290, abs=1e-3)
    assert seed_interval([0.3]) is None
    assert seed_interval([0.2, 0.2]) == (0.2, 0.2)


def test_committed_esci_report_is_reproduced_from_its_predictions():
    """Every committed ESCI number is recomputed from the committed predictions on the evaluation
    folder the summary names: each arm's metrics and by-query CIs, and each paired difference (the
    same resampling stream). A prediction file left over from an older run fails it too."""
    from agrl.data.load import load_records
    from agrl.experiments.esci import by_seed, paired_by_query

    summary = json.loads((ROOT / "results" / "esci" / "summary.json").read_text())
    folder = (ROOT / summary["data"]["folders"]["dev"]).resolve()
    if not folder.is_dir():
        pytest.skip(f"the ESCI evaluation folder {folder} is not mounted")
    dev = list(load_records(folder))
    gold, groups = [int(r["label"]) for r in dev], [r["query"] for r in dev]
    assert gold == summary["dev_labels"]

    def grades(name: str) -> list:
        rows = [json.loads(x) for x in (PREDICTIONS / f"{name}.jsonl").read_text().splitlines()]
        for row in rows:  # a judge's grade is read from its completion
            if "completion" in row:
                assert lenient_label(row["completion"]) == row["grade"], row["id"]
        by_id = {row["id"]: row["grade"] for row in rows}
        assert len(by_id) == len(rows) == len(dev)
        return [by_id[str(r["id"])] for r in dev]

    written = {p.name.split(".")[0] for p in PREDICTIONS.glob("*.jsonl")}
    assert written == set(summary["methods"]), "predictions of arms the summary does not report"
    for name, committed in summary["methods"].items():
        m = label_metrics(gold, grades(name))
        assert m["accuracy"] == pytest.approx(committed["accuracy"], abs=1e-12), name
        assert m["macro_f1"] == pytest.approx(committed["macro_f1"], abs=1e-12), name
        assert m["confusion"] == committed["confusion"], name
        ci = label_intervals(gold, grades(name), groups)
        for metric in ("accuracy", "macro_f1"):
            assert ci[metric] == pytest.approx(tuple(committed["ci"][metric]), abs=1e-9), name
    runs = by_seed(list(summary["methods"]))
    for pair, committed in summary["differences"].items():
        a, b = pair.split(" - ")
        for seed, name in runs[a].items():
            other = runs[b].get(seed, runs[b].get(None))
            diff = paired_by_query(gold, grades(name), grades(other), groups)["macro_f1"]
            expected = committed["macro_f1"] if seed is None else committed["macro_f1"]["per_seed"][str(seed)]
            assert diff["diff"] == pytest.approx(expected["diff"], abs=1e-12), pair
            assert diff["ci"] == pytest.approx(expected["ci"], abs=1e-9), pair
