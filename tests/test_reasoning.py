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
    lenient_label,
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
    assert GOLD.splitlines()[1:4] == [
        "type: running shoes | running shoes match",
        "brand: nike | nike match",
        "negation: laces | has laces mismatch",
    ]


@pytest.mark.parametrize("split", ["b_eval", "hard", "w_eval"])
def test_reference_round_trip_on_shoprules(shoprules, split):
    rulebook = default_rulebook()
    for record in shoprules[split]:
        notes = record["annotations"]
        rule = rulebook.get(record["rule"])
        for fmt in FORMATS:
            text = render_reasoning(
                notes["query"], notes["product"], notes["checks"], rule.tag, record["label"], fmt
            )
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


@pytest.mark.parametrize("lines", [0, 1, 2, None])
def test_render_prefix_is_a_prefix_of_the_full_reasoning(shoprules, lines):
    rulebook = default_rulebook()
    for record in shoprules["b_eval"][:60]:
        notes = record["annotations"]
        prefix = render_prefix(notes["query"], notes["product"], notes["checks"], lines)
        assert prefix.endswith("\n")
        assert record["reference"].startswith(prefix)
        n_lines = len(notes["checks"]) if lines is None else min(lines, len(notes["checks"]))
        assert prefix.count("\n") == 1 + n_lines + (lines is None)
        with_rule = render_prefix(
            notes["query"], notes["product"], notes["checks"], rule_tag=rulebook.get(record["rule"]).tag
        )
        assert record["reference"].startswith(with_rule) and with_rule.rstrip().endswith("</rule>")
        assert "<answer>" not in with_rule


def test_render_prefix_refuses_a_rule_after_partial_checks():
    # a rule after half the checks is not a prefix of any gold reasoning
    with pytest.raises(ValueError, match="complete checks"):
        render_prefix(GOLD_Q, GOLD_P, GOLD_C, 1, rule_tag=GOLD_TAG)


def test_whitespace_between_and_inside_sections_is_tolerated():
    text = "\n\n" + "\n\n  ".join(SECTIONS[n] for n in THINK_FIRST).replace(" | ", "  |   ") + "\n\n"
    assert parse_reasoning(text) == parse_reasoning(GOLD)
    shouty = GOLD.replace("nike", "  NIKE ")
    assert parse_reasoning(shouty) == parse_reasoning(GOLD)
    # a tokenizer that eats the newline after <checks> still gives a parseable text
    assert parse_reasoning(
        GOLD.replace("<checks>\n", "<checks> ").replace("\n</checks>", "</checks>")
    ) == parse_reasoning(GOLD)


def test_values_cannot_break_the_line_layout():
    # `|` inside a value is normalised away, so a rendered line always splits back into its parts
    text = render_reasoning(
        {"type": "a | b"}, {"type": "c|d"}, {"type": "mismatch"}, "R02 category_mismatch", 1
    )
    parsed = parse_reasoning(text)
    assert parsed.ok and parsed.query == {"type": "a / b"} and parsed.product == {"type": "c/d"}


# --- strictness -----------------------------------------------------------------------------------


def _replace_body(section: str, body: str, text: str = GOLD) -> str:
    return text.replace(SECTIONS[section], f"<{section}> {body} </{section}>")


def _lines(*lines: str) -> str:
    return _replace_body("checks", "\n" + "\n".join(lines) + "\n")


NEG = "negation: laces | has laces mismatch"
TYPE = "type: running shoes | running shoes match"
BRAND = "brand: nike | nike match"

