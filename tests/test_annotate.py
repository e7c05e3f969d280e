"""The ESCI slot annotator: each slot's reading on plain examples, its failure cases, properties on
arbitrary text, the real sample, and the rewards its annotations feed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrl.data.annotate import (
    CHECKS,
    READERS,
    Pair,
    Reading,
    annotate,
    query_brands,
    query_context,
    query_types,
    singular,
    singular_phrase,
)
from agrl.data.catalog import ESCI_UNITS, UNITS
from agrl.data.esci import load_esci
from agrl.data.slots import compare_size, compare_slot, parse_size
from agrl.reasoning import ABSENT, parse_reasoning, render_reasoning
from agrl.rewards import score_completion
from agrl.rules import CHECK_VALUES, SLOTS, default_rulebook

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests/data/esci_gold.jsonl"


@pytest.fixture(scope="module")
def sample(esci_sample) -> list[dict]:
    return load_esci(esci_sample)


def _slots(query: str, **product) -> dict:
    product.setdefault("title", "Some product")
    return annotate(query, product)


def _read(query: str, slot: str, **product) -> tuple[str | None, str | None, str | None]:
    """(query value, product value, check) of one slot."""
    out = _slots(query, **product)
    return out["query"].get(slot), out["product"].get(slot), out["checks"].get(slot)


# --- format ----------------------------------------------------------------------------------------


def test_output_format_and_slot_order():
    out = annotate(
        "mens black water bottle 1l without straw",
        {
            "title": "Men's Water Bottle with Straw, 1000 ml",
            "color": "Black",
            "brand": "Acme",
        },
    )
    assert set(out) == {"query", "product", "checks", "partial"} and out["partial"] is True
    assert list(out["query"]) == ["type", "gender", "size", "color", "negation"]
    assert [s for s in SLOTS if s in out["query"]] == list(out["query"])
    assert out["checks"] == {
        "type": "match",
        "gender": "match",
        "size": "equivalent",
        "color": "match",
        "negation": "mismatch",
    }


def test_nothing_readable_gives_empty_parts():
    assert annotate("black bardot", {"title": "Off the shoulder"})["checks"] == {}
    assert annotate(None, {"title": "x"})["query"] == {}  # type: ignore[arg-type]
    assert annotate("black shoes", None)["query"] == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "word, one",
    [
        ("boxes", "box"),
        ("supplies", "supply"),
        ("cookies", "cookie"),
        ("pants", "pant"),
        ("bikinis", "bikini"),
        ("glasses", "glasses"),
        ("dresses", "dress"),
        ("knives", "knife"),
        ("mattress", "mattress"),
        ("shoes", "shoe"),
        ("hoodies", "hoodie"),
        ("tennis", "tennis"),
    ],
)
def test_singular(word, one):
    assert singular(word) == one
    assert singular_phrase(f"Water {word}") == f"water {one}"


# --- type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, qtype",
    [
        ("1/2 pint double wall containers without lids", "container"),
        ("1/2gallon water bottle without straw", "water bottle"),
        ("mens slippers", "slipper"),
        ("kaweco sketch up pencil", "pencil"),
        ("swissqlip deep carry pocket clip", "pocket clip"),
        ("working mans hand cream", "hand cream"),
        ("usb lunch box", "lunch box"),
        ("t towels kitchen", "t towel"),
        ("table top bandsaw for metal", "bandsaw"),
        ("mens one piece bikini", "bikini"),
        ("petite dressy spandex pants", "pant"),
        ("cdj stand", "stand"),
        ("slip on clogs for women", "clog"),
        ("paper bags without handles", "paper bag"),
        ("yudu screen printing supplies", "screen printing supply"),
        ("audible books", "audiobook"),
        ("knife sets without block", "knife"),  # a count word: what is counted is the type
        ("vermont american drill bit set", "bit"),
        ("tea towel set", "tea towel"),
        ("wall beds & murphy bed queen", "bed"),  # a bed size
        ("brass tray rectangular", "tray"),
        ("firestick", "firestick"),
        ("listen without prejudice shirt", "shirt"),
    ],
)
def test_query_type_is_the_singular_head_noun_phrase(query, qtype):
    assert _slots(query)["query"]["type"] == qtype


def test_query_without_a_product_noun_has_no_type():
    assert "type" not in _slots("1/2 pint")["query"]
    assert "type" not in _slots("off the shoulder")["query"]


@pytest.mark.parametrize(
    "query, title, ptype, check",
    [
        ("cdj stand", "Headliner Avalon CDJ Stand (HL22000)", "cdj stand", "match"),
        (
            "cdj stand",
            "On-Stage LPT5000 Laptop Computer Stand",
            "computer stand",
            "match",
        ),  # a stand all the same
        ("towel", "Cotton Dish Towels, Set of 6", "dish towel", "match"),  # a subtype
        ("paper bags", "50 Pack Medium White Kraft Paper Bags with Handles Bulk", "paper bag", "match"),
        ("usb lunch box", "Lunch Box", "lunch box", "match"),
        ("t towels kitchen", "Utopia Kitchen Flour Sack Tea Towels 24 Pack", "tea towel", "equivalent"),
        (
            "flip flops",
            "Amazon Essentials Women's Thong Sandal, Turquoise, 7 B US",
            "thong sandal",
            "equivalent",
        ),
        ("firestick", "Amazon Fire TV Stick 4K streaming device", "fire tv stick", "equivalent"),
        (
            "flip flops",
            "adidas Men's Adilette Shower Slides Black/White/White 11",
            "shower slide",
            "mismatch",
        ),
        (
            "mens slippers",
            "Nike Men's Benassi Just Do It Athletic Sandal, Black",
            "athletic sandal",
            "mismatch",
        ),
        ("wood planer", "Makita RT0701C 1-1/4 HP Compact Router", "compact router", "mismatch"),
        (
            "stain steel deep frying pan",
            "Cuisinart Chef's Classic Stainless 10-Inch Open Skillet",
            "skillet",
            "equivalent",
        ),
        (
            "double front pants for men",
            "Carhartt Men's Relaxed Straight Leg Jean, 30W X 32L",
            "jean",
            "equivalent",
        ),
    ],
)
def test_product_type_and_check(query, title, ptype, check):
    assert _read(query, "type", title=title)[1:] == (ptype, check)


def test_a_set_query_matches_a_set_of_its_kind_and_not_another_product():
    # The product side reads "Drill Bit Set" as drill bits ("set" is a count word there): the query
    # side must read "drill bit set" the same way, or every set would be a type mismatch.
    query = "vermont american drill bit set"
    assert annotate(query, {"title": "DEWALT Titanium Drill Bit Set, 21-Piece"})["checks"]["type"] == "match"
    assert (
        annotate(query, {"title": "DEWALT 20V MAX Cordless Drill / Driver Kit"})["checks"]["type"]
        == "mismatch"
    )


def test_a_kit_of_the_product_is_the_product_and_a_word_made_of_the_type_is_no_mismatch():
    kit = annotate(
        "clawfoot tub faucet", {"title": "Tub Mount Clawfoot Bathtub Filler Faucet Kit W/Hand Shower"}
    )
    assert "type" not in kit["checks"]  # a faucet in kit form, not an accessory of one: no mismatch
    heeled = annotate(
        "tan strappy heels for women", {"title": "Women's Amelie Strappy Heeled Sandal, Doe Tan, 8"}
    )
    assert "type" not in heeled["checks"]  # "heeled" names heels: no clear mismatch
    trunks = annotate("mens bathing suits without mesh liner", {"title": "Mossy Oak Men's Swim Trunks, Navy"})
    assert trunks["query"]["type"] == "bathing suit" and trunks["checks"]["type"] == "equivalent"


def test_the_query_brand_is_no_type():
    router = {"title": "Makita RT0701C 1-1/4 HP Compact Router", "brand": "Makita"}
    out = annotate("wood planner makita", router, query_brands=["Makita"])
    assert out["query"] == {"type": "planer", "brand": "makita"}  # "wood planner": a misspelt planer
    assert out["checks"] == {"type": "mismatch", "brand": "match"}


@pytest.mark.parametrize(
    "query, title, ptype",
    [
        (
            "t towels kitchen",
            "S&T INC. Round Adhesive Push Towel Hooks for Kitchen, Hand and Dish Towels",
            "towel hook",
        ),
        ("wood planer", "Makita D-46230 3-1/4-Inch HSS Planer Blade Set", "planer blade"),
        ("firestick", "Remote Cover Case for Fire TV Stick", "case"),
        ("firestick", "Fire TV Stick Remote", "stick remote"),
        ("containers without lids", "Lid Organizer for Pots", "lid organizer"),
    ],
)
def test_an_accessory_of_the_product_is_a_type_mismatch(query, title, ptype):
    assert _read(query, "type", title=title)[1:] == (ptype, "mismatch")


@pytest.mark.parametrize(
    "query, title",
    [
        ("audible books", "The Sandman"),  # a book's title names no product type
        ("audible books", "Critical Mass: Expeditionary Force, Book 10"),  # series numbering
        ("flip flops", "Sanuk Yoga Joy Black 6 B (M)"),  # a model name
        ("mens slippers", "Sanuk Puff N Chill Black 10"),
        ("water bottle", "Tritan Sports Bottle, 32 oz"),  # same head, other words: unsure
        ("cdj stand", "Pioneer DJ Mixer Controller w Software Laptop Stand Pack"),  # a stand comes with it
        (
            "wood planer",
            "Makita 193036-7 Dust Collector Hood for 2012NB Planer",
        ),  # the type only in what it is for
        ("cdj stand", "Numark NDX500 | Stand Alone USB / CD Player"),  # "stand alone" is no stand
    ],
)
def test_unclear_product_types_are_left_out(query, title):
    out = _slots(query, title=title)
    assert "type" in out["query"] and "type" not in out["product"] and "type" not in out["checks"]


def test_vague_query_types_take_their_kind():
    assert _read(
        "yudu screen printing supplies", "type", title="Speedball Advanced All-In-One Screen Printing Kit"
    ) == ("screen printing supply", "screen printing kit", "equivalent")
    assert _read("screen printing supplies", "type", title="F2C Pro Heat Press Machine 12x15")[1:] == (
        None,
        None,
    )


def test_type_reads_the_category_of_records_that_have_one():
    assert (
        _read("mens slippers", "type", title="Sanuk Puff N Chill", category="Shoes > Men > Slippers")[2]
        == "match"
    )


# --- brand -----------------------------------------------------------------------------------------


def test_brand_match_ignores_case_and_punctuation():
    assert _read("nike running shoes", "brand", brand="NIKE", title="Nike Air Zoom") == (
        "nike",
        "nike",
        "match",
    )
    loreal = _slots("l'oréal paris shampoo", brand="L'Oreal Paris")
    assert loreal["checks"]["brand"] == "match" and loreal["query"]["brand"] == "l'oreal paris"
    alias = _slots("loreal shampoo", brand="L'Oréal")  # a catalogue alias maps to the canonical brand
    assert alias["query"]["brand"] == alias["product"]["brand"] == "loreal"
    assert _read("amazonbasics hdmi cable", "brand", brand="Amazon Basics")[2] == "match"
    assert _read("ua vital woven pants", "brand", brand="Under Armour")[2] == "match"  # initials


def test_brand_mismatch_needs_a_known_brand_in_the_query():
    assert _read("nike shoes", "brand", brand="Adidas", title="adidas Men's Lite Racer") == (
        "nike",
        "adidas",
        "mismatch",
    )
    assert _read("running shoes", "brand", brand="Adidas") == (None, None, None)
    known = annotate("vibe mattress", {"title": "Zinus Mattress", "brand": "Zinus"}, query_brands=["Vibe"])
    assert known["checks"]["brand"] == "mismatch" and known["query"]["brand"] == "vibe"


def test_brand_side_that_cannot_be_read_is_left_out():
    assert _read("sony headphones", "brand", title="Wireless Headphones") == ("sony", None, None)
    # A case *for* a Samsung phone, made by Spigen: not a clear brand mismatch.
    assert _read("samsung galaxy case", "brand", brand="Spigen", title="Spigen case for Samsung Galaxy S24")[
        1:
    ] == (None, None)
    assert _read("adidas sneakers", "brand", brand="adidas Originals", title="Superstar sneakers")[2] is None
    assert (
        _read("apple slicer", "brand", brand="OXO", title="OXO Good Grips Apple Divider")[0] is None
    )  # the fruit


def test_query_brands_need_two_products_outside_the_catalogue():
    products = [
        {"title": "x", "brand": "Vibe"},
        {"title": "y", "brand": "Vibe"},
        {"title": "z", "brand": "Zinus"},
    ]
    assert query_brands("vibe mattress", products) == ["Vibe"]
    assert query_brands("vibe mattress", products[:1]) == []
    assert query_brands("nike shoes", [{"title": "x", "brand": "Nike"}]) == ["Nike"]  # catalogue brand


def test_a_negation_in_a_brand_field_is_a_brand_only_when_the_group_confirms_it():
    shirt = {"title": "Listen Without Prejudice T-Shirt", "brand": "Listen Without Prejudice"}
    assert "brand" not in annotate("listen without prejudice shirt", shirt)["query"]
    confirmed = annotate("listen without prejudice shirt", shirt, ["Listen Without Prejudice"])
    assert confirmed["query"]["brand"] == "listen without prejudice"
    assert "negation" not in confirmed["query"]  # an album title, not an exclusion


# --- gender ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, title, reading",
    [
        ("mens slippers", "Dearfoams Men's Closed Back Slipper", ("men", "men", "match")),
        ("men's slippers", "Dearfoams Women's Slipper", ("men", "women", "mismatch")),
        ("slip on clogs for women", "Crocs Men's and Women's LiteRide Clog", ("women", "unisex", "match")),
        ("ugg slippers women", "UGG Kids' Cozy II Slipper", ("women", "kids", "mismatch")),
        ("ugg slippers women", "UGG unisex child Tasman Slipper", ("women", "kids", "mismatch")),
        ("womens sandals", "Reef Bliss Sandals", ("women", None, None)),
        (
            "working mans hand cream",
            "O'Keeffe's Working Hands Hand Cream",
            (None, None, None),
        ),  # a product name
    ],
)
def test_gender(query, title, reading):
    assert _read(query, "gender", title=title) == reading


# --- size ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, size",
    [
        ("1/2 pint containers", "0.5 pt"),
        ("1/2gallon water bottle", "0.5 gal"),
        ("half gallon jug", "0.5 gal"),
        ("1-1/2 inch pipe", "1.5 in"),
        ("1 1/2 inch pipe", "1.5 in"),
        ("16 oz jar", "16 oz"),
        ("16.9 fl oz bottle", "16.9 floz"),
        ("2 quart pot", "2 qt"),
        ("5 lb weights", "5 lb"),
        ("500mg capsules", "500 mg"),
        ("6 ft cable", "6 ft"),
        ("2 m cable", "2 m"),
        ("33 cl can", "33 cl"),
        ("12 pack socks", "12 pack"),
        ("set of 4 mugs", "4 pack"),
        ("4-pack batteries", "4 pack"),
        ("pack of 6 towels", "6 pack"),
        ("1l water bottle", "1 l"),
        ("55 inches tv", "55 in"),
        ('32" tv', "32 in"),
    ],
)
def test_size_values_are_canonical(query, size):
    assert _slots(query)["query"]["size"] == size


@pytest.mark.parametrize("query", ["5g phone", "2 in 1 charger", "mens shoes 9 M US", "10x12 frame"])
def test_sizes_that_are_not_sizes(query):
    assert "size" not in _slots(query)["query"]


@pytest.mark.parametrize(
    "query, title, product_size, check",
    [
        ("1l water bottle", "Water Bottle 1000 ml", "1000 ml", "equivalent"),
        ("500 ml bottle", "Bottle 500ml, BPA free", "500 ml", "match"),
        ("1.5 l bottle", "Bottle 2L", "2 l", "mismatch"),
        ("1tb ssd", "SSD 1,000 GB", "1000 gb", "equivalent"),
        ("32 inch tv", "Smart TV 32-Inch", "32 in", "match"),
        ("1/2 pint jars", "Mason Jars 8 oz", "8 oz", "equivalent"),  # oz beside a volume is a fluid ounce
        ("1/2 pint jars", "Deli Containers 16 Oz", "16 oz", "mismatch"),
        ("1/2gallon water bottle", "Motivational Water Bottle 64 oz", "64 oz", "equivalent"),
        ("500 ml bottle", "Bottle 16.9 fl oz", "16.9 floz", "equivalent"),  # rounded on the label
        ("1 lb coffee", "Coffee Beans 16 Ounce", "16 oz", "equivalent"),
        ("12 pack socks", "Crew Socks, Pack of 12", "12 pack", "match"),
        ("12 pack socks", "Crew Socks 6-Pack", "6 pack", "mismatch"),
        ("1 inch pipe", "Pipe 25.4 mm", "25.4 mm", "equivalent"),
    ],
)
def test_size_checks_convert_units(query, title, product_size, check):
    assert _read(query, "size", title=title)[1:] == (product_size, check)


def test_unreadable_product_sizes_are_left_out():
    assert _read("32 inch tv", "size", title='TV stand for 40", 50" and 55-inch TVs')[1] is None  # several
    assert _read("1l bottle", "size", title="Bottle 500 g")[1] is None  # another family
    assert _read("1l bottle", "size", title="Bottle 2 l", size="1000 ml")[1:] == ("1000 ml", "equivalent")


def test_esci_units_stay_out_of_shoprules_tables():
    assert parse_size("16 oz") is None and parse_size("16 oz", ESCI_UNITS) == (
        "mass",
        16 * 28.349523125,
        "oz",
    )
    assert parse_size("32 in")[0] == "screen" and parse_size("32 in", ESCI_UNITS)[0] == "length"
    assert set(UNITS) == {"ml", "cl", "l", "g", "kg", "gb", "tb", "mm", "cm", "in"}
    assert compare_size("1 l", "1000 ml") == "equivalent" and compare_size("1 gal", "128 floz") == "unknown"
    assert compare_size("500 ml", "16.9 floz", ESCI_UNITS, rel_tol=0.02) == "equivalent"


# --- color -----------------------------------------------------------------------------------------


def test_color_query_and_product_sides():
    assert _read("black running shoes", "color", color="Black/Metallic Gold") == (
        "black",
        "black/gold",
        "match",
    )
    assert _read("black running shoes", "color", color="Racer Red") == ("black", "red", "mismatch")
    assert _read("gray hoodie", "color", title="Zip Hoodie, Grey Heather") == ("grey", "grey", "match")
    assert _read("navy blue dress", "color", color="Navy Blue")[:2] == ("navy", "navy")
    assert _read("black running shoes", "color", color="Lemons", title="Running Shoes") == (
        "black",
        None,
        None,
    )


def test_multi_colour_queries_match_any_of_their_colours():
    assert _read("black and white sneakers", "color", color="White") == ("black/white", "white", "match")
    assert _read("black and white sneakers", "color", color="Black/White/White") == (
        "black/white",
        "black/white",
        "match",
    )
    assert _read("black and white sneakers", "color", color="Red") == ("black/white", "red", "mismatch")


@pytest.mark.parametrize(
    "query",
    [
        "lotion for white women",
        "white noise machine",
        "green tea bags",
        "black friday deals",
        "black and decker drill",
        "black & decker drill",
    ],
)
def test_colour_words_that_are_no_colour(query):
    assert "color" not in _slots(query)["query"]


# --- negation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, feature",
    [
        ("water bottle without straw", "straw"),
        ("water bottle w/o straw", "straw"),
        ("shoes with no laces", "lace"),
        ("non-leather jacket", "leather"),
        ("non leather jacket", "leather"),
        ("fragrance free shampoo", "fragrance"),
        ("bpa-free bottle", "bpa"),
        ("jacket not leather", "leather"),
        ("laceless sneakers", "lace"),
        ("polygel nail kit without led lamp", "led lamp"),
        ("dress without sleeves for wedding", "sleeve"),
        ("1/2 pint double wall containers without lids", "lid"),
    ],
)
def test_negation_query_patterns(query, feature):
    assert _slots(query)["query"]["negation"] == feature


@pytest.mark.parametrize(
    "query",
    [
        "shoes free shipping",
        "no 2 pencils",
        "notebook",
        "nonstick pan",
        "free",
        "non slip socks",
        "no show socks",
        "hands free headset",
        "listen without prejudice shirt",
        "no doubt album",
    ],
)
def test_not_negations(query):
    assert "negation" not in _slots(query)["query"]


@pytest.mark.parametrize(
    "query, title, reading",
    [
        ("water bottle without straw", "Motivational Water Bottle with Straw Lid", ("has straw", "mismatch")),
        (
            "containers without lids",
            "Deli Food Storage Containers with Airtight Lids - 8 oz.",
            ("has lid", "mismatch"),
        ),
        ("containers without lids", "Glass Mason Jars w/ Lid", ("has lid", "mismatch")),
        (
            "containers without lids",
            "Twist Top Deli Containers Screw And Seal Lid 16 Oz",
            ("has lid", "mismatch"),
        ),
        ("containers without lids", "Storage Containers, Lids Included", ("has lid", "mismatch")),
        (
            "polygel nail kit without led lamp",
            "Poly Gel Nail Kit with 48W Led Lamp",
            ("has led lamp", "mismatch"),
        ),
        ("paper bags without handles", "Kraft Paper Bags Without Handle, 100 pack", ("no handle", "match")),
        ("containers without lids", "Plastic Portion Cups (No Lids) Condiment Cup", ("no lid", "match")),
        ("cups without lids", "Lidless Paper Cups", ("no lid", "match")),
        ("candy without sugar", "Sugar-Free Hard Candy", ("no sugar", "match")),
        ("lights without wiring", "Puck Lights without Wiring, Battery Operated", ("no wiring", "match")),
        ("nike shoes without laces", "Nike Men's Slip-On Sneakers", ("no lace", "match")),
        ("nike shoes without laces", "Nike Men's Lace-Up Trainers", ("has lace", "mismatch")),
    ],
)
def test_negation_product_side_has_or_no(query, title, reading):
    assert _read(query, "negation", title=title)[1:] == reading


@pytest.mark.parametrize(
    "query, title",
    [
        ("drawer organizer without silverware", "Silverware Organizer for Drawer"),  # the product's type
        ("containers without lids", "Lid Organizer for Pots"),
        ("water bottle without straw", "Water Bottle with Straw Cleaner Brush"),
        (
            "water bottle without straw",
            "Insulated Water Bottle, 32 oz",
        ),  # not mentioned: nothing the judge sees
    ],
)
def test_negation_product_side_needs_the_title_to_say_it(query, title):
    assert _read(query, "negation", title=title)[1:] == (None, None)


def test_no_fact_comes_from_bullets_or_description():
    product = {
        "title": "Water Bottle 64oz",
        "bullets": ["Comes with a straw lid", "Black"],
        "description": "A black bottle with straw, 1 liter, for men.",
    }
    out = annotate("mens black 1l water bottle without straw", product)
    assert set(out["product"]) == {"type", "size"}  # from the title only
    assert out["product"]["size"] == "64 oz" and out["checks"]["size"] == "mismatch"
    assert out["query"] == {
        "type": "water bottle",
        "gender": "men",
        "size": "1 l",
        "color": "black",
        "negation": "straw",
    }


# --- properties ------------------------------------------------------------------------------------

_VOCAB = [
    "without",
    "no",
    "not",
    "non-",
    "free",
    "-free",
    "black",
    "Gray",
    "navy blue",
    "1l",
    "500 ml",
    "64GB",
    '32"',
    "in",
    "inch",
    "nike",
    "L'Oréal",
    "straw",
    "laces",
    ";",
    "<answer>",
    "</query>",
    ":",
    "&",
    "5g",
    "1,000",
    "w/o",
    "w/",
    "with",
    "leather",
    "x",
    "1/2",
    "1-1/2",
    "oz",
    "fl oz",
    "pack of",
    "set of",
    "|",
    "men's",
    "women",
    "for",
    "case",
    "stand",
    "bottle",
    "water bottle",
    "lid",
    "(",
    ")",
    "-",
    ",",
    "/0",
]
_TEXT = st.lists(st.one_of(st.sampled_from(_VOCAB), st.text(max_size=6)), max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(
    query=_TEXT,
    title=_TEXT,
    brand=st.one_of(st.none(), _TEXT),
    color=st.one_of(st.none(), _TEXT),
    brands=st.lists(_TEXT, max_size=2),
)
def test_annotate_is_total_and_renders_to_parseable_reasoning(query, title, brand, color, brands):
    product = {"title": title, "brand": brand, "color": color}
    out = annotate(query, product, brands)
    assert set(out) == {"query", "product", "checks", "partial"} and out["partial"] is True
    assert set(out["checks"]) == set(out["product"]) <= set(out["query"]) <= set(SLOTS)
    for part in ("query", "product"):
        assert list(out[part]) == [s for s in SLOTS if s in out[part]]
        for value in out[part].values():
            assert value and value == " ".join(value.lower().split()) and not set(value) & set("|;<>")
    for check in out["checks"].values():
        assert check in CHECK_VALUES
    for slot in ("brand", "gender", "negation"):
        if slot in out["checks"]:
            assert out["checks"][slot] == compare_slot(slot, out["query"], out["product"])
    # Filled up the way a judge would write it, the annotation is valid reasoning.
    shown = [s for s in SLOTS if s in out["query"]] or ["type"]
    q = {"type": "thing", **out["query"]}
    p = {"type": "thing", **{s: out["product"].get(s, ABSENT) for s in shown}}
    c = {"type": "match", **{s: out["checks"].get(s, "unknown") for s in shown}}
    rule = default_rulebook().decide(c)
    parsed = parse_reasoning(render_reasoning(q, p, c, rule.tag, rule.grade))
    assert parsed.ok, parsed
    assert (parsed.query, parsed.product, parsed.checks) == (q, p, c)


# --- the real sample -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, feature",
    [
        ("nike shoes men without laces", "lace"),
        ("1/2gallon water bottle without straw", "straw"),
        ("paper bags without handles", "handle"),
        ("1/2 pint double wall containers without lids", "lid"),
    ],
)
def test_negation_queries_of_the_sample_get_a_negation_slot(sample, query, feature):
    group = [r for r in sample if r["query"] == query]
    assert len(group) >= 40
    assert all(r["annotations"]["query"]["negation"] == feature for r in group)
    products = Counter(r["annotations"]["product"].get("negation") for r in group)
    assert products[f"has {feature}"] > 0 and set(products) <= {f"has {feature}", f"no {feature}", None}
    for record in group:
        notes = record["annotations"]
        if "negation" in notes["product"]:
            expected = "mismatch" if notes["product"]["negation"].startswith("has ") else "match"
            assert notes["checks"]["negation"] == expected


def test_sample_brand_is_shared_across_a_query(sample):
    group = [r for r in sample if r["query"] == "nike shoes men without laces"]
    assert {r["annotations"]["query"]["brand"] for r in group} == {"nike"}
    checks = Counter(r["annotations"]["checks"].get("brand") for r in group)
    assert checks["match"] > 0 and checks["mismatch"] > 0
    ua = [r for r in sample if r["query"] == "ua vital woven pants"]
    assert {r["annotations"]["query"].get("brand") for r in ua} == {"under armour"}  # initials of the brand
    assert query_brands("vibe mattress", [r["product"] for r in sample if r["query"] == "vibe mattress"]) == [
        "Vibe"
    ]
    # One product whose brand repeats query words does not make the query name a brand.
    shirts = [r for r in sample if r["query"] == "listen without prejudice shirt"]
    assert query_brands(shirts[0]["query"], [r["product"] for r in shirts]) == []
    assert not any(
        "brand" in r["annotations"]["query"] or "negation" in r["annotations"]["query"] for r in shirts
    )


def test_sample_types_are_read_for_most_records(sample):
    typed = [r for r in sample if "type" in r["annotations"]["checks"]]
    assert len(typed) >= 0.6 * len(sample)
    assert {r["annotations"]["checks"]["type"] for r in typed} == {"match", "equivalent", "mismatch"}


@pytest.mark.skipif(not GOLD.is_file(), reason="no gold fixture")
def test_bench_reports_every_role(tmp_path):
    out = tmp_path / "annotator.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/annotator.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("targets: precision >= 95% on every slot (checks):") == 4
    assert all(f"role {role}:" in done.stdout for role in ("dev", "dev2", "test", "dev60"))
    written = json.loads(out.read_text())["roles"]
    assert [written[role]["lines"] for role in ("dev", "dev2", "test", "dev60")] == [45, 45, 45, 60]
    assert written["dev"]["slots"]["type"]["c_stated"] > 0


def test_a_compound_type_needs_the_titles_of_two_makers():
    dog = [{"title": "YETI Boomer 8, Non-Slip Dog Bowl", "brand": "YETI"},
           {"title": "Platinum Pets Double Diner Feeder with Dog Bowls", "brand": "Platinum Pets"}]  # fmt: skip
    assert query_types("red dog bowl", dog) == ("dog bowl",)
    assert query_types("red dog bowl", dog[:1]) == ()  # one maker: maybe a product line
    line = [
        {"title": "UGG Women's Dakota Slipper", "brand": "UGG"},
        {"title": "UGG Dakota Slipper", "brand": "UGG"},
    ]
    assert query_types("dakota slippers", line) == ()
    belts = [{"title": "Leather Belt", "brand": "A"}, {"title": "Mens Leather Belt", "brand": "B"}]
    assert query_types("leather belts", belts) == ()  # a material describes, it names no type
    buds = [{"title": "Apple Earbuds", "brand": "Apple"}, {"title": "Apple Earbuds Pro", "brand": "Other"}]
    assert query_types("apple earbuds", buds, ["apple"]) == ()  # the brand is no part of the type


def test_the_query_reads_its_compound_beside_every_listing_and_a_bare_head_gets_no_verdict():
    products = [{"title": "YETI Boomer 8, Stainless Steel, Non-Slip Dog Bowl", "brand": "YETI"},
                {"title": "Dog Bowls, 28 oz, Candy Apple Red", "brand": "Platinum Pets"},
                {"title": "Bella Bowls Merlot (Large)", "brand": "Loving Pets"}]  # fmt: skip
    context = query_context("red dog bowl", products)
    assert context == ((), ("dog bowl",))
    out = [annotate("red dog bowl", p, *context) for p in products]
    assert {o["query"]["type"] for o in out} == {"dog bowl"}
    # The third phrase of a title is read when the first two name no product (brand, material).
    assert out[0]["checks"]["type"] == "match"
    assert "type" not in out[2]["checks"]  # "Bella Bowls": a bowl, but is it a dog bowl? unsure
    assert annotate("red dog bowl", products[0])["query"]["type"] == "bowl"  # without the context


def test_a_product_named_by_the_compounds_first_word_gets_no_type_verdict():
    products = [{"title": "Chicago Latrobe Drill Bit Set", "brand": "Chicago Latrobe"},
                {"title": "Bosch Drill Bit Set", "brand": "Bosch"}]  # fmt: skip
    context = query_context("drill bit set", products)
    assert context[1] == ("drill bit",)
    out = annotate("drill bit set", {"title": "Fisch Brad Pt. Drill, 1/2 inch", "brand": "Fisch"}, *context)
    assert out["query"]["type"] == "drill bit" and "type" not in out["checks"]  # a drill, or a bit?


def test_readers_are_registered_by_schema_slot():
    assert set(READERS) == {"type", "brand", "gender", "size", "color", "negation"}
    assert set(READERS) <= set(SLOTS) and set(CHECKS) <= set(READERS)


def test_a_registered_reader_adds_its_slot_in_schema_order():
    @READERS.register("model")
    def read_model(pair: Pair) -> Reading:
        stated = "sketch up" if "sketch up" in pair.query else None
        return Reading(stated, "sketch up" if stated and "Sketch Up" in pair.product["title"] else None)

    try:
        out = annotate("kaweco sketch up pencil", {"title": "Kaweco Sketch Up Pencil", "brand": "Kaweco"})
        without = annotate("kaweco pencil", {"title": "Kaweco Sketch Up Pencil", "brand": "Kaweco"})
    finally:
        del READERS["model"]
    assert list(out["query"]) == ["type", "brand", "model"]  # SLOTS order: type, for, brand, model, ...
    assert out["checks"]["model"] == "match"
    assert (
        "model" not in without["query"]
        and "model" not in annotate("kaweco sketch up pencil", {"title": "x"})["query"]
    )


def test_registering_a_slot_twice_is_an_error():
    with pytest.raises(ValueError, match="slot reader 'color' is already registered"):
        READERS.register("color")(lambda pair: Reading(None, None))


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
    return {
        "id": "1",
        "query": query,
        "product": product,
        "label": label,
        "annotations": annotate(query, product),
    }


def test_annotations_feed_the_partial_reward_components():
    record = _record(
        "nike trainers without laces", {"title": "Adidas Lace-Up Trainers", "brand": "Adidas"}, 2
    )
    assert record["annotations"]["checks"] == {"type": "match", "brand": "mismatch", "negation": "mismatch"}
    scores = score_completion(_completion(record), record)
    assert scores["format"] == 1.0
    assert scores["query_slots"] == scores["product_slots"] == scores["checks"] == 1.0
    assert scores["rule"] is None  # no deciding-rule ground truth on ESCI
    assert scores["label"] == 1.0  # R03 negation_violated -> 2
    assert scores["consistency"] == 1.0
    wrong = score_completion(_completion(record, flip="brand"), record)
    assert wrong["product_slots"] == 2 / 3 and wrong["checks"] == 2 / 3 and wrong["total"] < scores["total"]


def test_components_without_ground_truth_are_none():
    query_only = _record("sony headphones", {"title": "Sony WH-1000XM4"}, 3)
    scores = score_completion(_completion(query_only), query_only)
    assert scores["query_slots"] == 1.0 and scores["product_slots"] is None and scores["checks"] is None
    nothing = _record("1/2", {"title": "Lunch Box"}, 4)
    scores = score_completion(_completion(nothing), nothing)
    assert scores["query_slots"] is scores["product_slots"] is scores["checks"] is scores["rule"] is None
    assert scores["label"] == 1.0 and scores["format"] == 1.0


def test_sample_annotations_score_perfectly_when_restated(sample):
    for record in [r for r in sample if r["annotations"]["checks"]][:50]:
        scores = score_completion(_completion(record), record)
        assert scores["query_slots"] == scores["product_slots"] == scores["checks"] == 1.0
        assert scores["rule"] is None and scores["consistency"] == 1.0
