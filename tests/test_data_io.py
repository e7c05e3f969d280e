"""Reading users' records (JSONL / CSV / Parquet) with precise errors; atomic writes."""

from __future__ import annotations

import csv
import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agrl.data.io import (
    DataError,
    atomic_write,
    atomic_write_text,
    read_predictions,
    read_records,
    validate_record,
    write_json,
    write_jsonl,
)

GOOD = {
    "id": "a1",
    "query": "nike running shoes",
    "product": {
        "title": "Nike Pegasus Running Shoes",
        "brand": "nike",
        "price": 89.99,
        "attributes": {"closure": "laces"},
    },
    "label": 4,
    "rule": "R12",
}


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(**change) -> dict:
    out = json.loads(json.dumps(GOOD))
    for key, value in change.items():
        if key.startswith("product_"):
            out["product"][key[len("product_") :]] = value
        else:
            out[key] = value
    return out


def without(data: dict, *keys: str) -> dict:
    return {k: v for k, v in data.items() if k not in keys}


# --- happy paths ----------------------------------------------------------------------------------


def test_read_jsonl(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD), "", json.dumps(row(id=7, label="3"))])
    records = read_records(path)
    assert [r["id"] for r in records] == ["a1", "7"]
    assert [r["label"] for r in records] == [4, 3]
    assert records[0]["product"] == GOOD["product"]
    assert read_records(
        write_lines(tmp_path / "u.jsonl", [json.dumps(without(GOOD, "label"))]), require_label=False
    )


def test_read_csv_flat_product_columns(tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "query", "product_title", "product_brand", "product_price", "product_attributes", "label"]
        )
        writer.writerow(
            ["1", "nike shoes", "Nike Pegasus, Running Shoes", "nike", "89.99", '{"closure": "laces"}', "4"]
        )
        writer.writerow(["2", "adidas shoes", "Adidas Ultraboost", "adidas", "120", "{}", "2"])
    records = read_records(path)
    assert [r["id"] for r in records] == ["1", "2"]
    assert records[0]["product"] == {
        "title": "Nike Pegasus, Running Shoes",
        "brand": "nike",
        "price": 89.99,
        "attributes": {"closure": "laces"},
    }
    assert records[1]["product"]["price"] == 120.0
    assert [r["label"] for r in records] == [4, 2]


def test_read_parquet_flat_product_columns(tmp_path):
    path = tmp_path / "d.parquet"
    table = pa.table(
        {
            "id": ["p1", "p2"],
            "query": ["kettle without cord", "sony tv"],
            "product_title": ["Breville Cordless Kettle", "Sony Bravia 55 inch"],
            "product_price": [39.5, None],
            "product_color": [None, "black"],
            "label": [4, 3],
            "annotations": ['{"query": {"type": "kettle"}}', None],
        }
    )
    pq.write_table(table, path)
    records = read_records(path)
    assert [r["id"] for r in records] == ["p1", "p2"]
    assert records[0]["product"] == {"title": "Breville Cordless Kettle", "price": 39.5}
    assert records[1]["product"] == {"title": "Sony Bravia 55 inch", "color": "black"}
    assert records[0]["annotations"] == {"query": {"type": "kettle"}}
    assert "annotations" not in records[1]


def test_generated_shoprules_files_are_valid_records(shoprules_dir):
    for path in sorted(shoprules_dir.glob("*.jsonl")):
        records = read_records(path)
        assert records and all(r["reference"] and r["annotations"] for r in records)


# --- malformed rows: the error names the file, the line and the field ------------------------------

