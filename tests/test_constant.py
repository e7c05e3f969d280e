"""agrl.constant: the best constant answer, the floor beside every result."""

from __future__ import annotations

from collections import Counter

import pytest

from agrl.constant import constant_completions, constant_rules
from agrl.data.shoprules import HEAD_RULES
from agrl.evaluate import evaluate
from agrl.rules import default_rulebook


def test_each_grade_answers_that_grade_on_the_gold_checks(shoprules):
    book = default_rulebook()
    records = shoprules["dev"]
    by_grade = constant_completions(records, book, HEAD_RULES)
    assert sorted(by_grade) == [1, 2, 3, 4]
    assert all(constant_rules(book, HEAD_RULES)[g].id in HEAD_RULES for g in by_grade)
    gold = Counter(int(r["label"]) for r in records)
    for grade, completions in by_grade.items():
        m = evaluate(records, completions, book, head_rules=HEAD_RULES)
        assert m.get("format_valid") == 1.0
        # a constant judge is right exactly where the gold grade is its grade
        assert m.get("accuracy") == pytest.approx(gold[grade] / len(records))
        assert m.get("tail_solved") in (0.0, None)  # it never names a tail rule
