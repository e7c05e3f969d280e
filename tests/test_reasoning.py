"""Structured reasoning: render -> parse round trips, totality and strictness of the parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agrl.reasoning import (
    FORMATS,
    LABEL_FIRST,
    MAX_CHARS,
    THINK_FIRST,
    ParseError,
    Reasoning,
    extract_label,
    normalize_value,
    parse_reasoning,
    render_prefix,
    render_reasoning,
    render_sections,
)
from agrl.rules import SLOTS, default_rulebook

GOLD_Q = {"type": "running shoes", "brand": "nike", "negation": "laces"}
GOLD_P = {"type": "running shoes", "brand": "nike", "negation": "has laces"}
GOLD_C = {"type": "match", "brand": "match", "negation": "mismatch"}
GOLD_TAG = "R03 negation_violated"
GOLD = render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2)
SECTIONS = render_sections(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2)


def assert_total(result, text) -> None:
    """What every parse result must look like, whatever the input."""
    assert isinstance(result, (Reasoning, ParseError))
    if isinstance(result, ParseError):
        assert result.ok is False
        assert isinstance(result.message, str) and result.message.strip()
        assert isinstance(result.position, int) and result.position >= 0
        if isinstance(text, str):
            assert result.position <= len(text)
        assert result.label in (None, 1, 2, 3, 4)
        assert str(result)
    else:
        assert result.ok is True
        assert result.label in (1, 2, 3, 4)
        assert "type" in result.query
        assert list(result.query) == list(result.product) == list(result.checks)


# --- round trips ----------------------------------------------------------------------------------


def test_gold_example_parses():
    parsed = parse_reasoning(GOLD)
    assert parsed.ok
    assert parsed == Reasoning(GOLD_Q, GOLD_P, GOLD_C, "R03", "negation_violated", 2)
    assert extract_label(GOLD) == 2


@pytest.mark.parametrize("split", ["b_eval", "hard", "w_eval"])
def test_reference_round_trip_on_shoprules(shoprules, split):
    rulebook = default_rulebook()
    for record in shoprules[split]:
        notes = record["annotations"]
        rule = rulebook.get(record["rule"])
        for fmt in FORMATS:
            text = render_reasoning(notes["query"], notes["product"], notes["checks"], rule.tag, record["label"], fmt)
            parsed = parse_reasoning(text, fmt)
            assert parsed.ok, (record["id"], fmt, parsed)
            assert parsed.query == {k: normalize_value(v) for k, v in notes["query"].items()}
            assert parsed.product == {k: normalize_value(v) for k, v in notes["product"].items()}
            assert parsed.checks == notes["checks"]
            assert (parsed.rule_id, parsed.rule_name) == (rule.id, rule.name)
            assert parsed.label == record["label"]
            # slots come back in canonical order whatever order the annotations had
            assert list(parsed.query) == [s for s in SLOTS if s in notes["query"]]
            # re-rendering the parse gives the same text
            again = render_reasoning(parsed.query, parsed.product, parsed.checks, rule.tag, parsed.label, fmt)
            assert again == text
        # the stored reference is the think-first rendering
        assert parse_reasoning(record["reference"]) == parse_reasoning(
            render_reasoning(notes["query"], notes["product"], notes["checks"], rule.tag, record["label"])
        )


def test_formats_are_not_interchangeable():
    label_first = render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2, "label_first")
    assert label_first.startswith("<answer> 2 </answer>")
    assert parse_reasoning(label_first, "label_first").ok
    assert not parse_reasoning(label_first, "think_first").ok
    assert not parse_reasoning(GOLD, "label_first").ok
    assert parse_reasoning(label_first, "label_first") == parse_reasoning(GOLD)


@pytest.mark.parametrize("upto", ["query", "product", "checks"])
def test_render_prefix_is_a_prefix_of_the_full_reasoning(shoprules, upto):
    for record in shoprules["b_eval"][:60]:
        notes = record["annotations"]
        prefix = render_prefix(notes["query"], notes["product"], notes["checks"], upto)
        assert prefix.endswith("\n")
        assert record["reference"].startswith(prefix)
        assert prefix.rstrip().endswith(f"</{upto}>")


@pytest.mark.parametrize("upto", ["rule", "answer"])
def test_render_prefix_never_returns_text_that_is_not_a_gold_prefix(upto):
    # render_prefix cannot know the rule or the label; asked for them it must refuse, not force a
    # malformed `<rule>  </rule>` / `<answer> 0 </answer>` into the completion.
    try:
        prefix = render_prefix(GOLD_Q, GOLD_P, GOLD_C, upto)
    except ValueError:
        return
    assert GOLD.startswith(prefix)


def test_whitespace_between_and_inside_sections_is_tolerated():
    text = "\n\n" + "\n\n  ".join(SECTIONS[n] for n in THINK_FIRST).replace(" ; ", " ;\n   ") + "\n\n"
    assert parse_reasoning(text) == parse_reasoning(GOLD)
    shouty = GOLD.replace("nike", "  NIKE ")
    assert parse_reasoning(shouty) == parse_reasoning(GOLD)


# --- strictness -----------------------------------------------------------------------------------


def _replace_body(section: str, body: str, text: str = GOLD) -> str:
    return text.replace(SECTIONS[section], f"<{section}> {body} </{section}>")


STRICT = {
    # case: (text, fmt, words the error message must contain)
    "repeated_answer": (GOLD + "\n<answer> 2 </answer>", "think_first", ["</answer>"]),
    "repeated_answer_other_label": (GOLD + "\n<answer> 4 </answer>", "think_first", ["</answer>"]),
    "repeated_answer_label_first": (
        "<answer> 4 </answer>\n" + render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2, "label_first"),
        "label_first",
        ["<query>"],
    ),
    "text_after_final": (GOLD + "\nso the answer is 4", "think_first", ["after", "</answer>"]),
    "text_before_first": ("Sure! " + GOLD, "think_first", ["<query>"]),
    "missing_query": (GOLD.replace(SECTIONS["query"] + "\n", ""), "think_first", ["<query>"]),
    "missing_product": (GOLD.replace(SECTIONS["product"] + "\n", ""), "think_first", ["<product>"]),
    "missing_checks": (GOLD.replace(SECTIONS["checks"] + "\n", ""), "think_first", ["<checks>"]),
    "missing_rule": (GOLD.replace(SECTIONS["rule"] + "\n", ""), "think_first", ["<rule>"]),
    "missing_answer": (GOLD.replace("\n" + SECTIONS["answer"], ""), "think_first", ["<answer>"]),
    "sections_swapped": (
        GOLD.replace(SECTIONS["product"], "@@").replace(SECTIONS["checks"], SECTIONS["product"]).replace(
            "@@", SECTIONS["checks"]
        ),
        "think_first",
        ["<product>"],
    ),
    "unclosed_section": (GOLD.replace("</checks>", ""), "think_first", ["<checks>"]),
    "nested_tag": (_replace_body("product", "type: <answer> 4 </answer>"), "think_first", ["<product>"]),
    "out_of_order_slot": (
        _replace_body("query", "brand: nike ; type: running shoes ; negation: laces"),
        "think_first",
        ["<query>", "out of order"],
    ),
    "unknown_slot": (
        _replace_body("product", "type: running shoes ; flavour: nike ; negation: has laces"),
        "think_first",
        ["<product>", "flavour"],
    ),
    "repeated_slot": (
        _replace_body("checks", "type: match ; type: match ; negation: mismatch"),
        "think_first",
        ["<checks>", "repeated"],
    ),
    "empty_item": (_replace_body("query", "type: running shoes ; ; negation: laces"), "think_first", ["<query>"]),
    "slot_without_value": (_replace_body("product", "type: ; brand: nike ; negation: has laces"), "think_first", ["<product>"]),
    "bad_check_value": (
        _replace_body("checks", "type: match ; brand: probably ; negation: mismatch"),
        "think_first",
        ["<checks>", "probably"],
    ),
    "mismatched_slot_lists": (
        _replace_body("product", "type: running shoes ; negation: has laces"),
        "think_first",
        ["<product>", "<query>"],
    ),
    "checks_list_other_slots": (
        _replace_body("checks", "type: match ; brand: match ; color: unknown"),
        "think_first",
        ["<checks>"],
    ),
    "query_without_type": (
        GOLD.replace("type: running shoes ; ", "").replace("type: match ; ", ""),
        "think_first",
        ["<query>", "type"],
    ),
    "rule_one_word": (_replace_body("rule", "R03"), "think_first", ["<rule>"]),
    "rule_three_words": (_replace_body("rule", "R03 negation violated"), "think_first", ["<rule>"]),
    "answer_5": (_replace_body("answer", "5"), "think_first", ["<answer>"]),
    "answer_0": (_replace_body("answer", "0"), "think_first", ["<answer>"]),
    "answer_1_2": (_replace_body("answer", "1 2"), "think_first", ["<answer>"]),
    "answer_all_labels": (_replace_body("answer", "1, 2, 3, 4"), "think_first", ["<answer>"]),
    "answer_word": (_replace_body("answer", "four"), "think_first", ["<answer>"]),
    "answer_empty": (_replace_body("answer", ""), "think_first", ["<answer>"]),
    "answer_decimal": (_replace_body("answer", "4.0"), "think_first", ["<answer>"]),
    "uppercase_tag": (GOLD.replace("<rule>", "<RULE>"), "think_first", ["<rule>"]),
}


@pytest.mark.parametrize("case", sorted(STRICT))
def test_strictness(case):
    text, fmt, words = STRICT[case]
    result = parse_reasoning(text, fmt)
    assert not result.ok, case
    assert_total(result, text)
    for word in words:
        assert word in result.message, (case, result.message)
    assert extract_label(text, fmt) is None


def test_lenient_label_only_when_exactly_one_answer():
    # metrics may read the one well-formed answer of a malformed output, never one of several
    assert parse_reasoning(GOLD + " trailing").label == 2
    assert parse_reasoning("<answer> 3 </answer>").label == 3
    assert parse_reasoning(GOLD + "\n<answer> 2 </answer>").label is None
    assert parse_reasoning("<answer> 3 </answer><answer> 3 </answer>").label is None
    assert parse_reasoning("<answer> 1 2 </answer>").label is None


@pytest.mark.parametrize("value", [None, 4, 2.0, b"<answer> 4 </answer>", ["<answer> 4 </answer>"], {"a": 1}])
def test_non_strings_give_a_parse_error(value):
    result = parse_reasoning(value)
    assert isinstance(result, ParseError)
    assert "string" in result.message


@pytest.mark.parametrize("fmt", ["json", "", None, ["think_first"], 3])
def test_unknown_format_gives_a_parse_error(fmt):
    result = parse_reasoning(GOLD, fmt)
    assert isinstance(result, ParseError)
    assert "format" in result.message


def test_nul_and_oversized_inputs():
    assert not parse_reasoning(GOLD.replace("nike", "ni\x00ke")).ok
    oversized = GOLD + " " * MAX_CHARS
    result = parse_reasoning(oversized)
    assert isinstance(result, ParseError) and str(MAX_CHARS) in result.message


# --- totality (property tests) --------------------------------------------------------------------

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text())
def test_total_on_any_text(text):
    assert_total(parse_reasoning(text), text)
    assert_total(parse_reasoning(text, "label_first"), text)


@FAST
@given(st.binary())
def test_total_on_decoded_bytes(raw):
    text = raw.decode("utf-8", errors="replace")
    assert_total(parse_reasoning(text), text)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([GOLD, "<answer> 4 </answer>", "<query>", "x", "\x00"]), st.integers(0, 3))
def test_total_on_megabyte_strings(seed_text, where):
    blob = seed_text * (1_000_000 // len(seed_text) + 1)
    text = [blob, GOLD + blob, blob + GOLD, GOLD[:40] + blob + GOLD[40:]][where]
    assert len(text) >= 1_000_000
    result = parse_reasoning(text)
    assert isinstance(result, ParseError)
    assert_total(result, text)


TAGS = [f"<{n}>" for n in THINK_FIRST] + [f"</{n}>" for n in THINK_FIRST] + ["<think>", "</think>", "<>", "</>"]
PIECES = TAGS + ["type: shoes", "brand: nike", " ; ", ";", ":", "match", "mismatch", "R01 accessory_vs_main",
                 "1", "2", "4", "5", " ", "\n", "-", "x"]


@FAST
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_total_on_nested_and_repeated_tags(text):
    for fmt in FORMATS:
        assert_total(parse_reasoning(text, fmt), text)


@FAST
@given(
    st.lists(st.sampled_from(THINK_FIRST), min_size=0, max_size=8),
    st.lists(st.sampled_from(["", " ", "\n", "\n\n", "\t"]), min_size=9, max_size=9),
    st.sampled_from(sorted(FORMATS)),
)
def test_concatenations_of_valid_sections_parse_only_in_the_format_order(names, seps, fmt):
    text = seps[0] + "".join(SECTIONS[n] + sep for n, sep in zip(names, seps[1:]))
    result = parse_reasoning(text, fmt)
    assert_total(result, text)
    if result.ok:
        assert tuple(names) == FORMATS[fmt]
        assert result == parse_reasoning(GOLD)
    else:
        assert tuple(names) != FORMATS[fmt]
        assert any(f"<{n}>" in result.message or f"</{n}>" in result.message for n in THINK_FIRST)


# Junk that cannot open or close a tag (so the damage stays inside its section) and has no NUL.
JUNK = st.text(st.characters(blacklist_characters="<>\x00", blacklist_categories=("Cs",)), max_size=60)


@FAST
@given(st.sampled_from(THINK_FIRST), JUNK, st.sampled_from(sorted(FORMATS)))
def test_a_malformed_section_is_named_in_the_error(section, body, fmt):
    base = render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2, fmt)
    text = _replace_body(section, body, base)
    result = parse_reasoning(text, fmt)
    assert_total(result, text)
    if not result.ok:
        assert f"<{section}>" in result.message, (section, body, result.message)


def test_label_first_stops_after_the_label():
    text = render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 3, "label_first")
    assert text.split("\n", 1)[0] == "<answer> 3 </answer>"
    assert LABEL_FIRST[0] == "answer" and THINK_FIRST[-1] == "answer"
    assert set(LABEL_FIRST) == set(THINK_FIRST)
