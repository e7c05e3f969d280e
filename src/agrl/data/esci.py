"""Amazon Shopping Queries (ESCI) in its official parquet layout.

A dataset folder holds ``shopping_queries_dataset_examples.parquet`` (example_id, query, query_id,
product_id, product_locale, esci_label, small_version, large_version, split) and
``shopping_queries_dataset_products.parquet`` (product_id, product_title, product_description,
product_bullet_point, product_brand, product_color, product_locale). `load_esci` joins them on
(product_id, product_locale) into agrl records (schema: ``agrl.data.io``).

Label mapping (configurable through ``label_map``), :data:`agrl.schema.DEFAULT_LABEL_MAP`:

=====  ==============  =====  ==========
ESCI   meaning         grade  agrl name
=====  ==============  =====  ==========
E      Exact           4      Excellent
S      Substitute      3      Related
C      Complement      2      Mismatch
I      Irrelevant      1      Irrelevant
=====  ==============  =====  ==========

C→2 is the coarsest part of the mapping: an ESCI complement (a case for the phone asked for) is
what agrl's rulebook calls accessory-vs-main (grade 1), but ESCI judges it more useful than an
irrelevant product, and the ordinal order is what graded metrics need.

Products without a title are skipped (a judge cannot read an untitled product), as are examples
whose product is missing from the products file; `load_esci_with_stats` returns the counts and
`load_esci` logs a warning when anything was skipped.

With `annotate`, each record gets the partial slot annotations of
:func:`agrl.data.annotate.annotate`, with the brands the query names and its compound types read off
all products of the query (:func:`agrl.data.annotate.query_context`).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agrl.data import annotate as annotator  # a module: `annotate` is a parameter name here
from agrl.data.io import DataError
from agrl.rules import GRADES
from agrl.schema import DEFAULT_LABEL_MAP

log = logging.getLogger(__name__)

EXAMPLES_FILE = "shopping_queries_dataset_examples.parquet"
PRODUCTS_FILE = "shopping_queries_dataset_products.parquet"

_EXAMPLE_COLUMNS = ("example_id", "query", "query_id", "product_id", "product_locale", "esci_label")
_PRODUCT_COLUMNS = ("product_id", "product_title")
_PRODUCT_TEXT = (
    "product_title",
    "product_description",
    "product_bullet_point",
    "product_brand",
    "product_color",
)
MAX_BULLETS = 5
MAX_BULLET_CHARS = 200
MAX_DESCRIPTION_CHARS = 500


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class EsciStats:
    """What a load kept and skipped."""

    rows: int = 0  # example rows that passed the locale/split/version filters
    records: int = 0
    skipped_no_title: int = 0
    skipped_no_product: int = 0
    labels: dict[str, int] = field(default_factory=dict)  # esci_label -> records
    annotated: dict[str, int] = field(default_factory=dict)  # slot -> records whose query states it


def _check_label_map(label_map: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(label_map, Mapping) or not label_map:
        raise ValueError("label_map must be a non-empty mapping of ESCI label -> grade")
    out: dict[str, int] = {}
    for key, grade in label_map.items():
        if not isinstance(key, str) or isinstance(grade, bool) or grade not in GRADES:
            raise ValueError(
                f"label_map: {key!r} -> {grade!r}; expected a label string -> grade in {list(GRADES)}"
            )
        out[key.strip().upper()] = int(grade)
    return out


def _is_text(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):  # pandas categoricals
        return _is_text(kind.value_type)
    view = getattr(pa.types, "is_string_view", lambda _: False)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or view(kind) or pa.types.is_null(kind)


def _schema(path: Path, required: Iterable[str], text: Iterable[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(path, None, None, "no such file")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, None, None, f"not a readable parquet file: {exc}") from None
    for name in required:
        if name not in schema.names:
            raise DataError(path, None, name, "missing column")
    for name in text:
        if name in schema.names:
            kind = schema.field(name).type
            if not _is_text(kind):
                raise DataError(path, None, name, f"expected a string column, got {kind}")
    return schema


def _clean_text(value: object) -> str:
    """Descriptions carry HTML; everything gets single spaces."""
    if not isinstance(value, str):
        return ""
    if "<" in value or "&" in value:
        value = html.unescape(re.sub(r"<[^>]{0,200}>", " ", value))
    return " ".join(value.split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    # End on a word boundary unless that throws away much of the budget.
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip()


def product_record(row: Mapping[str, object]) -> dict | None:
    """An ESCI products row -> agrl's `product` object; None when it has no title."""
    title = _clean_text(row.get("product_title"))
    if not title:
        return None
    product: dict = {"title": title}
    for key in ("brand", "color"):
        value = _clean_text(row.get(f"product_{key}"))
        if value:
            product[key] = value
    raw_bullets = row.get("product_bullet_point")
    if isinstance(raw_bullets, str):
        bullets = [_clean_text(b) for b in raw_bullets.splitlines()]
        bullets = [_truncate(b, MAX_BULLET_CHARS) for b in bullets if b][:MAX_BULLETS]
        if bullets:
            product["bullets"] = bullets
    description = _clean_text(row.get("product_description"))
    if description:
        product["description"] = _truncate(description, MAX_DESCRIPTION_CHARS)
    return product


