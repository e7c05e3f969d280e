"""DPO baseline: pass@N pairs sampled from the SFT model, trained with TRL's DPOTrainer.

For each `rl` prompt, N completions are sampled; chosen = a correct one (right label, well
formed), rejected = an incorrect one. Prompts where all N are right or all are wrong give no pair;
they are counted and skipped.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import cast

from datasets import Dataset
from trl import DPOTrainer

from agrl.data.io import DataError, iter_jsonl
from agrl.models import load_model
from agrl.models.generate import generate_completions
from agrl.rewards import label_correct
from agrl.rules import load_rulebook
from agrl.train.common import ContractCallback, check_contract, peft_config, train_and_save
from agrl.train.config import AgrlDPOConfig
from agrl.train.cpu_speed import compact_logprobs
from agrl.train.data import prompt_messages


def pairs_from_samples(
    records: Sequence[Mapping],
    samples: Sequence[Sequence[str]],
    seed: int = 0,
    fmt: str = "think_first",
) -> tuple[list[dict], dict[str, int]]:
    """chosen/rejected completions per record from its N samples; counts of what was skipped."""
    rng = random.Random(seed)
    pairs: list[dict] = []
    counts = {"prompts": len(records), "pairs": 0, "all_correct": 0, "all_wrong": 0}
    for record, texts in zip(records, samples):
        ok = label_correct(list(texts), [record["label"]] * len(texts), fmt)
        good = [t for t, o in zip(texts, ok) if o]
        bad = [t for t, o in zip(texts, ok) if not o]
        if not bad:
            counts["all_correct"] += 1
            continue
        if not good:
            counts["all_wrong"] += 1
            continue
        pairs.append({"id": str(record["id"]), "chosen": rng.choice(good), "rejected": rng.choice(bad)})
        counts["pairs"] += 1
    return pairs, counts


def build_pairs(
    model,
    tokenizer,
    records: Sequence[Mapping],
    n: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    system_prompt: bool = False,
    seed: int = 0,
    batch_size: int = 32,
) -> tuple[list[dict], dict[str, int]]:
    samples = generate_completions(
        model,
        tokenizer,
        records,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        system_prompt=system_prompt,
        do_sample=True,
        temperature=temperature,
        num_return_sequences=n,
        desc="pass@N sampling",
        seed=seed,
    )
    return pairs_from_samples(records, samples, seed)


def pairs_dataset(pairs: Sequence[Mapping], records_by_id: Mapping[str, Mapping], args) -> Dataset:
    """Conversational prompt/chosen/rejected rows (the prompt rebuilt from the record)."""
    rulebook = load_rulebook(args.rulebook) if args.rulebook_in_prompt else None
    return Dataset.from_list(
        [
            {
                "prompt": prompt_messages(records_by_id[p["id"]], args, rulebook),
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
            }
            for p in pairs
        ]
    )


def read_pairs(path: str) -> list[dict]:
    pairs: list[dict] = []
    for line, row in iter_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row, dict) or key not in row:
                raise DataError(path, line, key, "missing (a DPO pair needs prompt, chosen and rejected)")
        pairs.append(cast(dict, row))
    return pairs


def run_dpo(args: AgrlDPOConfig, pairs: Dataset | None = None) -> str:
    """Train DPO on `pairs` or on the JSONL `train_file` of {prompt, chosen, rejected} rows."""
    check_contract(args)
    compact_logprobs(args.compact_logprobs)
    model, tokenizer = load_model(args.model_name_or_path)
    ref, _ = load_model(args.model_name_or_path) if not args.use_peft else (None, None)
    dataset = pairs if pairs is not None else Dataset.from_list(read_pairs(args.train_file))
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(args),
        callbacks=[ContractCallback(args)],
    )
    return train_and_save(trainer, tokenizer, args)
