"""Stage 1: SFT warm-start on the gold structured reasoning (TRL SFTTrainer, completion-only loss)."""

from __future__ import annotations

import logging
from pathlib import Path

from peft import LoraConfig
from trl import SFTTrainer

from agrl.contract import CONTRACT_FILE, contract_from_args, load_contract, save_contract
from agrl.data.catalog import catalog_corpus
from agrl.data.io import read_records
from agrl.models import load_model
from agrl.models.tiny import build_model, build_tokenizer
from agrl.prompts import build_messages
from agrl.rules import load_rulebook
from agrl.train.callbacks import AccuracyCallback
from agrl.train.config import AgrlArguments, AgrlSFTConfig
from agrl.train.data import load_train_records, reference_text, sft_dataset

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
        if r.get("annotations") and r.get("rule"):
            corpus.append(reference_text(r, "think_first", rulebook))
    tokenizer = build_tokenizer(corpus)
    model = build_model(tokenizer, hidden=args.tiny_hidden, layers=args.tiny_layers, heads=args.tiny_heads,
                        intermediate=args.tiny_intermediate, seed=args.seed)
    return model, tokenizer


def check_contract(args: AgrlArguments) -> None:
    """A stage that starts from an agrl model folder must prompt it as it was trained."""
    path = Path(args.model_name_or_path)
    if (path / CONTRACT_FILE).is_file():
        load_contract(path).check(str(path), reasoning_format=args.reasoning_format, system_prompt=args.system_prompt,
                                  rulebook_in_prompt=args.rulebook_in_prompt)


def peft_config(args: AgrlArguments) -> LoraConfig | None:
    if not args.use_peft:
        return None
    targets = args.lora_target_modules
    return LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, task_type="CAUSAL_LM",
                      target_modules=targets if targets == "all-linear" else targets.split(","))


def eval_callback(args: AgrlArguments, tokenizer) -> list[AccuracyCallback]:
    if not (args.eval_files and args.eval_every_steps):
        return []
    splits = {}
    for item in args.eval_files.split(","):
        name, _, path = item.partition("=")
        splits[name] = read_records(path)[: args.eval_max_samples]
    rulebook = load_rulebook(args.rulebook) if args.rulebook_in_prompt else None
    return [AccuracyCallback(splits, args.eval_every_steps, tokenizer, args.system_prompt, fmt=args.reasoning_format,
                             rulebook=rulebook)]


def run_sft(args: AgrlSFTConfig, extra_callbacks: list | None = None) -> str:
    records = load_train_records(args.train_file, args.max_train_samples)
    if args.model_name_or_path == "tiny":
        model, tokenizer = build_tiny(args, records)
    else:
        check_contract(args)
        model, tokenizer = load_model(args.model_name_or_path)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=sft_dataset(records, args), processing_class=tokenizer,
        peft_config=peft_config(args), callbacks=eval_callback(args, tokenizer) + list(extra_callbacks or []),
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    save_final(trainer, tokenizer, args.output_dir, args)
    return args.output_dir


def save_final(trainer, tokenizer, output_dir: str, args: AgrlArguments) -> None:
    """A normal Hugging Face model folder (LoRA adapters merged), trainer_state.json and agrl.json."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        trainer.state.save_to_json(str(Path(output_dir) / "trainer_state.json"))
        save_contract(output_dir, contract_from_args(args))
