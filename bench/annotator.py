"""How well the ESCI slot annotator agrees with hand-checked gold facts.

Reads ``tests/data/esci_gold.jsonl`` (one JSON object per line: id, query, title, brand, color,
label, role "dev"/"dev2"/"test"/"dev60", gold = {"query": {slot: value}, "product": {slot: value}, "checks":
{slot: verdict}}), runs :func:`agrl.data.annotate.annotate` on each line (query brands and compound types read off all
lines of the same query) and prints, per role and slot:

- query precision: the annotator's query value equals gold's, among lines where the annotator states it
- query recall: lines where the annotator states gold's query value, among lines where gold has one
- check precision: the annotator's check equals gold's, among the checks the annotator emits
- check recall: gold checks the annotator reproduces, among all gold checks

`type` values are compared singular and lower case, the rest exactly. Tune on the "dev" and "dev2"
lines only (`--show-errors` prints their disagreements, `--role test` those of the held-out lines).
"dev2" is 15 other `esci-us-dev60` queries (3 records each, drawn at random with seed 2026 from the
40 queries outside the held-out role and written from the shown text before the annotator was run on
them), added once "dev" was fitted. Two roles are held out: "test" (other queries of the 30-query sample) and "dev60" (20 queries of
`esci-us-dev60`, 3 records each, drawn at random and written from the shown text before the
annotator was run on them).

Each query's brands and compound types are read off all its products in the ESCI folders it comes
from (as `agrl data esci` does), or off its fixture lines with `--catalogue` and no folder.

    python bench/annotator.py [--gold tests/data/esci_gold.jsonl] [--show-errors] [--role dev] [--catalogue DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

from agrl.data.annotate import annotate, query_context, singular_phrase
from agrl.data.esci import EXAMPLES_FILE
from agrl.data.io import write_json
from agrl.experiments.provenance import provenance
from agrl.schema import SLOTS

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests/data/esci_gold.jsonl"
# The folders the fixture's records were drawn from: each query's products there are its context.
CATALOGUE = [ROOT.parent / "shared/data/esci-us-sample", ROOT.parent / "shared/data/esci-us-dev60"]
ROLES = ("dev", "dev2", "test", "dev60")
PRECISION_TARGET, TYPE_RECALL_TARGET = 0.95, 0.80


def read_gold(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _product(line: dict) -> dict:
    return {k: line[k] for k in ("title", "brand", "color") if isinstance(line.get(k), str) and line[k]}


def catalogue_products(folders: list[Path]) -> dict[str, list[dict]]:
    """query -> every product the ESCI folders show for it (what `agrl data esci` reads a query's
    brands and compound types off); {} for no folders."""
    from agrl.data.esci import load_esci

    groups: dict[str, list[dict]] = defaultdict(list)
    for folder in folders:
        for record in load_esci(folder, annotate=False):
            groups[record["query"]].append(record["product"])
    return dict(groups)


def annotate_all(lines: list[dict], catalogue: dict[str, list[dict]] | None = None) -> list[dict]:
    """Each line's annotation, with the brands and compound types the query names read off its
    products in `catalogue` (as the pipeline does) or, for a query not there, off its fixture lines."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        groups[line["query"]].append(_product(line))
    for query, products in (catalogue or {}).items():
        if query in groups:
            groups[query] = products
    context = {query: query_context(query, products) for query, products in groups.items()}
    return [annotate(line["query"], _product(line), *context[line["query"]]) for line in lines]


def _same(slot: str, ours: str | None, gold: str | None) -> bool:
    if slot == "type" and ours and gold:
        return singular_phrase(ours) == singular_phrase(gold)
    return ours == gold


class Tally:
    """Counts for one slot: query side and checks."""

    def __init__(self) -> None:
        self.q_stated = self.q_right = self.q_gold = self.q_found = 0
        self.c_stated = self.c_right = self.c_gold = self.c_found = 0

    def add(self, slot: str, ours: dict, gold: dict) -> list[str]:
        """Count one line; the disagreements, as text."""
        errors = []
        oq, gq = ours["query"].get(slot), gold["query"].get(slot)
        self.q_stated += oq is not None
        self.q_gold += gq is not None
        if oq is not None:
            self.q_right += _same(slot, oq, gq)
        if gq is not None:
            self.q_found += _same(slot, oq, gq)
        if not _same(slot, oq, gq):
            errors.append(f"query {slot}: ours {oq!r}, gold {gq!r}")
        oc, gc = ours["checks"].get(slot), gold["checks"].get(slot)
        self.c_stated += oc is not None
        self.c_gold += gc is not None
        self.c_right += oc is not None and oc == gc
        self.c_found += gc is not None and oc == gc
        if oc != gc:
            errors.append(
                f"check {slot}: ours {oc!r} ({ours['product'].get(slot)!r}), gold {gc!r} "
                f"({gold['product'].get(slot)!r})"
            )
        return errors

    def merge(self, other: Tally) -> None:
        for key, value in vars(other).items():
            setattr(self, key, getattr(self, key) + value)


