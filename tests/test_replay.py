"""The replay core as pure functions: trigger, selection, guidance, levels, queue, state round trip."""

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agrl.reasoning import parse_reasoning
from agrl.replay import (
    TRIGGERS,
    ExampleState,
    ReplayState,
    build_guidance,
    deciding_lines,
    dequeue_solved,
    enqueue,
    group_accuracy,
    is_stagnant,
    select_replaced,
    take_from_queue,
    update_example,
    zero_std_groups,
)
from agrl.rewards import score_components
from agrl.rules import SLOTS, default_rulebook


def test_group_accuracy_and_trigger():
    correct = [False] * 4 + [True, False, False, False]
    acc = group_accuracy(correct, 4)
    assert acc == [0.0, 0.25]
    assert is_stagnant(acc[0]) and not is_stagnant(acc[1])
    assert is_stagnant(acc[1], tau=0.25)
    with pytest.raises(ValueError):
        group_accuracy([True] * 5, 4)


SCORE = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1))


@given(st.booleans(), st.fixed_dictionaries({"checks": SCORE, "consistency": SCORE, "label": SCORE}))
def test_grounded_trigger_is_the_label_trigger_plus_gold_checks(label_ok, components):
    label, grounded = TRIGGERS["label"](label_ok, components), TRIGGERS["grounded"](label_ok, components)
    assert label == label_ok
    assert not grounded or label  # a grounded success is a label success
    if components["checks"] is None:  # no gold checks: nothing to ground on, the label decides
        assert grounded == label
    else:
        assert grounded == (label_ok and components["checks"] == 1.0 and components["consistency"] == 1.0)


def test_a_right_label_on_a_wrong_check_is_a_grounded_failure(record):
    lines = record["reference"].split("\n")
    i = next(i for i, line in enumerate(lines) if " | " in line)  # the first check line
    head, verdict = lines[i].rsplit(" ", 1)
    lines[i] = f"{head} {'mismatch' if verdict == 'match' else 'match'}"
    wrong = "\n".join(lines)
    assert parse_reasoning(wrong).label == parse_reasoning(record["reference"]).label == record["label"]
    for text, grounded in ((record["reference"], True), (wrong, False)):
        components = score_components(text, record["label"], record["rule"], record["annotations"])
        assert TRIGGERS["label"](True, components)
        assert TRIGGERS["grounded"](True, components) is grounded


def test_zero_std_groups_detects_ties_only():
    assert zero_std_groups([0.5, 0.5, 0.5, 0.5, 0.1, 0.9, 0.5, 0.5], 4) == [True, False]


@given(
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=16),
    st.integers(0, 20),
    st.integers(0, 10),
)
def test_select_replaced_takes_the_lowest(rewards, k, seed):
    chosen = select_replaced(rewards, k, random.Random(seed))
    assert len(chosen) == min(k, len(rewards))
    assert chosen == sorted(set(chosen))
    rest = [r for i, r in enumerate(rewards) if i not in chosen]
    if chosen and rest:
        assert max(rewards[i] for i in chosen) <= min(rest)


@pytest.fixture(scope="module")
def record(shoprules_dir):
    rows = [json.loads(line) for line in (shoprules_dir / "hard.jsonl").read_text().splitlines()]
    return next(r for r in rows if r["rule"] == "R03")


def test_prefix_guidance_levels_are_growing_gold_prefixes(record):
    book = default_rulebook()
    notes = record["annotations"]
    texts = [
        build_guidance(notes, record["rule"], record["label"], lvl, "prefix", book).prefix
        for lvl in (1, 2, 3)
    ]
    assert all(record["reference"].startswith(t) for t in texts)
    assert len(texts[0]) <= len(texts[1]) < len(texts[2])
    # level 1 stops right after the deciding check's line (R03: the negation line)
    assert texts[0].rstrip("\n").splitlines()[-1].startswith("negation:")
    assert texts[0].rstrip("\n").endswith("mismatch")
    assert texts[1].rstrip().endswith("</checks>") and "<rule>" not in texts[1]
    assert "<rule>" in texts[2] and "<answer>" not in texts[2]
    # Completing the level-3 prefix with the gold answer gives the gold reasoning.
    completed = texts[2] + f"<answer> {record['label']} </answer>"
    assert parse_reasoning(completed).ok and parse_reasoning(completed).label == record["label"]


