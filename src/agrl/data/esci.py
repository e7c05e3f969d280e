"""Amazon Shopping Queries (ESCI) in its official parquet layout, with a heuristic slot annotator.

A dataset folder holds ``shopping_queries_dataset_examples.parquet`` (example_id, query, query_id,
product_id, product_locale, esci_label, small_version, large_version, split) and
``shopping_queries_dataset_products.parquet`` (product_id, product_title, product_description,
product_bullet_point, product_brand, product_color, product_locale). `load_esci` joins them on
(product_id, product_locale) into agrl records (schema: ``agrl.data.io``).

Label mapping (configurable through ``label_map``), :data:`DEFAULT_LABEL_MAP`:

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

`annotate` reads the slots it can read reliably from real text (brand, color, negation, size) and
returns *partial* annotations: only slots the query states, and product values and checks only
where the product side could be read too. There is no `type`, rule or reference reasoning: ESCI has
no ground truth for them, and the rewards score the missing parts as None.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from agrl.data.catalog import BRAND_ALIASES, BRANDS, COLORS, FEATURES, UNITS
from agrl.data.io import DataError
from agrl.data.slots import compare_slot, format_number, parse_size
from agrl.rules import GRADES, SLOTS
from agrl.schema import normalize_value

log = logging.getLogger(__name__)

EXAMPLES_FILE = "shopping_queries_dataset_examples.parquet"
PRODUCTS_FILE = "shopping_queries_dataset_products.parquet"
DEFAULT_LABEL_MAP: Mapping[str, int] = MappingProxyType({"E": 4, "S": 3, "C": 2, "I": 1})

_EXAMPLE_COLUMNS = ("example_id", "query", "query_id", "product_id", "product_locale", "esci_label")
_PRODUCT_COLUMNS = ("product_id", "product_title")
_PRODUCT_TEXT = ("product_title", "product_description", "product_bullet_point", "product_brand", "product_color")
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
            raise ValueError(f"label_map: {key!r} -> {grade!r}; expected a label string -> grade in {list(GRADES)}")
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

    filters = [("product_id", "in", ids)]
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
    ex_schema = _schema(ex_path, _EXAMPLE_COLUMNS, ("query", "product_id", "product_locale", "esci_label", "split"))
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
                    ex_path, row["__row"], "example_id", f"duplicate id {record['id']!r} (first on row {seen[record['id']]})"
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
            brands = query_brands(group[0]["query"], [r["product"] for r in group])
            for record in group:
                record["annotations"] = _annotate(record["query"], record["product"], brands)
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
    if label not in grades:
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
    from :func:`annotate`. Missing files or columns and unknown labels raise
    :class:`~agrl.data.io.DataError` naming the file, the row and the field.
    """
    records, stats = load_esci_with_stats(folder, locale, split, label_map, annotate, limit, version)
    if stats.skipped_no_title or stats.skipped_no_product:
        log.warning(
            "%s: skipped %d examples whose product has no title and %d whose product is not in %s",
            folder, stats.skipped_no_title, stats.skipped_no_product, PRODUCTS_FILE,
        )
    return records


# --- the heuristic slot annotator ------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a an the any and or of for to in on at by with from into my your our his her its their this that "
    "is are be it as so too very than more most".split()
)
# Words after which a negated phrase ends ("without laces for men" -> laces).
_PHRASE_END = _STOPWORDS | {"size", "sizes", "pack", "set", "men", "mens", "women", "womens", "kids"}
# "X free" is no negation of X when `free` goes with the next word (free shipping, free weights).
_FREE_COMPOUNDS = frozenset(
    "shipping delivery returns return trial gift gifts sample samples standing range size style time "
    "spirit people weight weights flowing motion form".split()
)
# Brand fields that name no brand.
_NO_BRAND = frozenset({"generic", "unknown", "na", "n a", "none", "unbranded", "no brand", "other", "various"})
# Catalogue brands that are also common words: in a query they are more likely the word.
_AMBIGUOUS_BRANDS = frozenset(
    "apple head purple giant specialized moment gap champion docs nb hm trek lodge ninja nomad sigma utopia "
    "threshold parachute casper mainstays dove mous esr tnf stanley hape illy olay".split()
)
# Colour words inside other names (green tea, white noise) are not the colour.
_NOT_COLORS = (
    "green tea", "white noise", "black friday", "red wine", "white wine", "orange juice", "black pepper",
    "white board", "black board", "blue tooth", "gold toe", "black light", "silver ware", "red bull",
)
_COLOR_SURFACES = sorted(((s, c) for c, ss in COLORS.items() for s in ss), key=lambda sc: -len(sc[0]))
_COLOR_RE = re.compile(r"(?<![a-z])(" + "|".join(re.escape(s) for s, _ in _COLOR_SURFACES) + r")(?![a-z])")
_COLOR_OF = dict(_COLOR_SURFACES)

_UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "ml": ("milliliters", "millilitres", "milliliter", "millilitre", "ml"),
    "cl": ("centiliters", "centilitres", "centiliter", "centilitre", "cl"),
    "l": ("liters", "litres", "liter", "litre", "ltr", "l"),
    "kg": ("kilograms", "kilogram", "kilos", "kilo", "kgs", "kg"),
    "g": ("grams", "gram", "gr", "g"),
    "tb": ("terabytes", "terabyte", "tb"),
    "gb": ("gigabytes", "gigabyte", "gb"),
    "mm": ("millimeters", "millimetres", "millimeter", "millimetre", "mm"),
    "cm": ("centimeters", "centimetres", "centimeter", "centimetre", "cm"),
    "in": ("inches", "inch", "in", '"', "''"),
}
if set(_UNIT_WORDS) != set(UNITS):  # pragma: no cover - guards catalogue edits
    raise RuntimeError("every unit of agrl.data.catalog.UNITS needs its spellings in esci._UNIT_WORDS")
_UNIT_OF = {w: u for u, ws in _UNIT_WORDS.items() for w in ws}
_SIZE_RE = re.compile(
    r"(?<![a-z\d./,])(\d+(?:\.\d+)?)\s*-?\s*("
    + "|".join(re.escape(w) for w in sorted(_UNIT_OF, key=len, reverse=True))
    + r")(?![a-z\d])"
)
# A bare `in` followed by a word is the preposition ("2 in 1", "4 in gift box"), not inches.
_NOT_INCH = re.compile(r"\s+[a-z\d]")
# "5G", "4G LTE", "2.4G wireless": network generations and radio bands, not grams.
_NOT_GRAMS = frozenset({"2g", "3g", "4g", "5g", "2.4g", "5.8g"})

_NEGATORS = frozenset({"without", "no", "not", "non", "w o"})
# FEATURES phrasings without the feature word itself ("laceless", "unscented", "cordless").
_FEATURE_NEGATIONS: dict[str, str] = {
    phrase: feature
    for feature, info in FEATURES.items()
    for phrase in info["query"]
    if feature not in phrase.split()
}


