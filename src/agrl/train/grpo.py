"""Stage 2: RL from the SFT checkpoint: GRPO, GRPO-PR, replay-only and AGRL are one runner.

=============  ============  ======  ===========================
method         reward_mode   replay  trainer
=============  ============  ======  ===========================
GRPO           outcome       false   MergedRolloutsGRPOTrainer
GRPO-PR        rule_aware    false   MergedRolloutsGRPOTrainer
replay-only    outcome       true    AGRLTrainer
AGRL           rule_aware    true    AGRLTrainer
=============  ============  ======  ===========================

`MergedRolloutsGRPOTrainer` is trl.GRPOTrainer whose LoRA rollouts are sampled from the merged policy
(`agrl.train.cpu_speed`); without LoRA it is GRPOTrainer unchanged. AGRLTrainer extends it.
"""

from __future__ import annotations

from trl import GRPOTrainer

from agrl.models import load_model
from agrl.rewards import make_reward_functions
from agrl.rules import load_rulebook
from agrl.train.agrl_trainer import AGRLTrainer
from agrl.train.common import check_contract, peft_config, stage_callbacks, train_and_save
from agrl.train.config import AGRLConfig
from agrl.train.cpu_speed import MergedRolloutsGRPOTrainer, compact_logprobs
from agrl.train.data import load_train_records, rl_dataset


def build_grpo_trainer(args: AGRLConfig, model=None, tokenizer=None, records=None) -> GRPOTrainer:
    compact_logprobs(args.compact_logprobs)
    if model is None:
        check_contract(args)
        model, tokenizer = load_model(args.model_name_or_path)
    records = records if records is not None else load_train_records(args.train_file, args.max_train_samples)
    rulebook = load_rulebook(args.rulebook)
    funcs, weights = make_reward_functions(args.component_weights(), rulebook, args.reasoning_format)
    args.reward_weights = weights
    kwargs = dict(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=rl_dataset(records, args),
        processing_class=tokenizer,
        peft_config=peft_config(args),
        callbacks=stage_callbacks(args, tokenizer),
    )
    if args.replay or args.ptx_coef:  # replay off: AGRLTrainer is GRPOTrainer plus the rehearsal term
        return AGRLTrainer(rulebook=rulebook, **kwargs)
    return MergedRolloutsGRPOTrainer(**kwargs)


def run_grpo(args: AGRLConfig) -> str:
    trainer = build_grpo_trainer(args)
    return train_and_save(trainer, trainer.processing_class, args)
