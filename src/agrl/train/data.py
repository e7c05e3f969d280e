"""Records -> TRL datasets (conversational prompt/completion), shared by every training stage."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import torch
from datasets import Dataset
from torch.utils.data import Sampler

from agrl.data.io import read_records
from agrl.prompts import build_messages
from agrl.reasoning import render_reasoning
from agrl.rewards import class_balance_weights
from agrl.rules import Rulebook, default_rulebook, load_rulebook
from agrl.schema import SLOTS


def load_train_records(path: str, max_samples: int | None = None) -> list[dict]:
    records = read_records(path)
    return records[:max_samples] if max_samples else records


def prompt_messages(record: Mapping, args, rulebook: Rulebook | None = None) -> list[dict[str, str]]:
    """The record's prompt; the rulebook summary is included when `args.rulebook_in_prompt`."""
    if args.rulebook_in_prompt and rulebook is None:
        rulebook = load_rulebook(args.rulebook)
    return build_messages(
        record, rulebook=rulebook if args.rulebook_in_prompt else None, system=args.system_prompt
    )


def reference_text(record: Mapping, fmt: str = "think_first", rulebook: Rulebook | None = None) -> str:
    """The gold reasoning in `fmt`, rendered from the annotations (the stored `reference` is think-first).

    Real data has a human label and partial annotations (or none): the reference then holds the
    annotated check lines (a `type: - | - unknown` line where the type is not annotated: the format
    requires one), the rule the rulebook reads from those checks, and the human label.
    """
    if fmt == "think_first" and record.get("reference"):
        return record["reference"]
    rulebook = rulebook or default_rulebook()
    notes = record.get("annotations") or {}
    complete = (
        notes.get("query") and notes.get("product") and notes.get("checks") and not notes.get("partial")
    )
    if not record.get("rule") or not complete:
        if record.get("rule"):
            raise ValueError(f"record {record.get('id')!r} names a rule but has no complete annotations")
        return _partial_reference(record, notes, fmt, rulebook)
    rule = rulebook.get(record["rule"])
    if rule is None:
        raise ValueError(f"record {record.get('id')!r}: rule {record['rule']!r} is not in the rulebook")
    return render_reasoning(
        notes["query"], notes["product"], notes["checks"], rule.tag, int(record["label"]), fmt
    )


def _partial_reference(record: Mapping, notes: Mapping, fmt: str, rulebook: Rulebook) -> str:
    query, product = dict(notes.get("query") or {}), dict(notes.get("product") or {})
    checks = {slot: verdict for slot, verdict in (notes.get("checks") or {}).items() if slot in SLOTS}
    checks.setdefault("type", "unknown")
    return render_reasoning(query, product, checks, rulebook.decide(checks).tag, int(record["label"]), fmt)


def sft_dataset(records: Sequence[Mapping], args) -> Dataset:
    rulebook = load_rulebook(args.rulebook)
    return Dataset.from_list(
        [
            {
                "prompt": prompt_messages(r, args, rulebook),
                "completion": [
                    {"role": "assistant", "content": reference_text(r, args.reasoning_format, rulebook)}
                ],
            }
            for r in records
        ]
    )


class ClassBalancedSampler(Sampler[int]):
    """Indices drawn with replacement, a record of class c with weight (n_rarest / n_c) ** `power`
    (`agrl.rewards.class_balance_weights`, the label reward's scale), `len(labels)` draws per epoch:
    an SFT warm start that sees rare grades as often as the common one at the same compute, so it
    does not learn to answer the majority grade. Deterministic per (seed, epoch), so a resumed run
    draws what the uninterrupted one drew."""

    def __init__(self, labels: Sequence[int], power: float, seed: int):
        scale = class_balance_weights(labels, power)
        self.weights = torch.tensor([scale[int(y)] for y in labels], dtype=torch.double)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # accelerate's data loader calls it at every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        draws = torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator)
        return iter(draws.tolist())


def rl_dataset(records: Sequence[Mapping], args) -> Dataset:
    """Prompts plus the columns reward functions and replay read (annotations as JSON: keys vary per row).
    `label_weight` is the class-balanced label-reward scale (`args.label_balance`; 1.0 when off)."""
    rulebook = load_rulebook(args.rulebook) if args.rulebook_in_prompt else None
    power = getattr(args, "label_balance", 0.0)
    scale = class_balance_weights([int(r["label"]) for r in records], power) if power else {}
    return Dataset.from_list(
        [
            {
                "prompt": prompt_messages(r, args, rulebook),
                "id": str(r["id"]),
                "label": int(r["label"]),
                "label_weight": scale.get(int(r["label"]), 1.0),
                "rule": r.get("rule") or "",
                "annotations": json.dumps(r.get("annotations") or {}, sort_keys=True),
                "query": r["query"],
                "product": json.dumps(r["product"], sort_keys=True),
            }
            for r in records
        ]
    )
