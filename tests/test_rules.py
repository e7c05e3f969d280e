"""The rulebook: the shipped default, precedence, and validation of user rulebooks."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrl.rules import CHECK_VALUES, GRADES, SLOTS, Rulebook, RulebookError, default_rulebook, load_rulebook


@pytest.fixture(scope="module")
def rb() -> Rulebook:
    return load_rulebook()


# --- the default rulebook -------------------------------------------------------------------------


def test_default_has_at_least_ten_rules_with_unique_ids(rb):
    assert len(rb.rules) >= 10
    assert len(set(rb.ids)) == len(rb.ids)
    assert all(rule.grade in GRADES for rule in rb.rules)


def test_default_rulebook_is_cached_and_equal_to_loaded(rb):
    assert default_rulebook() is default_rulebook()
    assert default_rulebook().ids == rb.ids


# slot that mismatches alone -> (expected grade) for each phenomenon of the design brief
SINGLE_MISMATCH = {
    "type": 1,  # category
    "for": 1,  # accessory vs main product
    "negation": 2,
    "brand": 2,
    "model": 2,
    "gender": 2,
    "size": 3,
    "color": 3,
    "price": 3,
}


@pytest.mark.parametrize(("slot", "grade"), sorted(SINGLE_MISMATCH.items()))
def test_default_covers_each_phenomenon(rb, slot, grade):
    checks = {s: "match" for s in SLOTS}
    checks[slot] = "mismatch"
    rule = rb.decide(checks)
    assert rule.grade == grade
    assert slot in rule.when and "mismatch" in rule.when[slot]
    assert rule.id != rb.rules[-1].id


def test_default_exact_match_is_grade_4_catch_all(rb):
    all_match = {s: "match" for s in SLOTS}
    assert rb.decide(all_match) is rb.rules[-1]
    assert rb.rules[-1].name == "exact_match"
    assert rb.rules[-1].grade == 4
    assert rb.rules[-1].when == {}


def test_default_equivalences_are_grade_4_but_distinct_rules(rb):
    unit = rb.decide({"type": "match", "size": "equivalent"})
    implied = rb.decide({"type": "equivalent", "brand": "match"})
    assert unit.grade == 4 and implied.grade == 4
    assert len({unit.id, implied.id, rb.rules[-1].id}) == 3


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({"brand": "mismatch", "color": "mismatch"}, "R04"),
        ({"type": "mismatch", "for": "mismatch"}, "R01"),
        ({"type": "mismatch", "brand": "mismatch", "color": "mismatch"}, "R02"),
        ({"negation": "mismatch", "brand": "mismatch"}, "R03"),
        ({"model": "mismatch", "gender": "mismatch", "size": "mismatch"}, "R05"),
        ({"gender": "mismatch", "size": "mismatch"}, "R06"),
        ({"size": "mismatch", "color": "mismatch", "price": "mismatch"}, "R07"),
        ({"color": "mismatch", "price": "mismatch"}, "R08"),
        ({"size": "equivalent", "color": "mismatch"}, "R08"),
        ({"type": "equivalent", "brand": "mismatch"}, "R04"),
        ({"type": "equivalent", "size": "equivalent"}, "R10"),
        ({"price": "mismatch", "size": "equivalent"}, "R09"),
    ],
)
def test_first_rule_that_fires_decides(rb, checks, expected):
    assert rb.decide(checks).id == expected


@pytest.mark.parametrize("checks", [{}, {s: "unknown" for s in SLOTS}, {s: "match" for s in SLOTS}])
def test_catch_all_fires_when_nothing_else_does(rb, checks):
    assert rb.decide(checks).id == "R12"
    assert rb.decide(checks).grade == 4


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SLOTS), st.sampled_from(CHECK_VALUES)))
def test_decide_returns_a_rule_that_fires_and_no_earlier_rule_fires(checks):
    rb = default_rulebook()
    rule = rb.decide(checks)
    index = rb.ids.index(rule.id)
    assert rule.fires(checks)
    assert not any(earlier.fires(checks) for earlier in rb.rules[:index])
    # Any mismatch means the product does not fully meet the query.
    if "mismatch" in checks.values():
        assert rule.grade < 4
    else:
        assert rule.grade == 4


def test_rule_tag_and_summary(rb):
    assert rb.get("R03").tag == "R03 negation_violated"
    assert rb.get("nope") is None
    summary = rb.summary()
    positions = [summary.index(f"{rule.id} {rule.name}") for rule in rb.rules]
    assert positions == sorted(positions)


# --- user rulebooks -------------------------------------------------------------------------------

VALID = """\
name: custom
rules:
  - id: C1
    name: color_first
    description: color beats brand here
    when: {color: mismatch}
    grade: 3
  - id: B1
    name: brand_second
    when: {brand: [mismatch]}
    grade: 2
  - id: OK
    name: all_good
    when: {}
    grade: 4
