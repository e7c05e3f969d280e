"""ESCI: the loader on the real sample and on hand-made broken files, the slot annotator, and rewards."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrl.data.esci import (
    DEFAULT_LABEL_MAP,
    EXAMPLES_FILE,
    PRODUCTS_FILE,
    annotate,
    load_esci,
    load_esci_with_stats,
    product_record,
    query_brands,
)
from agrl.data.io import DataError, validate_record
from agrl.data.slots import compare_slot
from agrl.reasoning import ABSENT, parse_reasoning, render_reasoning
from agrl.rewards import score_completion
from agrl.rules import CHECK_VALUES, SLOTS, default_rulebook

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/esci-us-sample"
needs_sample = pytest.mark.skipif(
    not (SAMPLE / EXAMPLES_FILE).is_file(), reason=f"ESCI sample not found at {SAMPLE} (shared data not mounted)"
)


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    if not (SAMPLE / EXAMPLES_FILE).is_file():
        pytest.skip(f"ESCI sample not found at {SAMPLE} (shared data not mounted)")
    return load_esci(SAMPLE)


def _readme_counts() -> tuple[int, dict[str, int]]:
    text = (SAMPLE / "README.md").read_text(encoding="utf-8")
    pairs = int(re.search(r"([\d,]+) pairs", text).group(1).replace(",", ""))
    labels_line = re.search(r"Labels here: ([^.]*)\.", text).group(1)
    return pairs, {k: int(v.replace(",", "")) for k, v in re.findall(r"\b([ESCI]) ([\d,]+)", labels_line)}


# --- the real sample -------------------------------------------------------------------------------


@needs_sample
def test_sample_loads_all_pairs_with_the_readme_label_counts(sample):
    pairs, readme = _readme_counts()
    assert (pairs, readme) == (1313, {"E": 644, "S": 425, "C": 33, "I": 211})
    assert len(sample) == pairs
    assert Counter(r["esci_label"] for r in sample) == Counter(readme)
    assert Counter(r["label"] for r in sample) == Counter({4: 644, 3: 425, 2: 33, 1: 211})
    assert all(r["label"] == DEFAULT_LABEL_MAP[r["esci_label"]] for r in sample)


@needs_sample
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


@needs_sample
def test_stats_count_the_annotated_slots():
    records, stats = load_esci_with_stats(SAMPLE)
    assert stats.rows == stats.records == len(records) == 1313
    assert stats.skipped_no_title == stats.skipped_no_product == 0
    assert stats.labels == {"E": 644, "S": 425, "C": 33, "I": 211}
    assert stats.annotated == dict(Counter(s for r in records for s in r["annotations"]["query"]))
    assert stats.annotated["negation"] >= 250 and stats.annotated["brand"] >= 200 and stats.annotated["color"] >= 40


@needs_sample
def test_custom_label_map_is_honoured():
    reverse = load_esci(SAMPLE, label_map={"E": 1, "S": 2, "C": 3, "I": 4}, annotate=False)
    assert Counter(r["label"] for r in reverse) == Counter({1: 644, 2: 425, 3: 33, 4: 211})
    binary = load_esci(SAMPLE, label_map={"e": 4, "s": 4, "c": 1, "i": 1}, annotate=False)
    assert Counter(r["label"] for r in binary) == Counter({4: 644 + 425, 1: 33 + 211})
    with pytest.raises(DataError, match=r"shopping_queries_dataset_examples\.parquet:\d+: field `esci_label`"):
        load_esci(SAMPLE, label_map={"E": 4, "S": 3})


@pytest.mark.parametrize("bad", [{}, {"E": 5}, {"E": 0}, {"E": True}, {1: 4}])
def test_bad_label_maps_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="label_map"):
        load_esci(tmp_path, label_map=bad)


@needs_sample
def test_filters_limit_and_no_annotations():
    assert len(load_esci(SAMPLE, split="test", annotate=False)) == 1313
    assert load_esci(SAMPLE, split="train") == []
    assert load_esci(SAMPLE, locale="es") == []
    assert len(load_esci(SAMPLE, locale=None, version="small", annotate=False)) == 1313
    first = load_esci(SAMPLE, limit=7, annotate=False)
    assert [r["id"] for r in first] == [r["id"] for r in load_esci(SAMPLE, annotate=False)[:7]]
    assert all("annotations" not in r for r in first)
    assert load_esci(SAMPLE, limit=0) == []


@needs_sample
@pytest.mark.parametrize(
    "query, feature",
    [
        ("nike shoes men without laces", "laces"),
        ("1/2gallon water bottle without straw", "straw"),
        ("paper bags without handles", "handles"),
        ("1/2 pint double wall containers without lids", "lids"),
    ],
)
def test_negation_queries_of_the_sample_get_a_negation_slot(sample, query, feature):
    group = [r for r in sample if r["query"] == query]
    assert len(group) >= 40
    assert all(r["annotations"]["query"]["negation"] == feature for r in group)
    products = {r["annotations"]["product"]["negation"] for r in group}
    assert products == {f"has {feature}", f"no {feature}"}
    for record in group:
        expected = "mismatch" if record["annotations"]["product"]["negation"].startswith("has ") else "match"
        assert record["annotations"]["checks"]["negation"] == expected


@needs_sample
def test_sample_negation_reads_the_title(sample):
    by_title = {r["product"]["title"]: r for r in sample if r["query"] == "1/2gallon water bottle without straw"}
    with_straw = next(r for t, r in by_title.items() if "Water Bottle with Straw" in t)
    assert with_straw["annotations"]["product"]["negation"] == "has straw"
    bags = [r for r in sample if r["query"] == "paper bags without handles" and "Without Handle" in r["product"]["title"]]
    assert bags and all(r["annotations"]["product"]["negation"] == "no handles" for r in bags)


@needs_sample
def test_sample_brand_is_shared_across_a_query(sample):
    group = [r for r in sample if r["query"] == "nike shoes men without laces"]
    assert {r["annotations"]["query"]["brand"] for r in group} == {"nike"}
    checks = Counter(r["annotations"]["checks"]["brand"] for r in group)
    assert checks["match"] > 0 and checks["mismatch"] > 0
    ua = [r for r in sample if r["query"] == "ua vital woven pants"]
    assert {r["annotations"]["query"].get("brand") for r in ua} == {"under armour"}  # initials of the brand
    assert query_brands("vibe mattress", [r["product"] for r in sample if r["query"] == "vibe mattress"]) == ["Vibe"]
    # One product whose brand repeats query words does not make the query name a brand.
    shirts = [r for r in sample if r["query"] == "listen without prejudice shirt"]
    assert query_brands(shirts[0]["query"], [r["product"] for r in shirts]) == []


# --- the annotator ---------------------------------------------------------------------------------


def _slots(query: str, **product) -> dict:
    product.setdefault("title", "Some product")
    return annotate(query, product)


def test_brand_match_ignores_case_and_punctuation():
    out = _slots("nike running shoes", brand="NIKE", title="Nike Air Zoom")
    assert (out["query"], out["product"], out["checks"]) == ({"brand": "nike"}, {"brand": "nike"}, {"brand": "match"})
    loreal = _slots("l'oréal paris shampoo", brand="L'Oreal Paris")
    assert loreal["checks"] == {"brand": "match"} and loreal["query"]["brand"] == "l'oreal paris"
    alias = _slots("loreal shampoo", brand="L'Oréal")  # a catalogue alias maps to the canonical brand
    assert alias["query"] == alias["product"] == {"brand": "loreal"}
    squashed = _slots("amazonbasics hdmi cable", brand="Amazon Basics")
    assert squashed["checks"] == {"brand": "match"}


def test_brand_mismatch_needs_a_known_brand_in_the_query():
    out = _slots("nike shoes", brand="Adidas", title="adidas Men's Lite Racer")
    assert out["query"] == {"brand": "nike"} and out["product"] == {"brand": "adidas"}
    assert out["checks"] == {"brand": "mismatch"}
    assert _slots("running shoes", brand="Adidas") == {"query": {}, "product": {}, "checks": {}, "partial": True}
    known = annotate("vibe mattress", {"title": "Zinus Mattress", "brand": "Zinus"}, query_brands=["Vibe"])
    assert known["checks"] == {"brand": "mismatch"} and known["query"] == {"brand": "vibe"}


def test_brand_side_that_cannot_be_read_is_left_out():
    no_brand = _slots("sony headphones", title="Wireless Headphones")
    assert no_brand["query"] == {"brand": "sony"} and no_brand["product"] == {} and no_brand["checks"] == {}
    # A case *for* a Samsung phone, made by Spigen: not a clear brand mismatch.
    compatible = _slots("samsung galaxy case", brand="Spigen", title="Spigen Tough Armor case for Samsung Galaxy S24")
    assert compatible["query"] == {"brand": "samsung"} and compatible["checks"] == {}
    sub_brand = _slots("adidas sneakers", brand="adidas Originals", title="Superstar sneakers")
    assert sub_brand["checks"] == {}
    ambiguous = _slots("apple slicer", brand="OXO", title="OXO Good Grips Apple Divider")
    assert ambiguous["query"] == {}  # "apple" here is the fruit


def test_color_query_and_product_sides():
    out = _slots("black running shoes", color="Black/Metallic Gold")
    assert (out["query"], out["product"], out["checks"]) == ({"color": "black"}, {"color": "black"}, {"color": "match"})
    red = _slots("black running shoes", color="Racer Red")
    assert red["product"] == {"color": "red"} and red["checks"] == {"color": "mismatch"}
    gray = _slots("gray hoodie", title="Zip Hoodie, Grey Heather")
    assert gray["query"] == {"color": "grey"} and gray["checks"] == {"color": "match"}
    navy = _slots("navy blue dress", color="Navy Blue")
    assert navy["query"] == navy["product"] == {"color": "navy"}
    unread = _slots("black running shoes", color="Lemons", title="Running Shoes")
    assert unread["query"] == {"color": "black"} and unread["checks"] == {}
    assert _slots("green tea bags")["query"] == {}


@pytest.mark.parametrize(
    "query, feature",
    [
        ("water bottle without straw", "straw"),
        ("water bottle w/o straw", "straw"),
        ("shoes with no laces", "laces"),
        ("non-leather jacket", "leather"),
        ("non leather jacket", "leather"),
        ("fragrance free shampoo", "fragrance"),
        ("bpa-free bottle", "bpa"),
        ("jacket not leather", "leather"),
        ("laceless sneakers", "laces"),
        ("polygel nail kit without led lamp", "led lamp"),
        ("dress without sleeves for wedding", "sleeves"),
    ],
)
def test_negation_query_patterns(query, feature):
    assert _slots(query)["query"]["negation"] == feature


@pytest.mark.parametrize("query", ["shoes free shipping", "no 2 pencils", "notebook", "nonstick pan", "free"])
def test_not_negations(query):
    assert "negation" not in _slots(query)["query"]


def test_negation_product_side_has_or_no():
    has = _slots("water bottle without straw", title="Motivational Water Bottle with Straw Lid")
    assert has["product"] == {"negation": "has straw"} and has["checks"] == {"negation": "mismatch"}
    none = _slots("water bottle without straw", title="Water Bottle with Screw Cap")
    assert none["product"] == {"negation": "no straw"} and none["checks"] == {"negation": "match"}
    negated = _slots("paper bags without handles", title="Kraft Paper Bags Without Handle, 100 pack")
    assert negated["product"] == {"negation": "no handles"}
    singular = _slots("containers without lids", title="Deli Containers with Lid")
    assert singular["product"] == {"negation": "has lids"}
    bullets = _slots("water bottle without straw", title="Water Bottle 64oz", bullets=["Comes with a straw lid"])
    assert bullets["product"] == {"negation": "has straw"}
    slip_on = _slots("nike shoes without laces", title="Nike Men's Slip-On Sneakers", brand="Nike")
    assert slip_on["product"]["negation"] == "no laces"
    lace_up = _slots("nike shoes without laces", title="Nike Men's Lace-Up Trainers", brand="Nike")
    assert lace_up["product"]["negation"] == "has laces"


def test_negation_inside_the_named_brand_is_a_name():
    out = _slots("listen without prejudice shirt", brand="Listen Without Prejudice", title="George Michael Tee")
    assert out["query"] == {"brand": "listen without prejudice"}


@pytest.mark.parametrize(
    "query, title, product_size, check",
    [
        ("1l water bottle", "Water Bottle 1000 ml", "1000 ml", "equivalent"),
        ("1000 ml water bottle", "Sports Bottle 1 Liter", "1 l", "equivalent"),
        ("500 ml bottle", "Bottle 500ml, BPA free", "500 ml", "match"),
        ("1.5 l bottle", "Bottle 2L", "2 l", "mismatch"),
        ("64gb phone", "Phone 128GB 5G", "128 gb", "mismatch"),
        ("1tb ssd", "SSD 1,000 GB", "1000 gb", "equivalent"),
        ("32 inch tv", 'Smart TV 32", HD', "32 in", "match"),
        ("32 inch tv", "Smart TV 32-Inch", "32 in", "match"),
        ("5 kg dumbbells", "Dumbbell set 5000 grams", "5000 g", "equivalent"),
    ],
)
def test_size_with_unit_conversion(query, title, product_size, check):
    out = _slots(query, title=title)
    assert out["product"] == {"size": product_size}
    assert out["checks"] == {"size": check}
    assert out["checks"]["size"] == compare_slot("size", out["query"], out["product"])


def test_size_values_are_canonical_and_unreadable_sizes_are_left_out():
    assert _slots("1l water bottle")["query"] == {"size": "1 l"}
    assert _slots("2 liter bottle")["query"] == {"size": "2 l"}
    assert _slots("55 inches tv")["query"] == {"size": "55 in"}
    assert _slots("5g phone")["query"] == {}  # network generation, not grams
    assert _slots("2 in 1 charger")["query"] == {}  # preposition, not inches
    assert _slots("1/2 l jug")["query"] == {}  # a fraction is not read as "2 l"
    several = _slots("32 inch tv", title='TV stand for 40", 50" and 55-inch TVs')
    assert several["query"] == {"size": "32 in"} and several["product"] == {}
    other_family = _slots("1l bottle", title="Bottle 500 g")
    assert other_family["product"] == {}


def test_product_size_field_wins_over_the_title():
    out = _slots("1l bottle", title="Bottle 2 l", size="1000 ml")
    assert out["checks"] == {"size": "equivalent"}


def test_nothing_readable_gives_empty_parts():
    assert annotate("usb lunch box", {"title": "Lunch Box"}) == {
        "query": {}, "product": {}, "checks": {}, "partial": True,
    }
    assert annotate(None, {"title": "x"})["query"] == {}  # type: ignore[arg-type]
    assert annotate("black shoes", None)["query"] == {}  # type: ignore[arg-type]


def test_product_record_cleans_and_truncates():
    product = product_record({
        "product_title": "  Water   Bottle ",
        "product_brand": " ",
        "product_color": "Blue",
        "product_bullet_point": "\n".join(["x" * 300, "", *[f"bullet {i}" for i in range(8)]]),
        "product_description": "<p>Great &amp; <b>useful</b></p> " + "word " * 200,
    })
    assert product["title"] == "Water Bottle" and "brand" not in product and product["color"] == "Blue"
    assert len(product["bullets"]) == 5 and len(product["bullets"][0]) == 200
    assert product["description"].startswith("Great & useful word") and len(product["description"]) <= 500
    assert product_record({"product_title": None}) is None
    assert product_record({"product_title": "   "}) is None


_VOCAB = [
    "without", "no", "not", "non-", "free", "-free", "black", "Gray", "navy blue", "1l", "500 ml", "64GB",
    "32\"", "in", "inch", "nike", "L'Oréal", "straw", "laces", ";", "<answer>", "</query>", ":", "&", "5g",
    "1,000", "w/o", "with", "leather", "x",
]
_TEXT = st.lists(st.one_of(st.sampled_from(_VOCAB), st.text(max_size=6)), max_size=10).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(query=_TEXT, title=_TEXT, brand=st.one_of(st.none(), _TEXT), color=st.one_of(st.none(), _TEXT),
       bullets=st.lists(_TEXT, max_size=3))
def test_annotate_is_total_and_renders_to_parseable_reasoning(query, title, brand, color, bullets):
    product = {"title": title, "brand": brand, "color": color, "bullets": bullets}
    out = annotate(query, product)
    assert set(out) == {"query", "product", "checks", "partial"} and out["partial"] is True
    assert set(out["checks"]) == set(out["product"]) <= set(out["query"]) <= {"brand", "size", "color", "negation"}
    for part in ("query", "product"):
        for value in out[part].values():
            assert value and value == " ".join(value.lower().split()) and not set(value) & set(";<>")
    for slot, check in out["checks"].items():
        assert check in CHECK_VALUES and check == compare_slot(slot, out["query"], out["product"])
    # Filled up the way a judge would write it, the annotation is valid reasoning.
    shown = [s for s in SLOTS if s in out["query"]]
    q = {"type": "thing", **out["query"]}
    p = {"type": "thing", **{s: out["product"].get(s, ABSENT) for s in shown}}
    c = {"type": "match", **{s: out["checks"].get(s, "unknown") for s in shown}}
    rule = default_rulebook().decide(c)
    parsed = parse_reasoning(render_reasoning(q, p, c, rule.tag, rule.grade))
    assert parsed.ok, parsed
    assert (parsed.query, parsed.product, parsed.checks) == (q, p, c)


# --- rewards on ESCI annotations -------------------------------------------------------------------


def _completion(record: dict, flip: str | None = None) -> str:
    notes = record["annotations"]
    shown = [s for s in SLOTS if s in notes["query"]]
    q = {"type": "running shoes", **notes["query"]}
    p = {"type": "running shoes", **{s: notes["product"].get(s, ABSENT) for s in shown}}
    c = {"type": "match", **{s: notes["checks"].get(s, "unknown") for s in shown}}
    if flip:
        p[flip] = "something else"
        c[flip] = "match" if c[flip] != "match" else "mismatch"
    rule = default_rulebook().decide(c)
    return render_reasoning(q, p, c, rule.tag, rule.grade)


def _record(query: str, product: dict, label: int) -> dict:
    return {"id": "1", "query": query, "product": product, "label": label, "annotations": annotate(query, product)}


def test_annotations_feed_the_partial_reward_components():
    record = _record("nike shoes without laces", {"title": "Adidas Lace-Up Trainers", "brand": "Adidas"}, 2)
    assert record["annotations"]["checks"] == {"brand": "mismatch", "negation": "mismatch"}
    scores = score_completion(_completion(record), record)
    assert scores["format"] == 1.0
    assert scores["query_slots"] == scores["product_slots"] == scores["checks"] == 1.0
    assert scores["rule"] is None  # no deciding-rule ground truth on ESCI
    assert scores["label"] == 1.0  # R03 negation_violated -> 2
    assert scores["consistency"] == 1.0
    wrong = score_completion(_completion(record, flip="brand"), record)
    assert wrong["product_slots"] == 0.5 and wrong["checks"] == 0.5 and wrong["total"] < scores["total"]


def test_components_without_ground_truth_are_none():
    query_only = _record("sony headphones", {"title": "Wireless Headphones"}, 3)
    scores = score_completion(_completion(query_only), query_only)
    assert scores["query_slots"] == 1.0 and scores["product_slots"] is None and scores["checks"] is None
    nothing = _record("usb lunch box", {"title": "Lunch Box"}, 4)
    scores = score_completion(_completion(nothing), nothing)
    assert scores["query_slots"] is scores["product_slots"] is scores["checks"] is scores["rule"] is None
    assert scores["label"] == 1.0 and scores["format"] == 1.0


@needs_sample
def test_sample_annotations_score_perfectly_when_restated(sample):
    for record in [r for r in sample if r["annotations"]["checks"]][:50]:
        scores = score_completion(_completion(record), record)
        assert scores["query_slots"] == scores["product_slots"] == scores["checks"] == 1.0
        assert scores["rule"] is None and scores["consistency"] == 1.0


# --- bad files -------------------------------------------------------------------------------------

_EXAMPLE = {
    "example_id": 1, "query": "water bottle without straw", "query_id": 7, "product_id": "P1",
    "product_locale": "us", "esci_label": "E", "small_version": 1, "large_version": 1, "split": "train",
}
_PRODUCT = {
    "product_id": "P1", "product_title": "Water Bottle with Straw", "product_description": None,
    "product_bullet_point": "Leakproof\nBPA free", "product_brand": "Acme", "product_color": "Blue",
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
    assert records[0]["product"] == {"title": "Water Bottle with Straw", "brand": "Acme", "color": "Blue",
                                     "bullets": ["Leakproof", "BPA free"]}
    assert records[0]["annotations"]["checks"] == {"negation": "mismatch"}
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


@pytest.mark.parametrize("column", ["example_id", "query", "query_id", "product_id", "product_locale", "esci_label"])
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
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}:3: field `esci_label`: unknown label 'X'") as error:
        load_esci(folder)
    assert error.value.line == 3


@pytest.mark.parametrize(
    "change, field",
    [({"query": None}, "query"), ({"query": "  "}, "query"), ({"esci_label": None}, "esci_label"),
     ({"example_id": None}, "example_id"), ({"product_id": None}, "product_id")],
)
def test_bad_values_name_row_and_field(tmp_path, change, field):
    folder = _write(tmp_path, [_EXAMPLE, {**_EXAMPLE, **change}], [_PRODUCT])
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}:2: field `{field}`"):
        load_esci(folder)


def test_duplicate_example_ids_are_refused(tmp_path):
    folder = _write(tmp_path, [_EXAMPLE, {**_EXAMPLE, "example_id": 2}, _EXAMPLE], [_PRODUCT])
    with pytest.raises(DataError, match=rf"{EXAMPLES_FILE}:3: field `example_id`: duplicate id '1' \(first on row 1\)"):
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
    assert [r["product"]["title"] for r in load_esci(folder, locale=None)] == ["Water Bottle with Straw", "Botella de agua"]
    assert [r["locale"] for r in load_esci(folder, locale="es")] == ["es"]


@needs_sample
def test_an_esci_folder_is_data_for_eval(sample, tmp_path):
    import json as _json
    import subprocess
    import sys

    from agrl.data.load import load_records

    assert [r["id"] for r in load_records(SAMPLE)] == [r["id"] for r in sample]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(_json.dumps({"id": r["id"], "completion": "<answer> 4 </answer>"}) + "\n"
                                   for r in sample), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "agrl.cli", "eval", "--data", str(SAMPLE), "--predictions",
                           str(predictions), "--out", str(tmp_path / "eval")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = _json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["n"] == len(sample) and metrics["accuracy"] == 0.0  # strict: a bare label is malformed
    assert metrics["lenient_accuracy"] == sum(r["label"] == 4 for r in sample) / len(sample)


def test_a_folder_without_the_esci_layout_is_a_clear_error(tmp_path):
    from agrl.data.load import load_records

    with pytest.raises(FileNotFoundError, match="ESCI layout"):
        load_records(tmp_path)