def _filter_examples(table, path: Path, locale: str | None, split: str | None, version: str | None):
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.append_column("__row", pa.array(range(1, table.num_rows + 1), pa.int64()))
    mask = None

    def both(a, b):
        return b if a is None else pc.and_(a, b)

    if locale is not None:
        mask = both(mask, pc.fill_null(pc.equal(table["product_locale"], locale), False))
    if split is not None:
        if "split" not in table.column_names:
            raise DataError(path, None, "split", "missing column (needed to select a split)")
        mask = both(mask, pc.fill_null(pc.equal(table["split"], split), False))
    if version is not None:
        if version not in ("small", "large"):
            raise ValueError(f"version must be 'small', 'large' or None, got {version!r}")
        column = f"{version}_version"
        if column not in table.column_names:
            raise DataError(path, None, column, f"missing column (needed to select the {version} version)")
        mask = both(mask, pc.fill_null(pc.equal(table[column], 1), False))
    return table if mask is None else table.filter(mask)


def _read_products(path: Path, ids: list[str], locale: str | None, columns: list[str]) -> dict:
    import pyarrow.parquet as pq

    filters: list[tuple[str, str, list[str] | str]] = [("product_id", "in", ids)]
    if locale is not None and "product_locale" in columns:
        filters.append(("product_locale", "==", locale))
    table = pq.read_table(path, columns=columns, filters=filters)
    by_key: dict = {}
    for row in table.to_pylist():
        key = (row["product_id"], row.get("product_locale"))
        by_key.setdefault(key, row)  # duplicated rows: the first wins
    return by_key