BAD_JSONL = {
    # case: (bad line, field named in the error)
    "missing_id": (json.dumps(without(GOOD, "id")), "id"),
    "null_id": (json.dumps(row(id=None)), "id"),
    "empty_id": (json.dumps(row(id="  ")), "id"),
    "missing_query": (json.dumps(without(GOOD, "query")), "query"),
    "empty_query": (json.dumps(row(query="   ")), "query"),
    "query_not_string": (json.dumps(row(query=["nike"])), "query"),
    "missing_product": (json.dumps(without(GOOD, "product")), "product"),
    "product_without_title": (json.dumps(row(product={"brand": "nike"})), "product.title"),
    "empty_title": (json.dumps(row(product_title="")), "product.title"),
    "brand_not_string": (json.dumps(row(product_brand=3)), "product.brand"),
    "price_abc": (json.dumps(row(product_price="abc")), "product.price"),
    "price_bool": (json.dumps(row(product_price=True)), "product.price"),
    "attributes_list": (json.dumps(row(product_attributes=["a"])), "product.attributes"),
    "bullets_not_strings": (json.dumps(row(product_bullets=[1, 2])), "product.bullets"),
    "label_7": (json.dumps(row(label=7)), "label"),
    "label_0": (json.dumps(row(label=0)), "label"),
    "label_x": (json.dumps(row(label="x")), "label"),
    "label_float": (json.dumps(row(label=2.5)), "label"),
    "label_bool": (json.dumps(row(label=True)), "label"),
    "label_missing": (json.dumps(without(GOOD, "label")), "label"),
    "label_infinity": ('{"id": "b", "query": "q", "product": {"title": "t"}, "label": Infinity}', "label"),
    "label_huge": ('{"id": "b", "query": "q", "product": {"title": "t"}, "label": 1e400}', "label"),
    "annotations_string": (json.dumps(row(annotations="x")), "annotations"),
    "annotations_checks_list": (json.dumps(row(annotations={"checks": []})), "annotations.checks"),
    "reference_number": (json.dumps(row(reference=4)), "reference"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_malformed_jsonl_row(tmp_path, case):
    line, field = BAD_JSONL[case]
    good = json.dumps(row(id="first"))
    path = write_lines(tmp_path / f"{case}.jsonl", [good, "", line])  # the bad row is on line 3
    with pytest.raises(DataError) as info:
        read_records(path)
    message = str(info.value)
    assert str(path) in message
    assert ":3" in message
    assert f"`{field}`" in message
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 3, field)


def test_messages_quote_the_value_and_the_list_item():
    with pytest.raises(DataError) as info:
        validate_record(row(product_bullets=["ok", 3]), "f.jsonl", 2)
    assert str(info.value) == "f.jsonl:2: field `product.bullets`: item 1: expected a string, got 3"
    with pytest.raises(DataError) as info:
        validate_record(row(query="x" * 500, product_price="x" * 500), "f.jsonl", 2)
    assert info.value.field == "product.price" and len(str(info.value)) < 120  # a long value is cut
    with pytest.raises(DataError) as info:
        validate_record(["not", "a", "record"], "f.jsonl", 2)
    assert info.value.field is None and "expected an object" in str(info.value)


def test_validation_keeps_the_row_as_given_but_id_and_label():
    given = row(id=7, label="3", extra={"k": [1]}, product_price=12)
    given["product"]["description"] = "kept"
    out = validate_record(given, "f.jsonl", 1)
    assert (out["id"], out["label"]) == ("7", 3)
    assert out["product"] is given["product"] and out["product"]["price"] == 12  # an int stays an int
    assert isinstance(out["product"]["price"], int) and out["extra"] == {"k": [1]}
    assert given["id"] == 7  # the input is not mutated


def test_duplicate_id_names_both_lines(tmp_path):
    path = write_lines(
        tmp_path / "dup.jsonl", [json.dumps(GOOD), json.dumps(row(id="other")), json.dumps(GOOD)]
    )
    with pytest.raises(DataError) as info:
        read_records(path)
    message = str(info.value)
    assert str(path) in message and ":3" in message and "`id`" in message
    assert "line 1" in message and "a1" in message


def test_numeric_and_string_ids_collide(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", [json.dumps(row(id=5)), json.dumps(row(id="5"))])
    with pytest.raises(DataError, match="duplicate"):
        read_records(path)


@pytest.mark.parametrize("bad", ["{not json", '{"id": "x",', "[1, 2", "nan nan"])
def test_invalid_json_line(tmp_path, bad):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), bad])
    with pytest.raises(DataError) as info:
        read_records(path)
    assert str(path) in str(info.value)
    assert ":2" in str(info.value)
    assert "JSON" in str(info.value)
    assert info.value.line == 2


def test_row_that_is_not_an_object(tmp_path):
    path = write_lines(tmp_path / "list.jsonl", [json.dumps(GOOD), "[1, 2]"])
    with pytest.raises(DataError) as info:
        read_records(path)
    assert str(path) in str(info.value) and ":2" in str(info.value)


@pytest.mark.parametrize("name", ["data.txt", "data.xlsx", "data"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(DataError) as info:
        read_records(path)
    assert str(path) in str(info.value)
    assert "unsupported" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        read_records(tmp_path / "absent.jsonl")
    assert str(tmp_path / "absent.jsonl") in str(info.value)


def write_csv(path, header: list[str], rows: list[list[str]]):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


CSV_HEADER = ["id", "query", "product_title", "product_price", "label"]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (["", "q", "t", "1", "4"], "id"),
        (["b", "", "t", "1", "4"], "query"),
        (["b", "q", "", "1", "4"], "product.title"),
        (["b", "q", "t", "abc", "4"], "product.price"),
        (["b", "q", "t", "1", "7"], "label"),
        (["b", "q", "t", "1", "x"], "label"),
        (["a", "q", "t", "1", "4"], "id"),  # duplicate of the first row
    ],
)
def test_malformed_csv_row(tmp_path, bad, field):
    path = write_csv(tmp_path / "d.csv", CSV_HEADER, [["a", "q", "t", "1", "4"], bad])
    with pytest.raises(DataError) as info:
        read_records(path)
    message = str(info.value)
    assert str(path) in message
    assert ":3" in message  # header is line 1, the bad row line 3
    assert f"`{field}`" in message


