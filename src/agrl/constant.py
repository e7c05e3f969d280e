"""What a constant answer scores: the floor printed beside every result.

The strongest constant judge states the *gold* checks (so every check-level metric sees a perfect
reader) but always names the head rule of one grade g and answers g. A metric a judge reports is
only worth its distance from the best such constant on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agrl.reasoning import render_reasoning
from agrl.rules import Rule, Rulebook


def constant_rules(rulebook: Rulebook, head_rules: Sequence[str]) -> dict[int, Rule]:
    """grade -> the first head rule of the rulebook that decides that grade."""
    return {
        g: next(r for r in rulebook.rules if r.grade == g and r.id in head_rules)
        for g in sorted({r.grade for r in rulebook.rules if r.id in head_rules})
    }


def constant_completions(
    records: Sequence[Mapping], rulebook: Rulebook, head_rules: Sequence[str]
) -> dict[int, dict[str, str]]:
    """grade -> {record id: a well-formed reasoning that states the record's gold checks, names
    that grade's head rule and answers the grade}, for every grade a head rule decides."""
    return {
        grade: {
            str(r["id"]): render_reasoning(
                r["annotations"]["query"],
                r["annotations"]["product"],
                r["annotations"]["checks"],
                rule.tag,
                grade,
            )
            for r in records
        }
        for grade, rule in constant_rules(rulebook, head_rules).items()
    }
