"""What every training stage shares: its prompt-contract check, LoRA config, accuracy callback, final save."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peft import LoraConfig
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from agrl.contract import CONTRACT_FILE, contract_from_args, load_contract, save_contract
from agrl.data.io import read_records
from agrl.rules import load_rulebook
from agrl.train.callbacks import AccuracyCallback
from agrl.train.config import AgrlArguments


def check_contract(args: AgrlArguments) -> None:
    """A stage that starts from an agrl model folder must prompt it as it was trained."""
    path = Path(args.model_name_or_path)
    if (path / CONTRACT_FILE).is_file():
        load_contract(path).check(
            str(path),
            reasoning_format=args.reasoning_format,
            system_prompt=args.system_prompt,
            rulebook_in_prompt=args.rulebook_in_prompt,
        )


def peft_config(args: AgrlArguments) -> LoraConfig | None:
    if not args.use_peft:
        return None
    targets = args.lora_target_modules
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        task_type="CAUSAL_LM",
        target_modules=targets if targets == "all-linear" else targets.split(","),
    )


def eval_callback(args: AgrlArguments, tokenizer) -> list[AccuracyCallback]:
    if not (args.eval_files and args.eval_every_steps):
        return []
    splits = {}
    for item in args.eval_files.split(","):
        name, _, path = item.partition("=")
        splits[name] = read_records(path)[: args.eval_max_samples]
    rulebook = load_rulebook(args.rulebook) if args.rulebook_in_prompt else None
    return [
        AccuracyCallback(
            splits,
            args.eval_every_steps,
            tokenizer,
            args.system_prompt,
            fmt=args.reasoning_format,
            rulebook=rulebook,
        )
    ]


def final_dir(args: TrainingArguments) -> str:
    """`args.output_dir`: TrainingArguments sets it (default "trainer_output") when it is created."""
    if args.output_dir is None:
        raise ValueError("output_dir is not set")
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


def resume_point(args: TrainingArguments) -> str | None:
    """`resume_from_checkpoint` as TRL's scripts read it: a checkpoint folder, or `true` for the
    latest `checkpoint-N` in `output_dir` (an error when there is none), or `false` / unset."""
    value = args.resume_from_checkpoint
    if value is None or str(value).strip().lower() in ("", "false", "0", "no"):
        return None
    if str(value).strip().lower() in ("true", "1", "yes"):
        last = get_last_checkpoint(final_dir(args)) if Path(final_dir(args)).is_dir() else None
        if last is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint true: no {PREFIX_CHECKPOINT_DIR}-N folder in {final_dir(args)} "
                "(the config must save checkpoints: save_strategy steps)"
            )
        return last
    if not Path(value).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return str(value)


class ContractCallback(TrainerCallback):
    """Every checkpoint folder gets the run's agrl.json, so predict/serve/eval prompt it as trained."""

    def __init__(self, args: AgrlArguments):
        self.contract = contract_from_args(args)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(final_dir(args)) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                save_contract(folder, self.contract)
        return control


def stage_callbacks(args: AgrlArguments, tokenizer) -> list[TrainerCallback]:
    """What every stage's trainer gets: the accuracy curve (when asked) and agrl.json in checkpoints."""
    return [*eval_callback(args, tokenizer), ContractCallback(args)]


def train_and_save(trainer, tokenizer, args) -> str:
    """Train (resuming as `resume_from_checkpoint` says), save the final model folder, return its path."""
    trainer.train(resume_from_checkpoint=resume_point(args))
    out = final_dir(args)
    save_final(trainer, tokenizer, out, args)
    return out


@contextmanager
def removed_on_failure(output_dir: str | Path) -> Iterator[None]:
    """A run that fails leaves no empty or half-written output folder behind: the folder goes when
    this run created it and it holds no checkpoint (a run killed after one keeps it, to resume)."""
    folder = Path(output_dir)
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.is_dir() and not any(folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
            shutil.rmtree(folder, ignore_errors=True)
        raise