STRICT = {
    # case: (text, fmt, words the error message must contain)
    "repeated_answer": (GOLD + "\n<answer> 2 </answer>", "think_first", ["</answer>"]),
    "repeated_answer_other_label": (GOLD + "\n<answer> 4 </answer>", "think_first", ["</answer>"]),
    "repeated_answer_label_first": (
        "<answer> 4 </answer>\n" + render_reasoning(GOLD_Q, GOLD_P, GOLD_C, GOLD_TAG, 2, "label_first"),
        "label_first",
        ["<checks>"],
    ),
    "text_after_final": (GOLD + "\nso the answer is 4", "think_first", ["after", "</answer>"]),
    "text_before_first": ("Sure! " + GOLD, "think_first", ["<checks>"]),
    "missing_checks": (GOLD.replace(SECTIONS["checks"] + "\n", ""), "think_first", ["<checks>"]),
    "missing_rule": (GOLD.replace(SECTIONS["rule"] + "\n", ""), "think_first", ["<rule>"]),
    "missing_answer": (GOLD.replace("\n" + SECTIONS["answer"], ""), "think_first", ["<answer>"]),
    "sections_swapped": (
        SECTIONS["rule"] + "\n" + SECTIONS["checks"] + "\n" + SECTIONS["answer"],
        "think_first",
        ["<checks>"],
    ),
    "unclosed_section": (GOLD.replace("</checks>", ""), "think_first", ["<checks>"]),
    "nested_tag": (_lines("type: <answer> 4 </answer> | x match"), "think_first", ["<checks>"]),
    "empty_checks": (_lines(), "think_first", ["<checks>"]),
    "out_of_order_slot": (_lines(BRAND, TYPE, NEG), "think_first", ["<checks>", "out of order"]),
    "unknown_slot": (_lines(TYPE, "flavour: nike | nike match", NEG), "think_first", ["<checks>", "flavour"]),
    "repeated_slot": (_lines(TYPE, TYPE, NEG), "think_first", ["<checks>", "repeated"]),
    "empty_line": (_lines(TYPE, "", NEG), "think_first", ["<checks>", "empty"]),
    "missing_product_value": (
        _lines(TYPE, "brand: nike | match", NEG),
        "think_first",
        ["<checks>", "line 2"],
    ),
    "missing_separator": (_lines(TYPE, "brand: nike nike match", NEG), "think_first", ["<checks>", "line 2"]),
    "two_separators": (_lines(TYPE, "brand: nike | nike | nike match", NEG), "think_first", ["<checks>"]),
    "missing_verdict": (_lines(TYPE, "brand: nike | nike", NEG), "think_first", ["<checks>"]),
    "bad_verdict": (
        _lines(TYPE, "brand: nike | nike probably", NEG),
        "think_first",
        ["<checks>", "probably"],
    ),
    "sections_of_v1": (
        GOLD.replace(SECTIONS["checks"], "<checks> type: match ; brand: match </checks>"),
        "think_first",
        ["<checks>"],
    ),
    "without_type": (_lines(BRAND, NEG), "think_first", ["<checks>", "type"]),
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


def test_lenient_label_only_when_exactly_one_answer():
    # the separately named lenient metric may read the one well-formed answer of a malformed
    # output, never one of several
    assert parse_reasoning(GOLD + " trailing").label == 2
    assert lenient_label(GOLD + " trailing") == 2
    assert parse_reasoning("<answer> 3 </answer>").label == 3
    assert lenient_label("<answer> 3 </answer>") == 3
    assert parse_reasoning(GOLD + "\n<answer> 2 </answer>").label is None
    assert lenient_label("<answer> 3 </answer><answer> 3 </answer>") is None
    assert lenient_label("<answer> 1 2 </answer>") is None
    assert lenient_label(None) is None


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


TAGS = (
    [f"<{n}>" for n in THINK_FIRST] + [f"</{n}>" for n in THINK_FIRST] + ["<think>", "</think>", "<>", "</>"]
)
PIECES = TAGS + [
    "type: shoes | shoes match",
    "brand: nike",
    " | ",
    "|",
    ":",
    "match",
    "mismatch",
    "R01 accessory_vs_main",
    "1",
    "2",
    "4",
    "5",
    " ",
    "\n",
    "-",
    "x",
]


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