def test_malformed_parquet_row(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"id": ["a", "b"], "query": ["q", "q"], "product_title": ["t", "t"], "label": [4, 9]}), path
    )
    with pytest.raises(DataError) as info:
        read_records(path)
    assert str(path) in str(info.value) and ":2" in str(info.value) and "`label`" in str(info.value)


# CSV cells cannot be null: an empty cell is how CSV writes a missing optional value.
@pytest.mark.parametrize("column", ["product_price", "label", "annotations", "rule", "product_brand"])
def test_csv_empty_optional_cell_means_missing(tmp_path, column):
    header = ["id", "query", "product_title", column]
    path = write_csv(tmp_path / "d.csv", header, [["a", "nike shoes", "Nike Shoes", ""]])
    records = read_records(path, require_label=False)
    assert len(records) == 1
    assert records[0]["id"] == "a" and records[0]["product"]["title"] == "Nike Shoes"
    assert records[0].get("label") is None


@pytest.mark.parametrize("column", ["annotations", "product_attributes"])
def test_csv_invalid_json_cell_is_a_data_error(tmp_path, column):
    header = ["id", "query", "product_title", "label", column]
    path = write_csv(
        tmp_path / "d.csv", header, [["a", "q", "t", "4", "{}"], ["b", "q", "t", "4", "{not json"]]
    )
    with pytest.raises(DataError) as info:
        read_records(path)
    message = str(info.value)
    assert str(path) in message and ":3" in message
    assert column.removeprefix("product_") in message


def test_csv_line_numbers_count_physical_lines(tmp_path):
    # a quoted title spanning two lines: the bad row starts on physical line 4
    path = write_csv(
        tmp_path / "d.csv", CSV_HEADER, [["a", "q", "Nike\nShoes", "1", "4"], ["b", "", "t", "1", "4"]]
    )
    assert path.read_text().count("\n") == 4
    with pytest.raises(DataError) as info:
        read_records(path)
    assert info.value.line == 4 and ":4" in str(info.value)


def test_read_predictions(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"id": 1, "completion": "<answer> 4 </answer>"})])
    assert read_predictions(path) == {"1": "<answer> 4 </answer>"}
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"id": 1}), ""])
    with pytest.raises(DataError) as info:
        read_predictions(bad)
    assert str(bad) in str(info.value) and ":1" in str(info.value) and "`completion`" in str(info.value)


# --- atomic writes --------------------------------------------------------------------------------


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def test_atomic_write_creates_parents_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "out.jsonl"
    assert write_jsonl(target, [GOOD, row(id="b")]) == 2
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["a1", "b"]
    write_json(tmp_path / "a" / "m.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"x": [1, 2]}
    atomic_write_text(target, "replaced\n")
    assert target.read_text() == "replaced\n"
    assert leftovers(target.parent) == [] and leftovers(tmp_path / "a") == []


def test_failed_jsonl_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [GOOD])
    before = target.read_bytes()
    with pytest.raises(TypeError):
        write_jsonl(target, [row(id="b"), {"id": "c", "bad": object()}])
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_write_failing_midway_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old content\n")
    # the encoder fails after the valid head has been handed to the file: a real mid-write failure
    text = "new content " * 10_000 + "\ud800" + " tail"
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, text)
    assert target.read_text() == "old content\n"
    assert leftovers(tmp_path) == []
    # a failure on a file that did not exist leaves nothing behind
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(tmp_path / "new.txt", text)
    assert not (tmp_path / "new.txt").exists()
    assert leftovers(tmp_path) == []


def test_atomic_write_handle_binary_and_failure(tmp_path):
    target = tmp_path / "t.bin"
    with atomic_write(target, "wb") as handle:
        handle.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    with pytest.raises(RuntimeError), atomic_write(target, "wb") as handle:
        handle.write(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"\x00\x01" and leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(target, "a"):
            pass
    assert leftovers(tmp_path) == []


def test_read_records_leaves_the_garbage_collector_as_it_was(tmp_path):
    import gc

    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD)])
    assert gc.isenabled()
    read_records(path)
    assert gc.isenabled()
    with pytest.raises(DataError):
        read_records(write_lines(tmp_path / "bad.jsonl", ["{"]))
    assert gc.isenabled()
    gc.disable()
    try:
        read_records(path)
        assert not gc.isenabled()  # a caller's own pause is not ended
    finally:
        gc.enable()


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    # written files must be readable like any file the process creates (umask), not private 0600
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    atomic_write_text(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
