"""The word-overlap baseline and its refit to the data it is compared on."""

from __future__ import annotations

import subprocess
import sys

import agrl.baselines
import agrl.data.overlap
from agrl.baselines import THRESHOLDS, fit_thresholds, overlap_label, overlap_ratio
from agrl.evaluate import label_metrics


def _record(query: str, title: str, label: int) -> dict:
    return {"query": query, "product": {"title": title}, "label": label}


def test_refit_recovers_thresholds_that_separate_the_grades():
    # overlap 1.0 -> 4, 0.5 -> 3, 0.25 -> 2, 0 -> 1: the shipped thresholds get 3 and 2 wrong.
    records = [
        _record("a b c d", "a b c d", 4),
        _record("a b c d", "a b x y", 3),
        _record("a b c d", "a x y z", 2),
        _record("a b c d", "w x y z", 1),
    ] * 5
    fitted = fit_thresholds(records)
    predicted = [overlap_label(r["query"], r["product"]["title"], fitted) for r in records]
    assert label_metrics([r["label"] for r in records], predicted)["macro_f1"] == 1.0
    shipped = [overlap_label(r["query"], r["product"]["title"], THRESHOLDS) for r in records]
    assert label_metrics([r["label"] for r in records], shipped)["macro_f1"] < 1.0
    assert fitted[0] >= fitted[1] >= fitted[2]


def test_overlap_ratio_counts_query_words_found_in_the_title():
    assert overlap_ratio("Red Shoes", "shoes, red; size 9") == 1.0
    assert overlap_ratio("red shoes", "blue boots") == 0.0
    assert overlap_ratio("", "anything") == 0.0


def test_baselines_reexport_the_data_layer_labelling():
    for name in ("THRESHOLDS", "overlap_label", "overlap_ratio"):
        assert getattr(agrl.baselines, name) is getattr(agrl.data.overlap, name)


def test_shoprules_does_not_import_baselines():
    # data sits below baselines: generating the benchmark must not pull the baselines in.
    code = "import sys, agrl.data.shoprules; print('agrl.baselines' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