"""


def write(tmp_path, text: str, name: str = "rules.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_user_rulebook_order_is_precedence(tmp_path):
    rb = load_rulebook(write(tmp_path, VALID))
    assert rb.ids == ("C1", "B1", "OK")
    assert rb.decide({"brand": "mismatch", "color": "mismatch"}).id == "C1"
    assert rb.decide({"brand": "mismatch"}).id == "B1"
    assert rb.decide({"brand": "match"}).id == "OK"
    assert rb.source.endswith("rules.yaml")


def _rule(rule_id="A1", name="a_rule", when="{brand: mismatch}", grade="2") -> str:
    return f"  - id: {rule_id}\n    name: {name}\n    when: {when}\n    grade: {grade}\n"


CATCH_ALL = _rule("Z9", "catch_all", "{}", "4")

INVALID = {
    # case: (yaml text, rule named in the message, field named in the message)
    "duplicate_id": ("rules:\n" + _rule("A1") + _rule("A1", "again") + CATCH_ALL, "A1", "id"),
    "unknown_check": ("rules:\n" + _rule(when="{flavour: mismatch}") + CATCH_ALL, "A1", "when.flavour"),
    "bad_value": ("rules:\n" + _rule(when="{brand: wrong}") + CATCH_ALL, "A1", "when.brand"),
    "bad_value_in_list": (
        "rules:\n" + _rule(when="{brand: [mismatch, nope]}") + CATCH_ALL,
        "A1",
        "when.brand",
    ),
    "empty_value_list": ("rules:\n" + _rule(when="{brand: []}") + CATCH_ALL, "A1", "when.brand"),
    "bad_grade": ("rules:\n" + _rule(grade="5") + CATCH_ALL, "A1", "grade"),
    "grade_as_string": ("rules:\n" + _rule(grade="'2'") + CATCH_ALL, "A1", "grade"),
    "grade_as_bool": ("rules:\n" + _rule(grade="true") + CATCH_ALL, "A1", "grade"),
    "missing_grade": (
        "rules:\n  - {id: A1, name: a_rule, when: {brand: mismatch}}\n" + CATCH_ALL,
        "A1",
        "grade",
    ),
    "name_with_space": ("rules:\n" + _rule(name="'a rule'") + CATCH_ALL, "A1", "name"),
    "when_not_mapping": ("rules:\n" + _rule(when="[brand]") + CATCH_ALL, "A1", "when"),
    "missing_catch_all": ("rules:\n" + _rule() + _rule("A2", "b_rule", "{color: mismatch}"), "A2", "when"),
    "catch_all_not_last": ("rules:\n" + CATCH_ALL + _rule() + _rule("Z8", "end", "{}", "4"), "Z9", "when"),
    "catch_all_first_only": ("rules:\n" + CATCH_ALL + _rule(), "A1", "when"),
    "blind_not_mapping": ("rules:\n" + _rule() + "    blind: [brand]\n" + CATCH_ALL, "A1", "blind"),
    "blind_slot_not_in_when": (
        "rules:\n" + _rule() + "    blind: {color: match}\n" + CATCH_ALL,
        "A1",
        "blind.color",
    ),
    "blind_bad_value": (
        "rules:\n" + _rule() + "    blind: {brand: maybe}\n" + CATCH_ALL,
        "A1",
        "blind.brand",
    ),
}


def test_blind_decision_is_what_a_model_ignoring_the_deciding_feature_reaches(rb):
    # negation missed -> the catch-all; a unit conversion missed -> a size mismatch (the rule's `blind`)
    assert rb.blind_decision({"type": "match", "negation": "mismatch"}).id == "R12"
    assert rb.blind_decision({"type": "match", "size": "equivalent"}).id == "R07"
    assert rb.blind_decision({"type": "match", "price": "mismatch", "color": "match"}).id == "R12"
    # an accessory is also another type: blind to `for`, the category rule gives the same grade
    blind = rb.blind_decision({"type": "mismatch", "for": "mismatch"})
    assert blind.id == "R02" and blind.grade == rb.decide({"type": "mismatch", "for": "mismatch"}).grade
    # the catch-all has no feature to miss
    assert rb.blind_decision({"type": "match"}).id == "R12"


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_rulebook_error_names_file_rule_and_field(tmp_path, case):
    text, rule_id, field = INVALID[case]
    path = write(tmp_path, text, f"{case}.yaml")
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    message = str(info.value)
    assert str(path) in message
    assert f"rule {rule_id}" in message
    assert f"`{field}`" in message


def test_rule_without_id_is_named_by_position(tmp_path):
    path = write(tmp_path, "rules:\n  - {name: a_rule, when: {}, grade: 4}\n")
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert str(path) in str(info.value)
    assert "rule #1" in str(info.value)
    assert "`id`" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["rules: [unclosed\n", "rules:\n  - id: A1\n   name: bad indent\n", "a: b: c\n", "rules: {id: [}\n"],
)
def test_invalid_yaml_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert str(path) in str(info.value)
    assert "YAML" in str(info.value)


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "rules: []\n", "rules: 3\n", "name: no rules\n"])
def test_structurally_wrong_top_level_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_rulebook_error(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert str(path) in str(info.value)


def test_grade_names_are_read(tmp_path):
    rb = load_rulebook(write(tmp_path, "grades: {4: Great, 1: Bad}\n" + VALID))
    assert rb.grade_names == {4: "Great", 1: "Bad"}
    assert load_rulebook().grade_names[2] == "Mismatch"


def test_bad_grades_mapping_is_a_rulebook_error_naming_file_and_field(tmp_path):
    # `grades` keys must be grades; a typo must give the same precise error as every other field,
    # not a bare `int()` ValueError without the file or the field.
    path = write(tmp_path, "grades: {top: Excellent}\n" + VALID)
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert str(path) in str(info.value)
    assert "grades" in str(info.value)