def load_esci_with_stats(
    folder: str | Path,
    locale: str | None = "us",
    split: str | None = None,
    label_map: Mapping[str, int] = DEFAULT_LABEL_MAP,
    annotate: bool = True,
    limit: int | None = None,
    version: str | None = None,
) -> tuple[list[dict], EsciStats]:
    """`load_esci` plus what was kept and skipped."""
    import pyarrow.parquet as pq

    grades = _check_label_map(label_map)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, None, "no such folder (expected the ESCI parquet files in it)")
    ex_path, pr_path = folder / EXAMPLES_FILE, folder / PRODUCTS_FILE
    ex_schema = _schema(
        ex_path, _EXAMPLE_COLUMNS, ("query", "product_id", "product_locale", "esci_label", "split")
    )
    pr_schema = _schema(pr_path, _PRODUCT_COLUMNS, ("product_id", "product_locale", *_PRODUCT_TEXT))
    optional = [c for c in ("split", "small_version", "large_version") if c in ex_schema.names]
    examples = _filter_examples(
        pq.read_table(ex_path, columns=[*_EXAMPLE_COLUMNS, *optional]), ex_path, locale, split, version
    )
    pr_columns = [c for c in ("product_id", "product_locale", *_PRODUCT_TEXT) if c in pr_schema.names]
    by_locale = "product_locale" in pr_columns

    stats = EsciStats(rows=examples.num_rows)
    records: list[dict] = []
    seen: dict[str, int] = {}
    start = 0
    # With a limit, read products for just enough examples (plus whatever gets skipped).
    while start < examples.num_rows and (limit is None or len(records) < limit):
        size = examples.num_rows - start if limit is None else max(limit - len(records), 1)
        chunk = examples.slice(start, size).to_pylist()
        start += size
        for row in chunk:
            if row["product_id"] is None:
                raise DataError(ex_path, row["__row"], "product_id", "missing")
        ids = sorted({row["product_id"] for row in chunk})
        products = _read_products(pr_path, ids, locale if by_locale else None, pr_columns)
        for row in chunk:
            record = _example_record(row, ex_path, grades)
            if record["id"] in seen:
                raise DataError(
                    ex_path,
                    row["__row"],
                    "example_id",
                    f"duplicate id {record['id']!r} (first on row {seen[record['id']]})",
                )
            seen[record["id"]] = row["__row"]
            key = (row["product_id"], row["product_locale"] if by_locale else None)
            if key not in products:
                stats.skipped_no_product += 1
                continue
            product = product_record(products[key])
            if product is None:
                stats.skipped_no_title += 1
                continue
            record["product"] = product
            stats.labels[record["esci_label"]] = stats.labels.get(record["esci_label"], 0) + 1
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    stats.records = len(records)
    if annotate:
        groups: dict[str, list[dict]] = {}
        for record in records:
            groups.setdefault(record["query"].lower(), []).append(record)
        for group in groups.values():
            context = annotator.query_context(group[0]["query"], [r["product"] for r in group])
            for record in group:
                record["annotations"] = annotator.annotate(record["query"], record["product"], *context)
                for slot in record["annotations"]["query"]:
                    stats.annotated[slot] = stats.annotated.get(slot, 0) + 1
    return records, stats


def _example_record(row: Mapping, path: Path, grades: Mapping[str, int]) -> dict:
    line = row["__row"]
    if row["example_id"] is None or str(row["example_id"]).strip() == "":
        raise DataError(path, line, "example_id", "missing")
    query = row["query"]
    if not isinstance(query, str) or not query.strip():
        raise DataError(path, line, "query", "missing or empty")
    raw = row["esci_label"]
    label = raw.strip().upper() if isinstance(raw, str) else None
    if label is None or label not in grades:
        raise DataError(path, line, "esci_label", f"unknown label {raw!r}; expected one of {sorted(grades)}")
    record = {
        "id": str(row["example_id"]),
        "query": " ".join(query.split()),
        "label": grades[label],
        "esci_label": label,
        "query_id": row["query_id"],
        "product_id": row["product_id"],
        "locale": row["product_locale"],
    }
    if row.get("split") is not None:
        record["split"] = row["split"]
    return record


def load_esci(
    folder: str | Path,
    locale: str | None = "us",
    split: str | None = None,
    label_map: Mapping[str, int] = DEFAULT_LABEL_MAP,
    annotate: bool = True,
    limit: int | None = None,
    version: str | None = None,
) -> list[dict]:
    """Read an ESCI folder into agrl records, in the examples file's order.

    `locale` ("us", "es", "jp"; None for all) and `split` ("train", "test"; None for both) select
    rows; `version` ("small" / "large") keeps the rows flagged for that task version; `limit` caps
    the number of records returned. Each record has `id` (the example_id), `query`, `product`
    (title, brand, color, up to five bullets, a truncated description), `label` (via `label_map`),
    `esci_label`, `query_id`, `product_id`, `locale`, `split` and, with `annotate`, `annotations`
    from :func:`agrl.data.annotate.annotate`. Missing files or columns and unknown labels raise
    :class:`~agrl.data.io.DataError` naming the file, the row and the field.
    """
    records, stats = load_esci_with_stats(folder, locale, split, label_map, annotate, limit, version)
    if stats.skipped_no_title or stats.skipped_no_product:
        log.warning(
            "%s: skipped %d examples whose product has no title and %d whose product is not in %s",
            folder,
            stats.skipped_no_title,
            stats.skipped_no_product,
            PRODUCTS_FILE,
        )
    return records


__all__ = [
    "DEFAULT_LABEL_MAP",
    "EXAMPLES_FILE",
    "PRODUCTS_FILE",
    "EsciStats",
    "load_esci",
    "load_esci_with_stats",
    "product_record",
]
