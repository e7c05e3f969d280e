"""Reading and writing records: JSONL / CSV / Parquet in, atomic writes out.

The record schema (what `agrl` reads from users' files; the models: :class:`agrl.schema.Record`):

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
import gc
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pydantic import TypeAdapter, ValidationError

from agrl.schema import LabelledRecord, Record, shown


class DataError(ValueError):
    """A data file is malformed; the message names the file, the line and the field."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        where = f"{path}" + (f":{line}" if line is not None else "") + (f": field `{field}`" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field


# --- atomic writes ---------------------------------------------------------------------------------

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A handle on a temp file beside `path` that replaces `path` when the block ends without error.

    Readers see the old file or the new one, never half of one; on an error the temp file goes and
    `path` is untouched. `mode` is "w" (text, UTF-8) or "wb" (for writers such as pyarrow's).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(text)


def jsonl_line(row: object) -> str:
    """One JSONL line as agrl writes them: sorted keys, UTF-8 as is."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL atomically; the number of rows written."""
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(jsonl_line(row))
            count += 1
    return count


def write_json(path: str | Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


# --- validation ------------------------------------------------------------------------------------

# What a built-in pydantic error means in the schema's words; agrl's own validators (schema.py)
# word their messages themselves.
_EXPECTED = {
    "string_type": "a string",
    "float_type": "a number",
    "dict_type": "an object",
    "model_type": "an object",
    "list_type": "a list",
}


# Built once: a TypeAdapter call skips model_validate's per-call Python overhead (~1 us a row).
_RECORDS: dict[bool, TypeAdapter[LabelledRecord] | TypeAdapter[Record]] = {
    True: TypeAdapter(LabelledRecord),
    False: TypeAdapter(Record),
}


def _data_error(exc: ValidationError, path: str | Path, line: int | None) -> DataError:
    """The first error of a record's validation as a DataError naming its field (`product.title`)."""
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    # Field names up to the first list index: `product.bullets`, not `product.bullets.0`.
    names: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        names.append(part)
    field = ".".join(names) or None
    kind = error["type"]
    if kind == "missing":
        message = "missing (a grade 1-4 is required)" if field == "label" else "missing"
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {shown(error['input'])}"
    else:
        message = error["msg"]
    if len(loc) > len(names):  # inside a list: say which item
        message = f"item {loc[len(names)]}: {message}"
    return DataError(path, line, field, message)


def validate_record(row: object, path: str | Path, line: int | None, require_label: bool = True) -> dict:
    """Check one record against the schema (:class:`agrl.schema.Record`) and return it normalised.

    The record comes back as given (unknown keys, product extras and an int price included) but for
    `id` as a string and `label` as an int; the first schema violation raises :class:`DataError`.
    """
    try:
        valid = _RECORDS[require_label].validate_python(row)
    except ValidationError as exc:
        raise _data_error(exc, path, line) from None
    # The model validates; the row stays the output. Dumping the model instead would turn an int
    # price into a float and drop the product keys it ignores; only the normalised values move over.
    # A dict, or (strict validation admits nothing else) a Record instance, which iterates as its fields.
    out = dict(row) if isinstance(row, dict) else dict(valid)
    out["id"] = valid.id
    if valid.label is not None:
        out["label"] = valid.label
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
            rows: list[tuple[int, object]] = []
            for r in reader:
                # The row's first physical line: quoted cells may span several lines.
                first = reader.line_num - sum(str(v).count("\n") for v in r.values() if v)
                rows.append((first, _flat_to_record(dict(r), path, first)))
            return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table_rows = pq.read_table(path).to_pylist()
        return [(i + 1, _flat_to_record(r, path, i + 1)) for i, r in enumerate(table_rows)]
    raise DataError(path, None, None, f"unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file's rows are built and validated.

    Parsed rows are acyclic and all stay alive, so every collection the allocations trigger walks a
    growing heap to free nothing: about 0.4 s of a 1 s read of 50k records. Reference counting
    still frees everything else; the collector's previous state comes back even on an error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_records(path: str | Path, require_label: bool = True) -> list[dict]:
    """Read and validate records; duplicate ids are an error too."""
    with _no_cyclic_gc():
        return _read_records(path, require_label)


def _read_records(path: str | Path, require_label: bool) -> list[dict]:
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


def read_prediction_rows(path: str | Path) -> list[tuple[int, str, str]]:
    """(line, id, completion) of every row of an `{id, completion}` file: JSONL, CSV or Parquet
    (what `agrl predict` writes), in file order, duplicates included."""
    out: list[tuple[int, str, str]] = []
    for line, row in read_rows(path):
        if not isinstance(row, dict):
            raise DataError(path, line, None, "expected an object")
        if row.get("id") is None or str(row["id"]).strip() == "":
            raise DataError(path, line, "id", "missing")
        completion = row.get("completion")
        if completion is None and Path(path).suffix.lower() in (".csv", ".parquet"):
            completion = ""  # an empty cell: the model wrote nothing (CSV cannot tell "" from missing)
        if not isinstance(completion, str):
            raise DataError(path, line, "completion", "missing or not a string")
        out.append((line, str(row["id"]), completion))
    return out


def read_predictions(path: str | Path) -> dict[str, str]:
    """`{id, completion}` rows -> {id: completion} (a repeated id: its last row)."""
    return {pid: completion for _, pid, completion in read_prediction_rows(path)}
