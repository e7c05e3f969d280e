"""ESCI: the loader on the real sample and on hand-made broken files (the annotator: test_annotate.py)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agrl.data.esci import (
    DEFAULT_LABEL_MAP,
    EXAMPLES_FILE,
    PRODUCTS_FILE,
    load_esci,
    load_esci_with_stats,
    product_record,
)
from agrl.data.io import DataError, validate_record


@pytest.fixture(scope="module")
def sample(esci_sample) -> list[dict]:
    return load_esci(esci_sample)


def _readme_counts(folder: Path) -> tuple[int, dict[str, int]]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    pairs = int(re.search(r"([\d,]+) pairs", text).group(1).replace(",", ""))
    labels_line = re.search(r"Labels here: ([^.]*)\.", text).group(1)
    return pairs, {k: int(v.replace(",", "")) for k, v in re.findall(r"\b([ESCI]) ([\d,]+)", labels_line)}


# --- the real sample -------------------------------------------------------------------------------


def test_sample_loads_all_pairs_with_the_readme_label_counts(sample, esci_sample):
    pairs, readme = _readme_counts(esci_sample)
    assert (pairs, readme) == (1313, {"E": 644, "S": 425, "C": 33, "I": 211})
    assert len(sample) == pairs
    assert Counter(r["esci_label"] for r in sample) == Counter(readme)
    assert Counter(r["label"] for r in sample) == Counter({4: 644, 3: 425, 2: 33, 1: 211})
    assert all(r["label"] == DEFAULT_LABEL_MAP[r["esci_label"]] for r in sample)


def test_sample_records_follow_the_agrl_schema(sample):
    assert len({r["id"] for r in sample}) == len(sample)
    for record in sample:
        assert validate_record(record, "esci", None)["id"] == record["id"]
        assert isinstance(record["id"], str) and record["product_id"] and record["query_id"] is not None
        product = record["product"]
        assert product["title"].strip()
        assert len(product.get("bullets", [])) <= 5
        assert all(0 < len(b) <= 200 for b in product.get("bullets", []))
        assert len(product.get("description", "")) <= 500
        assert record["annotations"]["partial"] is True
    assert sample[0]["id"] == "0" and sample[0]["query"] == "t towels kitchen"


def test_stats_count_the_annotated_slots(esci_sample):
    records, stats = load_esci_with_stats(esci_sample)
    assert stats.rows == stats.records == len(records) == 1313
    assert stats.skipped_no_title == stats.skipped_no_product == 0
    assert stats.labels == {"E": 644, "S": 425, "C": 33, "I": 211}
    assert stats.annotated == dict(Counter(s for r in records for s in r["annotations"]["query"]))
    assert (
        stats.annotated["negation"] >= 200
        and stats.annotated["brand"] >= 200
        and stats.annotated["color"] >= 40
    )
    assert stats.annotated["type"] >= 1200


def test_custom_label_map_is_honoured(esci_sample):
    reverse = load_esci(esci_sample, label_map={"E": 1, "S": 2, "C": 3, "I": 4}, annotate=False)
    assert Counter(r["label"] for r in reverse) == Counter({1: 644, 2: 425, 3: 33, 4: 211})
    binary = load_esci(esci_sample, label_map={"e": 4, "s": 4, "c": 1, "i": 1}, annotate=False)
    assert Counter(r["label"] for r in binary) == Counter({4: 644 + 425, 1: 33 + 211})
    with pytest.raises(
        DataError, match=r"shopping_queries_dataset_examples\.parquet:\d+: field `esci_label`"
    ):
        load_esci(esci_sample, label_map={"E": 4, "S": 3})


def test_the_label_map_is_defined_once_with_its_inverse():
    from agrl import contract, schema

    assert DEFAULT_LABEL_MAP is schema.DEFAULT_LABEL_MAP is contract.DEFAULT_LABEL_MAP
    assert dict(DEFAULT_LABEL_MAP) == {"E": 4, "S": 3, "C": 2, "I": 1}
    assert schema.GRADE_NAMES == {4: "E", 3: "S", 2: "C", 1: "I"}
    assert isinstance(schema.GRADE_NAMES, dict)
    with pytest.raises(TypeError):  # read-only: it is every label_map argument's default
        DEFAULT_LABEL_MAP["E"] = 1  # type: ignore[index]


@pytest.mark.parametrize("bad", [{}, {"E": 5}, {"E": 0}, {"E": True}, {1: 4}])
def test_bad_label_maps_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="label_map"):
        load_esci(tmp_path, label_map=bad)


def test_filters_limit_and_no_annotations(esci_sample):
    assert len(load_esci(esci_sample, split="test", annotate=False)) == 1313
    assert load_esci(esci_sample, split="train") == []
    assert load_esci(esci_sample, locale="es") == []
    assert len(load_esci(esci_sample, locale=None, version="small", annotate=False)) == 1313
    first = load_esci(esci_sample, limit=7, annotate=False)
    assert [r["id"] for r in first] == [r["id"] for r in load_esci(esci_sample, annotate=False)[:7]]
    assert all("annotations" not in r for r in first)
    assert load_esci(esci_sample, limit=0) == []


def test_product_record_cleans_and_truncates():
    product = product_record(
        {
            "product_title": "  Water   Bottle ",
            "product_brand": " ",
            "product_color": "Blue",
            "product_bullet_point": "\n".join(["x" * 300, "", *[f"bullet {i}" for i in range(8)]]),
            "product_description": "<p>Great &amp; <b>useful</b></p> " + "word " * 200,
        }
    )
    assert product["title"] == "Water Bottle" and "brand" not in product and product["color"] == "Blue"
    assert len(product["bullets"]) == 5 and len(product["bullets"][0]) == 200
    assert product["description"].startswith("Great & useful word") and len(product["description"]) <= 500
    assert product_record({"product_title": None}) is None
    assert product_record({"product_title": "   "}) is None


# --- bad files -------------------------------------------------------------------------------------

_EXAMPLE = {
    "example_id": 1,
    "query": "water bottle without straw",
    "query_id": 7,
    "product_id": "P1",
    "product_locale": "us",
    "esci_label": "E",
    "small_version": 1,
    "large_version": 1,
    "split": "train",
}
_PRODUCT = {
    "product_id": "P1",
    "product_title": "Water Bottle with Straw",
    "product_description": None,
    "product_bullet_point": "Leakproof\nBPA free",
    "product_brand": "Acme",
    "product_color": "Blue",
    "product_locale": "us",
}


def _write(folder: Path, examples: list[dict] | None = None, products: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if examples is not None:
        pq.write_table(pa.Table.from_pylist(examples), folder / EXAMPLES_FILE)
    if products is not None:
        pq.write_table(pa.Table.from_pylist(products), folder / PRODUCTS_FILE)
    return folder


def _drop(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


def test_small_folder_loads(tmp_path):
    rows = [_EXAMPLE, {**_EXAMPLE, "example_id": 2, "esci_label": "I", "split": "test"}]
    folder = _write(tmp_path, rows, [_PRODUCT])
    records = load_esci(folder)
    assert [(r["id"], r["label"], r["split"]) for r in records] == [("1", 4, "train"), ("2", 1, "test")]
    assert records[0]["product"] == {
        "title": "Water Bottle with Straw",
        "brand": "Acme",
        "color": "Blue",
        "bullets": ["Leakproof", "BPA free"],
    }
    assert records[0]["annotations"]["checks"] == {"type": "match", "negation": "mismatch"}
    assert [r["id"] for r in load_esci(folder, split="test")] == ["2"]


def test_missing_folder_and_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_esci(tmp_path / "absent")
    _write(tmp_path, [_EXAMPLE])
    with pytest.raises(DataError, match=rf"{PRODUCTS_FILE}: no such file"):
        load_esci(tmp_path)
    (tmp_path / EXAMPLES_FILE).unlink()
    _write(tmp_path, None, [_PRODUCT])
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}: no such file"):
        load_esci(tmp_path)
    (tmp_path / EXAMPLES_FILE).write_text("not parquet")
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}: not a readable parquet file"):
        load_esci(tmp_path)


@pytest.mark.parametrize(
    "column", ["example_id", "query", "query_id", "product_id", "product_locale", "esci_label"]
)
def test_missing_example_columns_are_named(tmp_path, column):
    folder = _write(tmp_path, [_drop(_EXAMPLE, column)], [_PRODUCT])
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}: field `{column}`: missing column") as error:
        load_esci(folder)
    assert error.value.field == column and error.value.path.endswith(EXAMPLES_FILE)


@pytest.mark.parametrize("column", ["product_id", "product_title"])
def test_missing_product_columns_are_named(tmp_path, column):
    folder = _write(tmp_path, [_EXAMPLE], [_drop(_PRODUCT, column)])
    with pytest.raises(DataError, match=rf"{PRODUCTS_FILE}: field `{column}`: missing column"):
        load_esci(folder)


def test_optional_columns_may_be_absent_until_needed(tmp_path):
    product = {"product_id": "P1", "product_title": "Bottle"}
    folder = _write(tmp_path, [_drop(_drop(_EXAMPLE, "split"), "small_version")], [product])
    assert [r["product"] for r in load_esci(folder)] == [{"title": "Bottle"}]
    with pytest.raises(DataError, match=r"field `split`: missing column"):
        load_esci(folder, split="test")
    with pytest.raises(DataError, match=r"field `small_version`: missing column"):
        load_esci(folder, version="small")


def test_unknown_label_names_file_row_and_field(tmp_path):
    rows = [_EXAMPLE, {**_EXAMPLE, "example_id": 2}, {**_EXAMPLE, "example_id": 3, "esci_label": "X"}]
    folder = _write(tmp_path, rows, [_PRODUCT])
    with pytest.raises(
        DataError, match=rf"{EXAMPLES_FILE}:3: field `esci_label`: unknown label 'X'"
    ) as error:
        load_esci(folder)
    assert error.value.line == 3


@pytest.mark.parametrize(
    "change, field",
    [
        ({"query": None}, "query"),
        ({"query": "  "}, "query"),
        ({"esci_label": None}, "esci_label"),
        ({"example_id": None}, "example_id"),
        ({"product_id": None}, "product_id"),
    ],
)
def test_bad_values_name_row_and_field(tmp_path, change, field):
    folder = _write(tmp_path, [_EXAMPLE, {**_EXAMPLE, **change}], [_PRODUCT])
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}:2: field `{field}`"):
        load_esci(folder)


def test_duplicate_example_ids_are_refused(tmp_path):
    folder = _write(tmp_path, [_EXAMPLE, {**_EXAMPLE, "example_id": 2}, _EXAMPLE], [_PRODUCT])
    with pytest.raises(
        DataError, match=rf"{EXAMPLES_FILE}:3: field `example_id`: duplicate id '1' \(first on row 1\)"
    ):
        load_esci(folder)


def test_dictionary_encoded_text_columns_are_read(tmp_path):
    table = pa.Table.from_pylist([_EXAMPLE])
    index = table.schema.get_field_index("query")
    table = table.set_column(index, "query", table["query"].dictionary_encode())
    _write(tmp_path, None, [_PRODUCT])
    pq.write_table(table, tmp_path / EXAMPLES_FILE)
    assert [r["query"] for r in load_esci(tmp_path)] == ["water bottle without straw"]


def test_wrong_column_type_is_named(tmp_path):
    folder = _write(tmp_path, [{**_EXAMPLE, "query": 5}], [_PRODUCT])
    with pytest.raises(DataError, match=r"field `query`: expected a string column"):
        load_esci(folder)
    folder = _write(tmp_path / "b", [_EXAMPLE], [{**_PRODUCT, "product_title": 3}])
    with pytest.raises(DataError, match=rf"{PRODUCTS_FILE}: field `product_title`: expected a string column"):
        load_esci(folder)


def test_untitled_and_missing_products_are_skipped_and_counted(tmp_path, caplog):
    rows = [
        {**_EXAMPLE, "example_id": 1, "product_id": "P0"},
        {**_EXAMPLE, "example_id": 2, "product_id": "NOPE"},
        {**_EXAMPLE, "example_id": 3, "product_id": "P1"},
        {**_EXAMPLE, "example_id": 4, "product_id": "P1"},
    ]
    products = [{**_PRODUCT, "product_id": "P0", "product_title": None}, _PRODUCT]
    folder = _write(tmp_path, rows, products)
    records, stats = load_esci_with_stats(folder)
    assert [r["id"] for r in records] == ["3", "4"]
    assert (stats.rows, stats.records, stats.skipped_no_title, stats.skipped_no_product) == (4, 2, 1, 1)
    # The limit counts returned records, reading past the skipped ones.
    assert [r["id"] for r in load_esci(folder, limit=1)] == ["3"]
    with caplog.at_level(logging.WARNING, logger="agrl.data.esci"):
        assert len(load_esci(folder)) == 2
    assert "skipped 1 examples whose product has no title and 1 whose product is not in" in caplog.text


def test_products_join_on_locale(tmp_path):
    rows = [_EXAMPLE, {**_EXAMPLE, "example_id": 2, "product_locale": "es"}]
    products = [_PRODUCT, {**_PRODUCT, "product_locale": "es", "product_title": "Botella de agua"}]
    folder = _write(tmp_path, rows, products)
    assert [r["product"]["title"] for r in load_esci(folder, locale=None)] == [
        "Water Bottle with Straw",
        "Botella de agua",
    ]
    assert [r["locale"] for r in load_esci(folder, locale="es")] == ["es"]


def test_an_esci_folder_is_data_for_eval(sample, esci_sample, tmp_path):
    import json as _json
    import subprocess
    import sys

    from agrl.data.load import load_records

    assert [r["id"] for r in load_records(esci_sample)] == [r["id"] for r in sample]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(
        "".join(_json.dumps({"id": r["id"], "completion": "<answer> 4 </answer>"}) + "\n" for r in sample),
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agrl.cli",
            "eval",
            "--data",
            str(esci_sample),
            "--predictions",
            str(predictions),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = _json.loads(done.stdout.strip().splitlines()[-1])
    share = sum(r["label"] == 4 for r in sample) / len(sample)
    # bare answers only: scored on their labels (the reasoning metrics are not applicable)
    assert metrics["n"] == len(sample) and metrics["accuracy"] == metrics["lenient_accuracy"] == share
    assert metrics["format_valid"] is None and metrics["matched"] == len(sample)


def test_a_folder_without_the_esci_layout_is_a_clear_error(tmp_path):
    from agrl.data.load import load_records

    with pytest.raises(FileNotFoundError, match="ESCI layout"):
        load_records(tmp_path)


def test_stages_are_read_back_only_when_resuming(tmp_path):
    from agrl.experiments.runner import Stages

    origin = {"commit": "abc1234", "clean": True}
    Stages(tmp_path, resume=False, origin=origin).put("peers", {"seconds": 3.0})
    assert Stages(tmp_path, resume=False).get("peers") is None  # a fresh run redoes every stage
    resumed = Stages(tmp_path, resume=True)
    assert resumed.get("peers") == {"seconds": 3.0, "computed_at": origin} and resumed.get("probe") is None
    assert resumed.read_back == ["peers"]
    assert resumed.origins() == {"peers": origin}


def test_esci_resume_refuses_a_run_started_with_other_flags(tmp_path):
    from dataclasses import asdict

    from agrl.experiments.budgets import EsciBudget
    from agrl.experiments.esci import run_esci
    from agrl.experiments.runner import Stages

    request = {"budget": asdict(EsciBudget(rl_steps=5)), "train": "train_folder", "eval": None}
    Stages(tmp_path / "stages", resume=True).put("request", request)
    with pytest.raises(ValueError, match=r"rl_steps=5, not rl_steps=30"):
        run_esci(Path("train_folder"), tmp_path / "out", EsciBudget(), work=tmp_path, resume=True)


def test_a_read_only_run_computes_nothing_and_names_the_first_missing_stage(tmp_path):
    from agrl.experiments.runner import StageMissing, Stages

    Stages(tmp_path, resume=False).put("peers", {"seconds": 3.0})
    calls: list[str] = []
    report = Stages(tmp_path, resume=False, read_only=True)
    assert report.run("peers", lambda: calls.append("peers") or {}) == {"seconds": 3.0}
    with pytest.raises(StageMissing, match="probe"):
        report.run("probe", lambda: calls.append("probe") or {})
    assert calls == [] and not (tmp_path / "probe.json").exists()
    fresh = Stages(tmp_path, resume=False)
    assert fresh.run("probe", lambda: {"s": 1.0}) == {"s": 1.0} and (tmp_path / "probe.json").exists()


def test_budget_flags_give_back_the_budget_that_ran():
    from dataclasses import asdict

    from agrl.experiments.budgets import EsciBudget, budget_flags, budget_from, budget_parser

    ran = EsciBudget(rl_seeds=[0], cv_folds=0, think_first=False, full_ft=False, label_balance=0.5)
    flags = budget_flags(EsciBudget, asdict(ran))
    assert flags == "--no_full_ft --no_think_first --cv_folds 0 --rl_seeds 0 --label_balance 0.5"
    parsed = budget_from(EsciBudget, budget_parser(EsciBudget).parse_args(flags.split()))
    assert parsed == ran
    assert budget_flags(EsciBudget, asdict(EsciBudget())) == ""  # the defaults need no flag