def _ratio(right: int, total: int) -> str:
    return f"{right / total:6.1%} ({right:>2}/{total:<2})" if total else "     - (0/0)  "


def report(lines: list[dict], role: str, show_errors: bool, catalogue: dict | None = None) -> dict:
    """Print one role's table; its counts per slot and whether the targets are met."""
    picked = [(line, out) for line, out in zip(lines, annotate_all(lines, catalogue)) if line["role"] == role]
    tallies = {slot: Tally() for slot in SLOTS}
    for line, out in picked:
        errors = [e for slot in SLOTS for e in tallies[slot].add(slot, out, line["gold"])]
        if show_errors and errors:
            print(f"  [{line['id']}] {line['query']!r} | {line['title'][:90]!r}")
            for error in errors:
                print(f"      {error}")
    print(f"role {role}: {len(picked)} lines")
    print(
        f"  {'slot':<9} {'query precision':<16} {'query recall':<16} {'check precision':<16} {'check recall':<16}"
    )
    total = Tally()
    for slot, t in tallies.items():
        if t.q_stated or t.q_gold or t.c_stated or t.c_gold:
            total.merge(t)
            print(
                f"  {slot:<9} {_ratio(t.q_right, t.q_stated):<16} {_ratio(t.q_found, t.q_gold):<16} "
                f"{_ratio(t.c_right, t.c_stated):<16} {_ratio(t.c_found, t.c_gold):<16}"
            )
    print(
        f"  {'overall':<9} {_ratio(total.q_right, total.q_stated):<16} {_ratio(total.q_found, total.q_gold):<16} "
        f"{_ratio(total.c_right, total.c_stated):<16} {_ratio(total.c_found, total.c_gold):<16}"
    )
    precise = all(t.c_right >= PRECISION_TARGET * t.c_stated for t in tallies.values())
    type_tally = tallies["type"]
    recalled = type_tally.c_gold > 0 and type_tally.c_found >= TYPE_RECALL_TARGET * type_tally.c_gold
    met = {True: "met", False: "missed"}
    print(
        f"targets: precision >= {PRECISION_TARGET:.0%} on every slot (checks): {met[precise]}; "
        f"type check recall >= {TYPE_RECALL_TARGET:.0%}: {met[recalled]}"
    )
    counts = {
        slot: vars(t) for slot, t in tallies.items() if t.q_stated or t.q_gold or t.c_stated or t.c_gold
    }
    return {
        "lines": len(picked),
        "slots": counts,
        "precision_target_met": precise,
        "type_recall_target_met": recalled,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--role", choices=ROLES, action="append", help="roles to report (default: all)")
    parser.add_argument("--show-errors", action="store_true", help="print each line's disagreements")
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/annotator.json")
    parser.add_argument("--catalogue", type=Path, nargs="*", default=None,
                        help="ESCI folders whose products give each query its context (default: the shared "
                             "esci-us-sample and esci-us-dev60 where mounted; none given: the fixture lines)")  # fmt: skip
    args = parser.parse_args(argv)
    lines = read_gold(args.gold)
    folders = CATALOGUE if args.catalogue is None else args.catalogue
    folders = [f for f in folders if (f / EXAMPLES_FILE).is_file()]
    catalogue = catalogue_products(folders)
    print(f"query context: {', '.join(os.path.relpath(f, ROOT) for f in folders) or 'the fixture lines'}\n")
    roles = {}
    for index, role in enumerate(args.role or ROLES):
        if index:
            print()
        roles[role] = report(lines, role, args.show_errors, catalogue)
    write_json(args.out, {"gold": os.path.relpath(args.gold, ROOT), "roles": roles,
                          "catalogue": [os.path.relpath(f, ROOT) for f in folders],
                          "provenance": provenance()})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
