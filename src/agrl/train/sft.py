"""Stage 1: SFT warm-start on the gold structured reasoning (TRL SFTTrainer, completion-only loss)."""

from __future__ import annotations

import logging

from trl import SFTTrainer

from agrl.data.catalog import catalog_corpus
from agrl.data.io import read_records
from agrl.models import load_model
from agrl.models.tiny import build_model, build_tokenizer
from agrl.prompts import build_messages
from agrl.rules import load_rulebook
from agrl.train.common import check_contract, peft_config, stage_callbacks, train_and_save
from agrl.train.config import AgrlSFTConfig
from agrl.train.cpu_speed import compact_logprobs
from agrl.train.data import ClassBalancedSampler, load_train_records, reference_text, sft_dataset

log = logging.getLogger(__name__)


def build_tiny(args: AgrlSFTConfig, records: list[dict]):
    """A fresh tiny model whose vocabulary covers the catalogue, the rulebook and the training text."""
    rulebook = load_rulebook(args.rulebook)
    corpus = catalog_corpus() + [rulebook.summary()]
    extra = [p for p in (args.tiny_vocab_files or "").split(",") if p]
    vocab_records = list(records) + [r for path in extra for r in read_records(path, require_label=False)]
    for r in vocab_records:
        for message in build_messages(r, rulebook=rulebook, system=True):
            corpus.append(message["content"])
        if r.get("label") is not None and (r.get("annotations") or not r.get("rule")):
            corpus.append(reference_text(r, "think_first", rulebook))
    tokenizer = build_tokenizer(corpus)
    model = build_model(
        tokenizer,
        hidden=args.tiny_hidden,
        layers=args.tiny_layers,
        heads=args.tiny_heads,
        intermediate=args.tiny_intermediate,
        seed=args.seed,
    )
    return model, tokenizer


class AgrlSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer; with `class_balance` > 0 its records are drawn class-balanced
    (`ClassBalancedSampler`) instead of shuffled."""

    def __init__(self, *args, labels: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.labels = labels

    def _get_train_sampler(self, train_dataset=None):
        power = getattr(self.args, "class_balance", 0.0)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not power or self.labels is None:
            return super()._get_train_sampler(train_dataset)
        if len(dataset) != len(self.labels):  # one dataset row per record: no packing
            raise ValueError(
                f"class_balance needs one training row per record ({len(dataset)} rows, {len(self.labels)} records)"
            )
        return ClassBalancedSampler(self.labels, power, self.args.seed)


def run_sft(args: AgrlSFTConfig, extra_callbacks: list | None = None) -> str:
    compact_logprobs(args.compact_logprobs)
    records = load_train_records(args.train_file, args.max_train_samples)
    if args.model_name_or_path == "tiny":
        model, tokenizer = build_tiny(args, records)
    else:
        check_contract(args)
        model, tokenizer = load_model(args.model_name_or_path)
    trainer = AgrlSFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_dataset(records, args),
        processing_class=tokenizer,
        peft_config=peft_config(args),
        callbacks=stage_callbacks(args, tokenizer) + list(extra_callbacks or []),
        labels=[int(r["label"]) for r in records] if args.class_balance else None,
    )
    return train_and_save(trainer, tokenizer, args)
