"""`agrl esci`'s data preparation, summary and report (the training arms run in `agrl esci` itself)."""

from __future__ import annotations

import json

import pytest

from agrl.experiments.budgets import EsciBudget
from agrl.experiments.esci import prepare, summarize, write_esci_report


def _dev() -> list[dict]:
    return [
        {"id": f"{q}{i}", "query": q, "label": g, "product": {"title": "t"}}
        for q, grades in (("a", [4, 4, 3, 1]), ("b", [4, 3, 3, 1]), ("c", [4, 4, 4, 3]))
        for i, g in enumerate(grades)
    ]


def test_summary_and_report_put_every_judge_on_the_same_rows(tmp_path):
    dev = _dev()
    gold = [r["label"] for r in dev]
    predictions = {
        "majority": [4] * len(dev),
        "smollm2_sft": [4, 4, 3, 3, 4, 3, 3, 1, 4, 4, 4, 4],
        "smollm2_grpo_pr": [4] * len(dev),
        "smollm2_agrl": gold,
    }
    facts = {
        "records": 12,
        "queries": {"train": ["x"], "dev": ["a", "b", "c"]},
        "rows": {"train": 1, "dev": 12},
        "labels": {"train": {"E": 1}, "dev": {"E": 6}},
        "check_coverage": {},
        "rulebook_agrees_with_label_train": 0.5,
    }
    summary = summarize(dev, predictions, facts, {}, {}, EsciBudget())
    summary.update(seconds=60.0, commit="test")
    assert list(summary["methods"]) == ["majority", "smollm2_sft", "smollm2_grpo_pr", "smollm2_agrl"]
    assert summary["methods"]["smollm2_agrl"]["accuracy"] == 1.0
    assert summary["methods"]["majority"]["predicted_share"]["4"] == 1.0
    lo, hi = summary["methods"]["smollm2_sft"]["ci"]["accuracy"]
    assert lo <= summary["methods"]["smollm2_sft"]["accuracy"] <= hi
    diff = summary["differences"]["smollm2_agrl - smollm2_grpo_pr"]["accuracy"]
    assert diff["diff"] == pytest.approx(1 - 6 / 12) and diff["ci"][0] > 0
    write_esci_report(tmp_path, summary)
    report = (tmp_path / "report.md").read_text()
    assert "| smollm2_agrl | 1.000 [1.000, 1.000]" in report
    assert (tmp_path / "esci_bars.png").stat().st_size > 0 and (
        tmp_path / "esci_confusion.png"
    ).stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["methods"]["majority"]["accuracy"] == 0.5


def test_prepare_writes_a_query_disjoint_annotated_split(tmp_path, esci_sample):
    facts = prepare(esci_sample, tmp_path, 0.4)
    assert facts["rows"]["train"] + facts["rows"]["dev"] == facts["records"] == 1313
    assert not set(facts["queries"]["train"]) & set(facts["queries"]["dev"])
    assert facts["check_coverage"]["type"] > 0.5
    train = [json.loads(line) for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    assert {r["query"] for r in train} == set(facts["queries"]["train"])
