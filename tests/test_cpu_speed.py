"""CPU speed-ups that must keep the math: compact log-prob scoring and merged-LoRA rollouts (real
TRL trainers and PEFT adapters on a tiny model)."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model

from agrl.models import load_model
from agrl.train.config import AGRLConfig, AgrlSFTConfig, load_config
from agrl.train.cpu_speed import MergedRolloutsGRPOTrainer, compact_logprobs, merged_lora
from agrl.train.grpo import build_grpo_trainer
from agrl.train.sft import run_sft
from tests.test_train import TINY, rl_args
from tests.test_train import sft_model as sft_model  # noqa: F401 - the module's fixture, shared


def _sft_losses(tmp_path, shoprules_dir, compact: bool) -> list[float]:
    out = tmp_path / f"compact_{compact}"
    args = load_config(
        AgrlSFTConfig,
        None,
        ["--train_file", str(shoprules_dir / "sft.jsonl"), "--output_dir", str(out), "--max_train_samples", "64",
         "--per_device_train_batch_size", "8", "--max_steps", "4", "--learning_rate", "3e-3", "--logging_steps",
         "1", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
         "--compact_logprobs", str(compact).lower(), *TINY],
    )  # fmt: skip
    run_sft(args)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h]


def test_compact_log_probs_give_the_same_sft_losses(tmp_path, shoprules_dir):
    every, compact = (_sft_losses(tmp_path, shoprules_dir, c) for c in (False, True))
    assert len(every) == len(compact) == 4
    assert compact == pytest.approx(every, rel=1e-5)  # the same numbers up to float rounding


def test_the_compact_switch_follows_each_run():
    from trl.trainer import utils as trl_utils

    cpu = torch.device("cpu")
    assert compact_logprobs(True) and trl_utils._use_triton(cpu) is True
    assert compact_logprobs(False) and trl_utils._use_triton(cpu) is False  # TRL's own choice off Triton


def _lora(model) -> torch.nn.Module:
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.5, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():  # a non-zero adapter: B starts at zero, which would make merging a no-op
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return peft


def test_merged_lora_restores_the_base_weights_bit_for_bit_and_keeps_the_mode(sft_model):
    model, _ = load_model(str(sft_model))
    peft = _lora(model)
    peft.train()
    before = {k: v.detach().clone() for k, v in peft.state_dict().items()}
    with merged_lora(peft):
        assert peft.training  # TRL files its metrics under the mode
        merged = {k: v.detach().clone() for k, v in peft.state_dict().items()}
    after = peft.state_dict()
    assert any(not torch.equal(before[k], merged[k]) for k in before)  # it did merge
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.merged for m in peft.modules() if hasattr(m, "merged_adapters"))


def test_a_nested_merged_lora_block_reuses_the_outer_merge(sft_model):
    """AGRL's guided replays run inside its merged rollouts: the inner block neither merges again
    (adapters added twice) nor restores the weights under the outer block."""
    model, _ = load_model(str(sft_model))
    peft = _lora(model)
    before = {k: v.detach().clone() for k, v in peft.state_dict().items()}
    with merged_lora(peft):
        merged = {k: v.detach().clone() for k, v in peft.state_dict().items()}
        with merged_lora(peft):
            assert all(torch.equal(merged[k], v) for k, v in peft.state_dict().items())
        assert all(torch.equal(merged[k], v) for k, v in peft.state_dict().items())  # still merged
    assert all(torch.equal(before[k], v) for k, v in peft.state_dict().items())


def test_merged_lora_computes_what_the_unmerged_eval_policy_computes(sft_model):
    model, tokenizer = load_model(str(sft_model))
    peft = _lora(model)
    ids = tokenizer(["query: red shoes", "query: a blue kettle for tea"], return_tensors="pt", padding=True)
    peft.eval()
    with torch.no_grad():
        unmerged = peft(**ids).logits
        peft.train()  # adapter dropout 0.5 is on; a merged layer runs no dropout
        with merged_lora(peft):
            merged = peft(**ids).logits
    assert torch.allclose(unmerged, merged, atol=1e-5)


def test_lora_rl_trainers_roll_out_merged_and_still_log_as_training(
    tmp_path, sft_model, shoprules_dir, monkeypatch
):
    args = load_config(
        AGRLConfig,
        None,
        rl_args(tmp_path / "rl", sft_model, shoprules_dir, "--max_steps", "1", "--use_peft", "true",
                "--reward_mode", "rule_aware", "--replay", "false", "--compact_logprobs", "true"),
    )  # fmt: skip
    trainer = build_grpo_trainer(args)
    assert isinstance(trainer, MergedRolloutsGRPOTrainer)
    seen: list[bool] = []
    lora = trainer.model.base_model  # PeftModel hands merge_adapter on to its LoraModel
    merge = lora.merge_adapter

    def spy(*a, **k):
        seen.append(trainer.model.training)
        return merge(*a, **k)

    monkeypatch.setattr(lora, "merge_adapter", spy)
    trainer.train()
    assert seen and all(seen)  # merged for the rollouts, in training mode
    # the metrics TRL files while generating reach the training log
    assert any("completions/mean_length" in h for h in trainer.state.log_history)