def test_level_one_reaches_the_deciding_line_for_every_rule(shoprules):
    book = default_rulebook()
    for record in shoprules["b_eval"]:
        checks = record["annotations"]["checks"]
        rule = book.get(record["rule"])
        n = deciding_lines(checks, rule)
        lines = [s for s in SLOTS if s in checks][:n]
        assert 1 <= n <= len(checks)
        if rule.when:  # the last line of the level-1 prefix holds a check the rule reads
            assert lines[-1] in rule.when and checks[lines[-1]] in rule.when[lines[-1]]
        else:
            assert n == len(checks)


def test_hint_guidance_names_rule_then_checks_then_prefix(record):
    book = default_rulebook()
    notes = record["annotations"]
    g1, g2, g3 = (
        build_guidance(notes, record["rule"], record["label"], lvl, "hint", book) for lvl in (1, 2, 3)
    )
    assert record["rule"] in g1.hint and "negation_violated" in g1.hint and not g1.has_prefix
    assert "checks:" in g2.hint and "negation: mismatch" in g2.hint and not g2.has_prefix
    assert g3.has_prefix and g3.prefix.startswith("<checks>") and "<rule>" not in g3.prefix


def test_guidance_needs_ground_truth():
    book = default_rulebook()
    assert build_guidance({}, None, 4, 1, "prefix", book) is None
    assert build_guidance({}, None, None, 1, "hint", book) is None  # no rule and no grade: nothing to hint
    partial = {
        "query": {"brand": "nike"},
        "product": {"brand": "puma"},
        "checks": {"brand": "mismatch"},
        "partial": True,
    }
    assert (
        build_guidance(partial, None, 2, 3, "prefix", book) is None
    )  # no `type` line: no gold prefix exists
    with pytest.raises(ValueError):
        build_guidance({}, "R01", 1, 1, "bogus", book)


def test_partial_annotations_still_guide():
    # real data: no deciding rule, some slots. Hint mode hints the gold grade (+ the annotated checks);
    # prefix mode forces the annotated lines when they start with `type`.
    book = default_rulebook()
    partial = {
        "query": {"type": "shoes", "brand": "nike"},
        "product": {"type": "shoes", "brand": "puma"},
        "checks": {"type": "match", "brand": "mismatch"},
        "partial": True,
    }
    g1 = build_guidance(partial, None, 2, 1, "hint", book)
    assert g1.hint == "the grade is 2" and not g1.has_prefix
    g2 = build_guidance(partial, None, 2, 2, "hint", book)
    assert g2.hint.startswith("the grade is 2 ; checks: ") and "brand: mismatch" in g2.hint
    prefix = build_guidance(partial, None, 2, 1, "prefix", book).prefix
    assert prefix == "<checks>\ntype: shoes | shoes match\nbrand: nike | puma mismatch\n"
    completed = prefix + "</checks>\n<rule> R04 brand_mismatch </rule>\n<answer> 2 </answer>"
    assert parse_reasoning(completed).ok


def test_every_esci_record_can_be_guided_in_hint_mode(esci_sample):
    from agrl.data.esci import load_esci

    book = default_rulebook()
    records = load_esci(esci_sample)
    for record in records:
        g = build_guidance(record["annotations"], record.get("rule"), record["label"], 2, "hint", book)
        assert g is not None and g.hint.startswith(f"the grade is {record['label']}")
    # prefix mode needs a `type` line, which today's ESCI annotator never writes: counted, not silent
    guided = [build_guidance(r["annotations"], None, r["label"], 1, "prefix", book) for r in records]
    assert all(g is None for g in guided) == all(
        "type" not in (r["annotations"].get("checks") or {}) for r in records
    )


