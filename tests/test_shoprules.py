"""ShopRules: determinism, labels from the rulebook, split properties."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from agrl.data.catalog import HELD_BRANDS, HELD_NEGATION, HELD_PRICE_PHRASES, HELD_UNIT_PAIRS
from agrl.data.overlap import overlap_label
from agrl.data.shoprules import (
    HEAD_RULES,
    SCALES,
    SCENARIOS,
    SPLITS,
    TAIL,
    generate,
    generate_split,
    luck_proof_tail,
)
from agrl.experiments.budgets import ComparisonBudget
from agrl.experiments.shoprules import comparison_arms, is_contrast, luck_proof_rules, rl_prompts
from agrl.reasoning import parse_reasoning
from agrl.rules import default_rulebook

FILES = [f"{split}.jsonl" for split in SPLITS] + ["stats.json"]
TAIL_RULES = ("R01", "R03", "R09", "R10", "R11")


def test_every_split_file_is_written(shoprules_dir, shoprules):
    assert sorted(p.name for p in shoprules_dir.iterdir()) == sorted(FILES)
    for split in SPLITS:
        assert len(shoprules[split]) == SCALES["tiny"][split]
    stats = json.loads((shoprules_dir / "stats.json").read_text())
    assert stats["seed"] == 0 and stats["scale"] == "tiny"
    for split in SPLITS:
        assert stats["splits"][split]["n"] == len(shoprules[split])
        assert stats["splits"][split]["rule"] == dict(
            sorted(Counter(r["rule"] for r in shoprules[split]).items())
        )


def test_same_seed_same_bytes(shoprules_dir, tmp_path):
    generate(tmp_path, seed=0, scale="tiny", progress=False)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (shoprules_dir / name).read_bytes(), name


def test_different_seed_different_data(shoprules_dir, tmp_path):
    generate(tmp_path, seed=1, scale="tiny", progress=False)
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() != (
            shoprules_dir / f"{split}.jsonl"
        ).read_bytes(), split
    ours = {(r["query"], r["product"]["title"]) for r in map(json.loads, (tmp_path / "b_eval.jsonl").open())}
    theirs = {
        (r["query"], r["product"]["title"]) for r in map(json.loads, (shoprules_dir / "b_eval.jsonl").open())
    }
    assert len(ours & theirs) < len(ours) / 2


def test_generate_split_is_deterministic_on_its_own():
    first = list(generate_split("rl", 50, seed=3))
    second = list(generate_split("rl", 50, seed=3))
    assert first == second
    assert first != list(generate_split("rl", 50, seed=4))


def test_scenarios_cover_every_shipped_rule_once_in_rule_order(shoprules):
    # Registration order is part of the output (split weights iterate it), so it is pinned too.
    assert [s.rule for s in SCENARIOS.values()] == list(default_rulebook().ids)
    records = [r for split in shoprules.values() for r in split]
    assert all(r["rule"] == SCENARIOS[r["scenario"]].rule for r in records)
    assert {r["scenario"] for r in records} == set(SCENARIOS)


def test_labels_and_rules_are_the_rulebook_decision(shoprules):
    rulebook = default_rulebook()
    for split, records in shoprules.items():
        ids = [r["id"] for r in records]
        assert len(set(ids)) == len(ids), split
        for record in records:
            rule = rulebook.decide(record["annotations"]["checks"])
            assert record["label"] == rule.grade, (split, record["id"])
            assert record["rule"] == rule.id, (split, record["id"])


def test_reference_parses_and_agrees_with_the_record(shoprules):
    for split, records in shoprules.items():
        for record in records:
            parsed = parse_reasoning(record["reference"])
            assert parsed.ok, (split, record["id"], parsed)
            assert parsed.label == record["label"]
            assert parsed.rule_id == record["rule"]
            assert parsed.checks == record["annotations"]["checks"]
            assert parsed.query == record["annotations"]["query"]
            assert parsed.product == record["annotations"]["product"]


def overlap_accuracy(records: list[dict]) -> float:
    return sum(overlap_label(r["query"], r["product"]["title"]) == r["label"] for r in records) / len(records)


def test_hard_split_defeats_word_overlap(shoprules):
    hard = overlap_accuracy(shoprules["hard"])
    natural = overlap_accuracy(shoprules["w_eval"])
    assert hard <= 0.40
    assert natural >= 0.45
    assert natural - hard >= 0.2


def test_hard_split_holds_tail_rules_only(shoprules):
    rules = Counter(r["rule"] for r in shoprules["hard"])
    assert set(rules) == set(TAIL_RULES)
    assert {r["scenario"] for r in shoprules["hard"]} == set(TAIL)
    assert min(rules.values()) >= len(shoprules["hard"]) / len(TAIL_RULES) * 0.5


@pytest.mark.parametrize("split", ["b_eval", "w_eval", "rl"])
def test_every_rule_appears(shoprules, split):
    assert {r["rule"] for r in shoprules[split]} == set(default_rulebook().ids)


def test_b_eval_is_balanced_over_labels(shoprules):
    labels = Counter(r["label"] for r in shoprules["b_eval"])
    n = len(shoprules["b_eval"])
    assert set(labels) == {1, 2, 3, 4}
    assert all(0.15 * n <= c <= 0.35 * n for c in labels.values()), labels


def test_tail_rules_are_rare_in_sft(shoprules):
    sft = shoprules["sft"]
    rules = Counter(r["rule"] for r in sft)
    # 0.05 % per tail scenario: about 4 of 8,000 tiny records each, so one of them may draw none
    assert all(rules[rule] <= 0.01 * len(sft) for rule in TAIL_RULES), rules
    assert sum(rules[rule] > 0 for rule in TAIL_RULES) >= len(TAIL_RULES) - 1, rules
    # ... and common in rl, which is rich in hard cases
    rl = Counter(r["rule"] for r in shoprules["rl"])
    assert all(rl[rule] >= 0.05 * len(shoprules["rl"]) for rule in TAIL_RULES)


def test_splits_are_disjoint_on_query_and_title(shoprules):
    owner: dict[tuple[str, str], str] = {}
    for split, records in shoprules.items():
        for record in records:
            key = (record["query"].lower(), record["product"]["title"].lower())
            assert key not in owner, (split, owner.get(key), key)
            owner[key] = split


def test_default_scale_has_at_least_50k_records():
    # generate writes exactly the scale's sizes (test_six_files_are_written, on tiny); its speed at
    # the default scale is a benchmark: bench/shoprules_speed.py
    assert sum(SCALES["default"][s] for s in SPLITS) >= 50_000


def test_tail_split_is_luck_proof_and_covers_the_qualifying_rules(shoprules):
    rulebook = default_rulebook()
    tail = shoprules["tail"]
    assert luck_proof_tail(rulebook) == ("negation", "price", "unit")
    rules = Counter(r["rule"] for r in tail)
    assert set(rules) == {"R03", "R09", "R10"}
    assert min(rules.values()) >= len(tail) / 3 - 1
    # a model blind to the deciding feature gets every one of them wrong
    assert all(rulebook.blind_decision(r["annotations"]["checks"]).grade != r["label"] for r in tail)


def test_dev_split_is_rl_like_and_separate(shoprules):
    dev = Counter(r["scenario"] for r in shoprules["dev"])
    assert set(dev) == set(SCENARIOS)
    assert sum(dev[s] for s in TAIL) >= 0.4 * len(shoprules["dev"])


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_rl_prompts_take_the_asked_share_of_tail_rules(shoprules_dir, tmp_path, share):
    shutil.copy(shoprules_dir / "rl.jsonl", tmp_path / "rl.jsonl")
    budget = ComparisonBudget(rl_steps=10, prompts_per_step=4, rl_tail_share=share)
    records = [json.loads(line) for line in rl_prompts(tmp_path, 3, budget).read_text().splitlines()]
    tail = sum(r["rule"] not in HEAD_RULES for r in records)
    assert len(records) == 40 and len({r["id"] for r in records}) == 40
    assert tail == round(40 * share)
    # the same seed gives the same prompts in the same order; the default keeps rl's own mix
    assert rl_prompts(tmp_path, 3, budget).read_text() == rl_prompts(tmp_path, 3, budget).read_text()
    with pytest.raises(ValueError, match="rl_tail_share"):
        rl_prompts(tmp_path, 3, ComparisonBudget(rl_tail_share=1.5))


def test_natural_head_rehearsal_follows_the_natural_mix(shoprules_dir, tmp_path):
    shutil.copy(shoprules_dir / "rl.jsonl", tmp_path / "rl.jsonl")
    budget = ComparisonBudget(rl_steps=20, prompts_per_step=4, rl_tail_share=0.5, rl_head_mix="natural")
    records = [json.loads(line) for line in rl_prompts(tmp_path, 0, budget).read_text().splitlines()]
    head = Counter(r["rule"] for r in records if r["rule"] in HEAD_RULES)
    assert sum(head.values()) == 40 and len(records) == 80
    # exact matches (R12) are the natural mix's largest head scenario: 32 of its 79 head weight
    assert head["R12"] == round(40 * 32 / 79) and head.most_common(1)[0][0] == "R12"
    with pytest.raises(ValueError, match="rl_head_mix"):
        rl_prompts(tmp_path, 0, ComparisonBudget(rl_tail_share=0.5, rl_head_mix="uniform"))


def test_contrast_rehearsal_is_half_near_misses_of_the_luck_proof_tail_rules(shoprules_dir, tmp_path):
    shutil.copy(shoprules_dir / "rl.jsonl", tmp_path / "rl.jsonl")
    rules = luck_proof_rules()
    assert [r.id for r in rules] == ["R03", "R09", "R10"]
    satisfied_cap = {"annotations": {"checks": {"type": "match", "price": "match"}}}
    other_size = {"annotations": {"checks": {"type": "match", "size": "mismatch"}}}  # R10's blind value
    plain = {"annotations": {"checks": {"type": "match", "brand": "match", "price": "unknown"}}}
    assert (
        is_contrast(satisfied_cap, rules) and is_contrast(other_size, rules) and not is_contrast(plain, rules)
    )
    budget = ComparisonBudget(rl_steps=20, prompts_per_step=4, rl_tail_share=0.5, rl_head_mix="contrast")
    records = [json.loads(line) for line in rl_prompts(tmp_path, 0, budget).read_text().splitlines()]
    head = [r for r in records if r["rule"] in HEAD_RULES]
    assert len(records) == 80 and len(head) == 40 and len({r["id"] for r in records}) == 80
    assert sum(is_contrast(r, rules) for r in head) >= 20


def test_rehearsal_reaches_every_rl_arm_and_the_control_gets_the_same_references(shoprules_dir, tmp_path):
    for name in ("rl.jsonl", "sft.jsonl"):
        shutil.copy(shoprules_dir / name, tmp_path / name)
    budget = ComparisonBudget(rl_steps=5, prompts_per_step=4, ptx_coef=0.5, ptx_batch_size=3)
    prompts = rl_prompts(tmp_path, 0, budget)
    arms = comparison_arms(tmp_path / "sft_model", tmp_path, prompts, tmp_path / "work", 0, budget)
    for name in ("grpo", "grpo_pr", "replay_only", "agrl"):
        assert arms[name].fields["ptx_coef"] == 0.5 and arms[name].fields["ptx_batch_size"] == 3
        assert arms[name].fields["ptx_file"] == str(tmp_path / "sft.jsonl")
    control = arms["sft_gold"].fields
    rows = [json.loads(line) for line in Path(control["train_file"]).read_text().splitlines()]
    sft_ids = {json.loads(line)["id"] for line in (tmp_path / "sft.jsonl").read_text().splitlines()}
    assert len(rows) == 20 + 15 and sum(r["id"] in sft_ids for r in rows) == 15
    assert control["per_device_train_batch_size"] == 4 + 3
    # the RL arms' compute: 3.5 x their steps by default (training tokens), the curve as often per run
    assert control["max_steps"] == round(3.5 * 5) and arms["agrl"].fields["max_steps"] == 5
    assert control["eval_every_steps"] == round(20 * 18 / 5)
    # without rehearsal the control trains on the prompts alone
    plain = comparison_arms(
        tmp_path / "sft_model",
        tmp_path,
        prompts,
        tmp_path / "work",
        0,
        ComparisonBudget(rl_steps=5, ptx_coef=0.0),
    )
    assert plain["sft_gold"].fields["train_file"] == str(prompts) and plain["agrl"].fields["ptx_coef"] == 0.0


def _held_surfaces(record: dict) -> set[str]:
    """The held-back surfaces (catalog.HELD_*) a record uses."""
    query, product = record["query"].lower(), record["product"]
    found = {
        f"negation {p}" for p in HELD_NEGATION.values() if re.search(rf"(^|\s){re.escape(p)}($|\s)", query)
    }
    found |= {
        f"price {p}"
        for p in HELD_PRICE_PHRASES
        if re.search(r"(^|\s)" + re.escape(p).replace(re.escape("{v}"), r"[\d.]+"), query)
    }
    found |= {f"brand {b}" for b in HELD_BRANDS if product.get("brand") == b}
    checks = record["annotations"]["checks"]
    if record["rule"] == "R10" and checks.get("size") == "equivalent":
        pair = (
            record["annotations"]["product"]["size"].split()[-1],
            record["annotations"]["query"]["size"].split()[-1],
        )
        if pair in HELD_UNIT_PAIRS:
            found.add(f"units {pair}")
    return found


def test_tail_novel_is_built_from_surfaces_no_other_split_uses(shoprules):
    novel = shoprules["tail_novel"]
    rulebook = default_rulebook()
    assert Counter(r["rule"] for r in novel).keys() == {"R03", "R09", "R10"}
    assert all(rulebook.blind_decision(r["annotations"]["checks"]).grade != r["label"] for r in novel)
    for split, records in shoprules.items():
        used = set().union(*(_held_surfaces(r) for r in records))
        if split == "tail_novel":
            # every tail_novel record decides on a held surface: its negation, price phrasing or unit pair
            kinds = {"R03": "negation", "R09": "price", "R10": "units"}
            assert all(any(u.startswith(kinds[r["rule"]]) for u in _held_surfaces(r)) for r in novel)
            assert any(u.startswith("brand") for u in used)
        else:
            assert not used, (split, sorted(used)[:5])
