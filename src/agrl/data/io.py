"""Reading and writing records: JSONL / CSV / Parquet in, atomic writes out.

The record schema (what `agrl` reads from users' files):

=============  ========  =====================================================================
field          required  meaning
=============  ========  =====================================================================
id             yes       unique string (numbers are converted)
query          yes       the search query, non-empty string
product        yes       object with a non-empty `title`; optional `category`, `brand`, `model`,
                         `color`, `gender`, `size`, `price` (number), `attributes` (object),
                         `bullets` (list of strings). CSV/Parquet: flat `product_<field>` columns.
label          no*       grade 1-4 (*required for training and evaluation)
rule           no        deciding rule id, when known
annotations    no        {"query": {...}, "product": {...}, "checks": {...}} slot annotations
reference      no        gold reasoning text
=============  ========  =====================================================================

A malformed row raises :class:`DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from agrl.schema import TEXT_PRODUCT_FIELDS


class DataError(ValueError):
    """A data file is malformed; the message names the file, the line and the field."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        where = f"{path}" + (f":{line}" if line is not None else "") + (f": field `{field}`" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows]
    atomic_write_text(path, "".join(lines))
    return len(lines)


def write_json(path: str | Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def validate_record(row: object, path: str | Path, line: int | None, require_label: bool = True) -> dict:
    """Check one record against the schema and return it normalised (id as string, label as int)."""
    if not isinstance(row, dict):
        raise DataError(path, line, None, f"expected an object, got {type(row).__name__}")
    if "id" not in row or row["id"] is None or str(row["id"]).strip() == "":
        raise DataError(path, line, "id", "missing or empty")
    out = dict(row)
    out["id"] = str(row["id"])
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DataError(path, line, "query", "missing or not a non-empty string")
    product = row.get("product")
    if not isinstance(product, dict):
        raise DataError(path, line, "product", "missing or not an object")
    title = product.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DataError(path, line, "product.title", "missing or not a non-empty string")
    for key in TEXT_PRODUCT_FIELDS:
        if product.get(key) is not None and not isinstance(product[key], str):
            raise DataError(
                path, line, f"product.{key}", f"expected a string, got {type(product[key]).__name__}"
            )
    price = product.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        raise DataError(path, line, "product.price", f"expected a number, got {price!r}")
    if product.get("attributes") is not None and not isinstance(product["attributes"], dict):
        raise DataError(path, line, "product.attributes", "expected an object")
    if product.get("bullets") is not None and not (
        isinstance(product["bullets"], list) and all(isinstance(b, str) for b in product["bullets"])
    ):
        raise DataError(path, line, "product.bullets", "expected a list of strings")
    label = row.get("label")
    if label is None:
        if require_label:
            raise DataError(path, line, "label", "missing (a grade 1-4 is required)")
    else:
        try:
            grade = int(label)
        except (TypeError, ValueError, OverflowError):
            raise DataError(path, line, "label", f"expected a grade 1-4, got {label!r}") from None
        if (
            grade not in (1, 2, 3, 4)
            or isinstance(label, bool)
            or (isinstance(label, float) and label != grade)
        ):
            raise DataError(path, line, "label", f"expected a grade 1-4, got {label!r}")
        out["label"] = grade
    annotations = row.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            raise DataError(path, line, "annotations", "expected an object")
        for part in ("query", "product", "checks"):
            if annotations.get(part) is not None and not isinstance(annotations[part], dict):
                raise DataError(path, line, f"annotations.{part}", "expected an object")
    if row.get("reference") is not None and not isinstance(row["reference"], str):
        raise DataError(path, line, "reference", "expected a string")
    return out


def _json_cell(value: str, path: str | Path, line: int, field: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise DataError(path, line, field, f"invalid JSON: {exc.msg}") from None


def _flat_to_record(row: dict, path: str | Path = "<rows>", line: int = 0) -> dict:
    """CSV/Parquet rows carry product fields as `product_<field>` columns; empty cells are missing values."""
    record: dict = {}
    product: dict = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
            continue
        if isinstance(value, str) and not value.strip() and key != "query":
            continue
        if key.startswith("product_"):
            field = key[len("product_") :]
            if field == "attributes" and isinstance(value, str):
                value = _json_cell(value, path, line, key)
            if field == "bullets" and isinstance(value, str):
                value = [value]
            product[field] = value
        elif key == "product" and isinstance(value, dict):
            product.update(value)
        elif key == "annotations" and isinstance(value, str):
            record[key] = _json_cell(value, path, line, key)
        else:
            record[key] = value
    if product:
        record["product"] = product
    if isinstance(record.get("product", {}).get("price"), str):
        try:
            record["product"]["price"] = float(record["product"]["price"])
        except ValueError:
            pass  # validate_record names it
    return record


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(path, number, None, f"invalid JSON: {exc.msg}") from None


def read_rows(path: str | Path) -> list[tuple[int, object]]:
    """Raw rows with their line numbers (1-based; CSV counts the header as line 1)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return list(iter_jsonl(path))
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for r in reader:
                # The row's first physical line: quoted cells may span several lines.
                first = reader.line_num - sum(str(v).count("\n") for v in r.values() if v)
                rows.append((first, _flat_to_record(dict(r), path, first)))
            return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return [(i + 1, _flat_to_record(r, path, i + 1)) for i, r in enumerate(rows)]
    raise DataError(path, None, None, f"unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")


def read_records(path: str | Path, require_label: bool = True) -> list[dict]:
    """Read and validate records; duplicate ids are an error too."""
    records: list[dict] = []
    seen: dict[str, int] = {}
    for line, row in read_rows(path):
        record = validate_record(row, path, line, require_label)
        if record["id"] in seen:
            raise DataError(
                path, line, "id", f"duplicate id {record['id']!r} (first on line {seen[record['id']]})"
            )
        seen[record["id"]] = line
        records.append(record)
    return records


def read_predictions(path: str | Path) -> dict[str, str]:
    """`{id, completion}` JSONL -> {id: completion}."""
    out: dict[str, str] = {}
    for line, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(path, line, None, "expected an object")
        if "id" not in row:
            raise DataError(path, line, "id", "missing")
        completion = row.get("completion")
        if not isinstance(completion, str):
            raise DataError(path, line, "completion", "missing or not a string")
        out[str(row["id"])] = completion
    return out