def test_level_rises_on_every_stagnant_visit_and_falls_on_recovery():
    s = ExampleState(level=2)  # the configured starting level
    s = update_example(s, 0.0)  # every stagnant visit raises the level for the next one
    assert (s.level, s.stagnant_streak) == (3, 1)
    s = update_example(s, 0.0)
    assert s.level == 3  # capped
    s = update_example(s, 0.25)  # not stagnant, not recovered: level holds
    assert (s.level, s.stagnant_streak) == (3, 0)
    s = update_example(s, 0.75)
    assert s.level == 2 and s.visits == 4
    assert update_example(ExampleState(level=1), 0.0).level == 2


def test_queue_priority_retry_budget_and_solving():
    state = ReplayState()
    state.examples["a"] = ExampleState(level=1)
    state.examples["b"] = ExampleState(level=3)
    assert enqueue(state, "a", {"id": "a"}, step=1, retry_budget=2)
    assert enqueue(state, "b", {"id": "b"}, step=2, retry_budget=2)
    assert [i for i, _ in take_from_queue(state, 1)] == ["b"]  # highest level first
    assert enqueue(state, "b", {"id": "b"}, step=3, retry_budget=2)
    assert [i for i, _ in take_from_queue(state, 5)] == ["b", "a"]  # level before waiting time
    assert state.examples["b"].retries == 2
    assert not enqueue(state, "b", {"id": "b"}, step=4, retry_budget=2)  # budget spent
    assert enqueue(state, "a", {"id": "a"}, step=4, retry_budget=2)
    dequeue_solved(state, "a")
    assert state.queue == {}


def test_state_json_round_trip():
    state = ReplayState()
    state.examples["x"] = ExampleState(level=2, visits=3, stagnant_streak=1, retries=1)
    enqueue(state, "x", {"id": "x", "prompt": [{"role": "user", "content": "q"}]}, step=7, retry_budget=3)
    rng = random.Random(3)
    rng.random()
    state.rng_state = [rng.getstate()[0], list(rng.getstate()[1]), rng.getstate()[2]]
    again = ReplayState.from_json(json.loads(json.dumps(state.to_json())))
    assert again.to_json() == state.to_json()
    assert again.examples["x"].level == 2 and list(again.queue) == ["x"]


def test_a_new_guidance_mode_is_one_registered_function(record, monkeypatch):
    from agrl.replay import GUIDANCE_MODES, Guidance, register_guidance_mode
    from agrl.train.config import AGRLConfig, load_config

    monkeypatch.setattr("agrl.replay.GUIDANCE_MODES", GUIDANCE_MODES.copy())
    monkeypatch.setattr("agrl.train.config.GUIDANCE_MODES", __import__("agrl.replay").replay.GUIDANCE_MODES)

    @register_guidance_mode("grade_hint")
    def grade_hint(notes, rule, label, level, complete):
        return Guidance(level, f"the grade is {label}", "")

    g = build_guidance(
        record["annotations"], record["rule"], record["label"], 5, "grade_hint", default_rulebook()
    )
    assert g == Guidance(3, f"the grade is {record['label']}", "")  # levels are clamped for every mode
    assert (
        load_config(AGRLConfig, None, ["--output_dir", "o", "--guidance_mode", "grade_hint"]).guidance_mode
        == "grade_hint"
    )
    with pytest.raises(ValueError, match="already registered"):
        register_guidance_mode("grade_hint")(grade_hint)
    with pytest.raises(ValueError, match="known: .*grade_hint.*hint.*prefix"):
        build_guidance({}, None, 1, 1, "bogus", default_rulebook())