def _words(text: str) -> str:
    """Lower case ASCII words: accents dropped, `'` and `.` inside words dropped, other punctuation a space."""
    text = text.lower().replace("\u2019", "'")
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z0-9])['.](?=[a-z0-9])", "", text)
    return " ".join(re.sub(r"[^a-z0-9&]+", " ", text).split())


def _contains(haystack: str, needle: str) -> bool:
    """`needle` as whole words in `haystack` (both already in `_words` form)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def _value(text: str) -> str:
    """A slot value the reasoning format can carry: no `;`, tags or control characters, single spaces, lower case."""
    text = "".join(" " if ch in ";<>" or unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return normalize_value(text)


# Every catalogue brand and alias in `_words` form -> canonical brand, and back.
_BRAND_KEYS: dict[str, str] = {}
for _names in BRANDS.values():
    for _name in _names:
        _BRAND_KEYS[_words(_name)] = _name
for _name, _aliases in BRAND_ALIASES.items():
    for _alias in _aliases:
        _BRAND_KEYS.setdefault(_words(_alias), _name)
_ALIASES_OF: dict[str, set[str]] = {}
for _alias, _name in _BRAND_KEYS.items():
    _ALIASES_OF.setdefault(_name, set()).add(_alias)
_LONGEST_BRAND = max(len(k.split()) for k in _BRAND_KEYS)


def _catalog_brands_in(words: str) -> list[tuple[str, str]]:
    """Catalogue (alias, brand) pairs whose alias is in `words`, longest alias first."""
    tokens = words.split()
    found = []
    for n in range(min(_LONGEST_BRAND, len(tokens)), 0, -1):
        for i in range(len(tokens) - n + 1):
            alias = " ".join(tokens[i : i + n])
            name = _BRAND_KEYS.get(alias)
            if name and alias not in _AMBIGUOUS_BRANDS and name not in _AMBIGUOUS_BRANDS:
                found.append((alias, name))
    return found


@lru_cache(maxsize=65536)
def _brand_key(brand: str) -> str:
    key = _words(brand)
    return "" if key in _NO_BRAND or len(key.replace(" ", "")) < 2 or not re.search("[a-z]", key) else key


@lru_cache(maxsize=65536)
def _canonical_brand(brand: str) -> str:
    return _BRAND_KEYS.get(_words(brand), _value(brand))


# Initials that are common query tokens besides brand abbreviations.
_NOT_INITIALS = frozenset(
    "us uk eu xl xs xxl ml cm mm kg lb lbs oz ft pc pcs tv hd ac dc uv led usb diy pm am ok ad id it no or "
    "on in to so go my me we up do be as at by of if is an".split()
)


def _initials(key: str) -> str:
    """"under armour" -> "ua": how queries abbreviate multi-word brands."""
    parts = key.split()
    initials = "".join(w[0] for w in parts) if len(parts) >= 2 else ""
    return "" if initials in _NOT_INITIALS or not initials.isalpha() else initials


def _brand_stated(key: str, words: str) -> bool:
    """Whether a brand (in `_words` form) is in the query: as words, squashed, or as initials (ua)."""
    squashed = key.replace(" ", "")
    tokens = words.split()
    return _contains(words, key) or (len(squashed) >= 4 and squashed in tokens) or _initials(key) in tokens


def _brand_slot(query: str, product: Mapping, query_brands: Iterable[str] = ()) -> tuple[str | None, str | None]:
    words = _words(query)
    raw = product.get("brand")
    key = _brand_key(raw) if isinstance(raw, str) else ""
    if key and _brand_stated(key, words):
        value = _canonical_brand(raw)
        return value, value
    # Brands the query is known to name (read off other products of the same query), then the catalogue's.
    known = {_brand_key(b): _canonical_brand(b) for b in query_brands if isinstance(b, str) and _brand_key(b)}
    candidates = [(k, v) for k, v in sorted(known.items(), key=lambda kv: -len(kv[0])) if _brand_stated(k, words)]
    candidates += _catalog_brands_in(words)
    if not candidates:
        return None, None
    stated = candidates[0][1]
    if not key:
        return stated, None
    aliases = {k for k, v in known.items() if v == stated} | _ALIASES_OF.get(stated, set()) | {_words(stated)}
    title = _words(str(product.get("title", "")))
    # A title naming the asked-for brand is a compatible accessory ("case for apple watch"), and a
    # brand field starting with it a sub-brand ("adidas originals"): neither is a clear mismatch.
    for alias in aliases:
        if _contains(title, alias) or key.startswith(alias + " ") or alias.startswith(key + " "):
            return stated, None
    return stated, _canonical_brand(raw)


def query_brands(query: str, products: Iterable[Mapping], min_products: int = 2) -> list[str]:
    """Brands of `products` that `query` names: what the products' brand fields reveal about the query.

    The loader passes them to :func:`annotate` for every product of the query, so that a product of
    another brand is annotated as a brand mismatch even when the query's brand is not in the
    catalogue. A brand outside the catalogue counts only when at least `min_products` products carry
    it: one product whose brand field happens to repeat query words ("listen without prejudice") must
    not turn every other product of the query into a brand mismatch.
    """
    words = _words(query)
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for product in products:
        raw = product.get("brand")
        key = _brand_key(raw) if isinstance(raw, str) else ""
        if key and _brand_stated(key, words):
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, raw)
    return [first[k] for k, n in counts.items() if n >= min_products or k in _BRAND_KEYS]


def _colors(text: str) -> list[str]:
    lowered = text.lower()
    for phrase in _NOT_COLORS:
        lowered = lowered.replace(phrase, " ")
    return [_COLOR_OF[m] for m in _COLOR_RE.findall(lowered)]


def _color_slot(query: str, product: Mapping) -> tuple[str | None, str | None]:
    stated = _colors(query)
    if not stated:
        return None, None
    wanted = stated[0]
    for source in (product.get("color"), product.get("title")):
        found = _colors(source) if isinstance(source, str) else []
        if found:
            # Multi-colour products ("Black/Gold") match any of their colours.
            return wanted, wanted if wanted in found else found[0]
    return wanted, None


def _sizes(text: str) -> list[str]:
    """Sizes with catalogue units in `text`, canonical ("1 l", "500 ml"), in order of appearance."""
    lowered = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text.lower())
    out = []
    for found in _SIZE_RE.finditer(lowered):
        number, spelled = found.group(1), found.group(2)
        if spelled == "in" and _NOT_INCH.match(lowered, found.end()):
            continue
        if _UNIT_OF[spelled] == "g" and found.group(0) in _NOT_GRAMS:
            continue
        out.append(f"{format_number(float(number))} {_UNIT_OF[spelled]}")
    return out


def _size_slot(query: str, product: Mapping) -> tuple[str | None, str | None]:
    stated = _sizes(query)
    if not stated:
        return None, None
    wanted = stated[0]
    family, amount, _ = parse_size(wanted)
    given = product.get("size")
    candidates = _sizes(given) if isinstance(given, str) else []
    if not candidates:
        candidates = _sizes(str(product.get("title", "")))
    same = [(s, p) for s, p in ((s, parse_size(s)) for s in candidates) if p is not None and p[0] == family]
    for size, parsed in same:
        if abs(parsed[1] - amount) < 1e-6:
            return wanted, size
    # Several different sizes of the family (dimensions, variants): which one is the product's?
    if len({round(p[1], 6) for _, p in same}) == 1:
        return wanted, same[0][0]
    return wanted, None


def _variants(word: str) -> set[str]:
    """The word with its likely singular and plural."""
    out = {word, word + "s"}
    if word.endswith("ies"):
        out.add(word[:-3] + "y")
    elif re.search(r"(s|x|z|ch|sh)es$", word):
        out.add(word[:-2])
    elif word.endswith("s") and not word.endswith("ss"):
        out.add(word[:-1])
    if word.endswith("y"):
        out.add(word[:-1] + "ies")
    if re.search(r"(s|x|z|ch|sh)$", word):
        out.add(word + "es")
    return out


def _negated_feature(query: str) -> str | None:
    """The feature the query excludes: `without X`, `no X`, `not X`, `non-X`, `X-free`, `laceless`."""
    words = _words(query.replace("w/o", " without ")).split()
    for index, word in enumerate(words):
        if word in _NEGATORS:
            rest = words[index + 1 :]
            while rest and rest[0] in {"a", "an", "the", "any"}:
                rest = rest[1:]
            phrase: list[str] = []
            for token in rest:
                if token in _PHRASE_END or token in _NEGATORS or token in _COLOR_OF or not token[0].isalpha():
                    break
                phrase.append(token)
            # "non-leather jacket", "no show socks": these negate one word. "without" takes a
            # two-word feature only when it closes the phrase ("without led lamp").
            if word != "without" or len(phrase) > 2:
                phrase = phrase[:1]
            if phrase and len(phrase[0]) >= 2:
                return " ".join(phrase)
        if word == "free" and index > 0:
            before = words[index - 1]
            after = words[index + 1] if index + 1 < len(words) else ""
            if (
                before not in _STOPWORDS and before not in _NEGATORS and before[0].isalpha()
                and len(before) >= 2 and after not in _FREE_COMPOUNDS
            ):
                return before
    text = " ".join(words)
    for phrase, feature in _FEATURE_NEGATIONS.items():
        if _contains(text, _words(phrase)):
            return feature
    return None


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@lru_cache(maxsize=4096)
def _mentions(feature: str) -> tuple[re.Pattern, list[re.Pattern]]:
    """A pattern for negated mentions of `feature`, and the patterns that all mark it present."""
    parts = feature.split()
    first, head = _alternation(_variants(parts[0])), _alternation(_variants(parts[-1]))
    negated = [
        rf"\b(?:without|no|non|not|w o)\s+(?:(?:a|an|the|any)\s+)?(?:{first})\b",
        rf"\b(?:{head})\s?(?:free|less)\b",
        rf"\b(?:{head})\s+(?:not included|sold separately)\b",
    ]
    positive = [re.compile(rf"\b(?:{_alternation([p])})\b") for p in parts[:-1]]
    positive.append(re.compile(rf"\b(?:{head})\b"))
    info = FEATURES.get(feature)
    if info:
        # Keep ShopRules' surface forms: "slip-on" means no laces, "lace-up" means laces.
        negated += [rf"\b{re.escape(_words(p))}\b" for p in (*info["title_no"], *info["query"])]
        positive = [re.compile("|".join([positive[-1].pattern, *(rf"\b{re.escape(_words(p))}\b"
                                                                  for p in info["title_yes"])]))]
    return re.compile("|".join(negated)), positive


def _negation_slot(query: str, product: Mapping, brand: str | None = None) -> tuple[str | None, str | None]:
    if brand:
        # "listen without prejudice" as the brand the query names is a name, not an exclusion.
        query = f" {_words(query)} ".replace(f" {_words(brand)} ", " ")
    feature = _negated_feature(query)
    if feature is None:
        return None, None
    negated, positive = _mentions(feature)
    sources = [product.get("title")]
    bullets = product.get("bullets")
    if isinstance(bullets, list):
        sources.append(" ; ".join(b for b in bullets if isinstance(b, str)))
    for source in sources:
        if not isinstance(source, str):
            continue
        text = _words(source)
        # A negated mention ("bags without handles") is not the feature being present.
        remaining = negated.sub(" ", text)
        if all(p.search(remaining) for p in positive):
            return feature, f"has {feature}"
        if remaining != text:
            return feature, f"no {feature}"
    # Listings advertise included extras ("with straw"), so an unmentioned feature counts as absent.
    return feature, f"no {feature}"


_ORDER = {slot: index for index, slot in enumerate(SLOTS)}


def _ordered(slots: dict[str, str]) -> dict[str, str]:
    return dict(sorted(slots.items(), key=lambda kv: _ORDER[kv[0]]))


def annotate(query: str, product: Mapping, query_brands: Iterable[str] = ()) -> dict:
    """Partial slot annotations for one query-product pair, in ShopRules' annotation format.

    Returns ``{"query": {...}, "product": {...}, "checks": {...}, "partial": True}`` over the slots
    brand, size, color and negation. A slot appears in `query` only when the query states it, and
    in `product` and `checks` only when the product side could be read too (checks come from
    :func:`agrl.data.slots.compare_slot`). A slot the annotator cannot read on the product side is
    left out rather than written as ``-`` / ``unknown``: the judge may read it from text the
    annotator does not parse (a description, an unusual colour name), and a gold ``unknown`` would
    reward calling it unknown, which the rulebook turns into "everything matches" whatever ESCI says.

    `query_brands` are brands known to be named by the query (see :func:`query_brands`); without
    them the query's brand is read only when it is the product's brand or a catalogue brand.
    """
    q: dict[str, str] = {}
    p: dict[str, str] = {}
    if isinstance(query, str) and isinstance(product, Mapping):
        brand = _brand_slot(query, product, query_brands)
        readings = {
            "brand": brand,
            "size": _size_slot(query, product),
            "color": _color_slot(query, product),
            "negation": _negation_slot(query, product, brand[0]),
        }
        for slot, (q_value, p_value) in readings.items():
            if q_value and _value(q_value):
                q[slot] = _value(q_value)
                if p_value and _value(p_value):
                    p[slot] = _value(p_value)
    checks = {slot: compare_slot(slot, q, p) for slot in p}
    return {"query": _ordered(q), "product": _ordered(p), "checks": _ordered(checks), "partial": True}


# `load_esci_with_stats` has a parameter named `annotate`.
_annotate = annotate

__all__ = [
    "DEFAULT_LABEL_MAP", "EXAMPLES_FILE", "PRODUCTS_FILE", "EsciStats", "annotate", "load_esci",
    "load_esci_with_stats", "product_record", "query_brands",
]
