"""What a constant answer scores on the reproduce report's metrics and rows (the floor a metric must beat).

The strongest constant predictor per grade g (`agrl.constant`): a well-formed reasoning that states
the *gold* checks but always names the head rule of grade g and answers g (a bare `<answer> g
</answer>` is malformed: every strict metric gives it 0). Prints and writes, per metric, the best
constant and its grade.

    .venv/bin/python scripts/constant_answers.py --data results/reproduce/runs/data --n 500
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agrl.constant import constant_completions, constant_rules
from agrl.data.io import read_records, write_json
from agrl.data.shoprules import HEAD_RULES
from agrl.evaluate import evaluate
from agrl.report import COLUMNS
from agrl.rules import default_rulebook


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("results/reproduce/runs/data"))
    parser.add_argument("--n", type=int, default=500, help="records per split, as in the report (eval_n)")
    parser.add_argument("--out", type=Path, default=Path("results/reproduce/constant_answers.json"))
    args = parser.parse_args()
    book = default_rulebook()
    head_rule = constant_rules(book, HEAD_RULES)
    best: dict = {}
    for split in sorted({s for s, _, _ in COLUMNS}):
        records = read_records(args.data / f"{split}.jsonl")[: args.n]
        for grade, stated in constant_completions(records, book, HEAD_RULES).items():
            rule = head_rule[grade]
            metrics = evaluate(records, stated, book, head_rules=HEAD_RULES)
            for s, metric, title in COLUMNS:
                value = metrics.get(metric) if s == split else None
                if value is not None and value >= best.get(title, {}).get("value", -1.0):
                    best[title] = {"value": value, "grade": grade, "rule": rule.id}
    write_json(args.out, {"n_per_split": args.n, "best_constant": best})
    for title, row in best.items():
        print(f"{title}: {100 * row['value']:.1f} % (always {row['grade']} via {row['rule']})")


if __name__ == "__main__":
    main()
