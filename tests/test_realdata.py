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
    summary = summarize(dev, predictions, facts, {}, {}, EsciBudget(rl_seeds=[0], cv_folds=0))
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
    assert "--cv_folds 0 --rl_seeds 0`" in report  # the command line is the run's own, its flags too
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


def _folder(path, queries: dict[str, list[str]]):
    """A small ESCI-layout folder: query -> ESCI labels of its products."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agrl.data.esci import EXAMPLES_FILE, PRODUCTS_FILE

    examples, products = [], []
    for q, labels in queries.items():
        for i, label in enumerate(labels):
            pid = f"{q[:3]}{i}"
            examples.append({"example_id": len(examples) + 1, "query": q, "query_id": len(examples), "product_id": pid,
                             "product_locale": "us", "esci_label": label, "small_version": 1, "large_version": 1,
                             "split": "train"})  # fmt: skip
            products.append({"product_id": pid, "product_title": f"Water Bottle {i}", "product_description": None,
                             "product_bullet_point": None, "product_brand": "Acme", "product_color": "Blue",
                             "product_locale": "us"})  # fmt: skip
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(examples), path / EXAMPLES_FILE)
    pq.write_table(pa.Table.from_pylist(products), path / PRODUCTS_FILE)
    return path


def test_prepare_trains_on_one_folder_and_evaluates_on_another(tmp_path):
    train = _folder(tmp_path / "train", {"water bottle": ["E", "S", "I"], "steel bottle": ["E", "C"]})
    dev = _folder(tmp_path / "dev", {"blue bottle": ["E", "I"]})
    facts = prepare(train, tmp_path / "work", 0.4, eval_data=dev)
    assert facts["rows"] == {"train": 5, "dev": 2} and facts["records"] == 7
    assert facts["queries"]["dev"] == ["blue bottle"] and facts["folders"]["dev"] == str(dev)
    rows = (tmp_path / "work" / "data" / "dev.jsonl").read_text().splitlines()
    assert [json.loads(r)["query"] for r in rows] == ["blue bottle", "blue bottle"]
    leaky = _folder(tmp_path / "leaky", {"steel bottle": ["E"]})
    with pytest.raises(ValueError, match="1 of its queries are in --train"):
        prepare(train, tmp_path / "work2", 0.4, eval_data=leaky)


def test_the_report_flags_an_arm_that_predicts_one_class_on_most_rows(tmp_path):
    from agrl.experiments.esci import collapsed

    order = ["1", "2", "3", "4"]
    gold = {"1": 20, "2": 5, "3": 25, "4": 50}
    assert collapsed({"1": 0.0, "2": 0.0, "3": 0.03, "4": 0.97}, gold, 100, order) == "yes (E 0.97)"
    assert collapsed({"1": 0.2, "2": 0.0, "3": 0.2, "4": 0.6}, gold, 100, order) == "no"
    # a gold share that high excuses it
    assert collapsed({"4": 0.85}, {"4": 90, "1": 10}, 100, order) == "no"


def test_seeded_arms_are_summarised_over_seeds_and_paired_by_seed(tmp_path):
    dev = _dev()
    gold = [r["label"] for r in dev]
    wrong = [1 if g != 1 else 4 for g in gold]
    predictions = {
        "majority": [4] * len(dev),
        "smollm2_sft": [4] * len(dev),
        "smollm2_grpo_pr_s0": [4] * len(dev),
        "smollm2_grpo_pr_s1": wrong,
        "smollm2_agrl_s0": gold,
        "smollm2_agrl_s1": gold[:6] + wrong[6:],
    }
    facts = {"records": 12, "queries": {"train": ["x"], "dev": ["a", "b", "c"]}, "rows": {"train": 1, "dev": 12},
             "labels": {"train": {"E": 1}, "dev": {"E": 6}}, "check_coverage": {},
             "rulebook_agrees_with_label_train": 0.5}  # fmt: skip
    summary = summarize(dev, predictions, facts, {}, {}, EsciBudget())
    agrl = summary["arms"]["smollm2_agrl"]["accuracy"]
    assert agrl["per_seed"] == {"0": 1.0, "1": 0.5} and agrl["mean"] == 0.75 and agrl["seed_ci95"] is not None
    assert "smollm2_sft" not in summary["arms"]  # one run: no seed statistics
    diff = summary["differences"]["smollm2_agrl - smollm2_grpo_pr"]["accuracy"]
    assert diff["per_seed"]["0"]["diff"] == pytest.approx(1 - 0.5)
    assert diff["per_seed"]["1"]["diff"] == pytest.approx(0.5 - 0.0) and diff["diff"] == pytest.approx(0.5)
    # a one-run reference pairs with every seed
    vs_sft = summary["differences"]["smollm2_agrl - smollm2_sft"]["accuracy"]
    assert set(vs_sft["per_seed"]) == {"0", "1"}
    summary.update(seconds=1.0, commit="test")
    summary["adherence"] = {"smollm2_sft": {"n": 10, "stated": 1.0, "self_consistency": 0.9, "overall": 0.75,
                                            "per_slot": {"type": {"n": 10, "agree": 0.8}}}}  # fmt: skip
    write_esci_report(tmp_path, summary)
    report = (tmp_path / "report.md").read_text()
    assert "| smollm2_agrl | 2 | 0.750 ± 0.354 t[" in report
    assert (
        "## Rule adherence on real data" in report
        and "| smollm2_sft | 10 | 100.0 | 90.0 | 75.0 | 80.0 |" in report
    )
    assert "| smollm2_agrl - smollm2_grpo_pr | +0.500 ± 0.000" in report


def test_the_cv_choice_takes_the_best_mean_and_breaks_near_ties_toward_the_cheaper_entry():
    from agrl.experiments.esci import CV_GRID, cv_choice, cv_eligible, without_checks

    assert cv_choice({"lora_1ep": {"macro_f1": 0.40}, "full_1ep": {"macro_f1": 0.45}}) == "full_1ep"
    assert cv_choice({"lora_1ep": {"macro_f1": 0.447}, "full_1ep": {"macro_f1": 0.45}}) == "lora_1ep"
    assert list(CV_GRID)[0] == "lora_1ep" and not CV_GRID["lora_1ep_no_checks"][1]
    # RL rewards are decomposed along the checks: a warm start that writes none is not eligible then
    assert "lora_1ep_no_checks" not in cv_eligible(rl_follows=True)
    assert cv_eligible(rl_follows=False) == list(CV_GRID)
    record = {"id": "1", "query": "q", "label": 3, "annotations": {"checks": {"type": "match"}}}
    assert without_checks([record]) == [{**record, "annotations": {}}] and record["annotations"]


def test_with_rl_arms_after_it_the_cv_never_chooses_a_warm_start_that_writes_no_checks(tmp_path):
    """The CV scores read back from finished stages (the resume path): the no-checks entry scores
    best, yet the RL arms need checks, so the best check-writing entry is chosen and the table keeps
    the no-checks one as its control."""
    from agrl.experiments.budgets import EsciBudget
    from agrl.experiments.esci import CV_GRID, choose_sft
    from agrl.experiments.runner import Stages

    train = [{"id": str(i), "query": f"q{i % 4}", "label": 4} for i in range(8)]
    scores = {"lora_1ep": 0.19, "lora_2ep": 0.21, "full_1ep": 0.20, "lora_1ep_no_checks": 0.25,
              "lora_2ep_balanced": 0.205}  # fmt: skip
    stages = Stages(tmp_path / "stages", resume=True)
    for name in CV_GRID:
        for i in range(2):
            stages.put(f"cv_{name}_fold{i}", {"macro_f1": scores[name], "seconds": 1.0})
    for rl_seeds, chosen in (((0, 1), "lora_2ep"), ((), "lora_1ep_no_checks")):
        budget = EsciBudget(cv_folds=2, rl_seeds=list(rl_seeds))
        cv = choose_sft(train, tmp_path, budget, stages)
        assert cv["chosen"] == chosen and cv["best_of_all"] == "lora_1ep_no_checks"
        assert cv["grid"]["lora_1ep_no_checks"]["macro_f1"] == 0.25
