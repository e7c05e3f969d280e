"""Real TRL trainers on a tiny model: SFT, GRPO, AGRL (splice, weights, metrics, resume), DPO."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trl import GRPOTrainer

from agrl.data.io import read_records
from agrl.models import load_model
from agrl.replay import TRIGGERS, ReplayState
from agrl.rewards import label_correct, score_components
from agrl.train.config import AGRLConfig, AgrlDPOConfig, AgrlSFTConfig, load_config
from agrl.train.dpo import pairs_dataset, pairs_from_samples, run_dpo
from agrl.train.grpo import build_grpo_trainer
from agrl.train.sft import run_sft

TINY = ["--tiny_hidden", "32", "--tiny_layers", "1", "--tiny_heads", "2", "--tiny_intermediate", "64"]


def rl_args(out: Path, model: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--train_file",
        str(data / "rl.jsonl"),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--max_completion_length",
        "40",
        "--max_train_samples",
        "64",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--learning_rate",
        "1e-3",
        "--disable_tqdm",
        "true",
        "--seed",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def sft_model(shoprules_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft")
    args = load_config(
        AgrlSFTConfig,
        None,
        [
            "--train_file",
            str(shoprules_dir / "sft.jsonl"),
            "--output_dir",
            str(out),
            "--max_train_samples",
            "128",
            "--per_device_train_batch_size",
            "16",
            "--max_steps",
            "6",
            "--learning_rate",
            "3e-3",
            "--logging_steps",
            "2",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            *TINY,
        ],
    )
    run_sft(args)
    return out


def test_sft_writes_a_hugging_face_model_folder(sft_model):
    from agrl.models import load_model

    for name in ("config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"):
        assert (sft_model / name).exists(), name
    history = json.loads((sft_model / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]  # it learns something in 6 steps
    model, tokenizer = load_model(str(sft_model))
    assert tokenizer.chat_template and model.config.vocab_size == len(tokenizer)


def test_config_rejects_groups_split_across_processes(tmp_path):
    with pytest.raises(ValueError, match="whole groups"):
        load_config(
            AGRLConfig,
            None,
            [
                "--output_dir",
                str(tmp_path),
                "--per_device_train_batch_size",
                "6",
                "--num_generations",
                "4",
                "--generation_batch_size",
                "12",
            ],
        )
    with pytest.raises(ValueError, match="offpolicy_weighting"):
        load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--offpolicy_weighting", "bogus"])
    with pytest.raises(
        ValueError, match="replay_trigger: unknown replay trigger 'luck'; known: grounded, label"
    ):
        load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--replay_trigger", "luck"])
    with pytest.raises(ValueError, match="use_vllm"):
        load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--use_vllm", "true"])


def test_yaml_config_unknown_field_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 0.1\nnot_a_field: 3\n")
    with pytest.raises(ValueError, match=r"c\.yaml.*not_a_field"):
        load_config(AGRLConfig, path, [])
    path.write_text("learning_rate: [0.1\n")
    with pytest.raises(ValueError, match=r"c\.yaml: cannot read config"):
        load_config(AGRLConfig, path, [])
    with pytest.raises(ValueError, match="--not_a_flag"):
        load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--not_a_flag", "1"])


def test_config_layers_cpu_defaults_then_caller_then_yaml_then_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRL_TEST_ENV", "unset")  # restored after the test; TrlParser writes os.environ
    path = tmp_path / "c.yaml"
    path.write_text(
        "replay: true\nlearning_rate: 1e-4\nreplay_k: 3\nlogging_steps: 7\nenv:\n  AGRL_TEST_ENV: set\n"
    )
    args = load_config(
        AGRLConfig,
        path,
        ["--output_dir", str(tmp_path), "--replay_k", "2"],
        reward_mode="outcome",
        replay=False,
    )
    assert args.bf16 is False and args.gradient_checkpointing is False  # CPU defaults
    assert args.reward_mode == "outcome"  # the caller's default
    assert args.replay is True and args.learning_rate == 1e-4 and args.logging_steps == 7  # the file
    assert args.replay_k == 2  # the command line, last
    assert os.environ["AGRL_TEST_ENV"] == "set"  # TrlParser's `env:` mapping


def _agrl_trainer(tmp_path, sft_model, shoprules_dir, *extra):
    args = load_config(AGRLConfig, None, rl_args(tmp_path / "agrl", sft_model, shoprules_dir, *extra))
    trainer = build_grpo_trainer(args)
    trainer.model.train()
    return trainer


def _batch(trainer, n_groups=2):
    rows = [trainer.train_dataset[i] for i in range(n_groups)]
    return [dict(r) for r in rows for _ in range(trainer.num_generations)]


def test_agrl_splices_guided_completions_onto_unguided_prompts(tmp_path, sft_model, shoprules_dir):
    trainer = _agrl_trainer(
        tmp_path,
        sft_model,
        shoprules_dir,
        "--guidance_mode",
        "prefix",
        "--guidance_start_level",
        "1",
        "--replay_k",
        "2",
    )
    inputs = _batch(trainer)
    out = trainer._generate_and_score_completions(inputs)
    guided = trainer._guided
    assert guided, "an untrained model gets every label wrong, so every group is stagnant"
    assert len(guided) == 2 * len({r["id"] for r in inputs})  # k per stagnant group
    tokenizer = trainer.processing_class
    for row in guided:
        prompt = [
            t
            for t, m in zip(out["prompt_ids"][row.index].tolist(), out["prompt_mask"][row.index].tolist())
            if m
        ]
        unguided = tokenizer.apply_chat_template(
            inputs[row.index]["prompt"], add_generation_prompt=True, return_dict=True
        )["input_ids"]
        assert prompt == unguided  # the loss is taken on the unguided prompt
        text = tokenizer.decode(out["completion_ids"][row.index][: row.prefix_len].tolist())
        assert text.startswith("<checks>") and row.prefix_len > 0
    metrics = trainer._metrics["train"]
    assert metrics["replay/triggered_frac"][-1] == 1.0
    # An untrained model cannot finish a guided prefix in format, so the gate keeps rewards tied here;
    # the drop in zero-advantage groups is measured on real runs (bench/, the demo report).
    assert metrics["replay/zero_adv_frac_after"][-1] <= metrics["replay/zero_adv_frac_before"][-1]
    assert trainer.replay_state.queue  # stagnant examples wait for replay


def test_guided_rollouts_use_the_trainers_sampling_settings(tmp_path, sft_model, shoprules_dir):
    # top_k = 1 makes TRL's sampling greedy: guided rollouts from the same forced prefix must then be
    # identical, which they are only if they go through the trainer's generation config.
    trainer = _agrl_trainer(
        tmp_path, sft_model, shoprules_dir, "--top_k", "1", "--replay_k", "4", "--guidance_start_level", "2"
    )
    out = trainer._generate_and_score_completions(_batch(trainer, n_groups=1))
    rows = [r.index for r in trainer._guided]
    assert len(rows) == 4
    texts = {tuple(out["completion_ids"][i][out["completion_mask"][i].bool()].tolist()) for i in rows}
    assert len(texts) == 1


def test_starting_level_is_read_and_every_trigger_raises_it(tmp_path, sft_model, shoprules_dir):
    trainer = _agrl_trainer(
        tmp_path,
        sft_model,
        shoprules_dir,
        "--guidance_mode",
        "prefix",
        "--guidance_start_level",
        "2",
        "--replay_k",
        "1",
    )
    inputs = _batch(trainer)
    out = trainer._generate_and_score_completions(inputs)
    assert trainer._guided
    tokenizer = trainer.processing_class
    for row in trainer._guided:  # level 2: the forced prefix is the complete gold checks
        prefix = tokenizer.decode(out["completion_ids"][row.index][: row.prefix_len].tolist())
        assert prefix.rstrip().endswith("</checks>") and "<rule>" not in prefix
    metrics = trainer._metrics["train"]
    assert metrics["replay/level_2_frac"][-1] == 1.0
    assert 0.0 <= metrics["replay/guided_success_level_2"][-1] <= 1.0
    assert not metrics.get("replay/guided_success_level_1")  # nothing guided at level 1: no value, not NaN
    assert {trainer.replay_state.level(r["id"]) for r in inputs} == {3}  # raised after the trigger


@pytest.mark.parametrize("trigger", ["label", "grounded"])
def test_replay_triggers_on_groups_without_a_success_by_the_chosen_trigger(
    tmp_path, sft_model, shoprules_dir, monkeypatch, trigger
):
    # Spy on TRL's own generation (the real one runs) to see the unguided rollouts replay judged.
    seen: list[list] = []
    generate = GRPOTrainer._generate

    def spy(self, prompts):
        result = generate(self, prompts)
        seen.append(list(result[3]))
        return result

    monkeypatch.setattr(GRPOTrainer, "_generate", spy)
    trainer = _agrl_trainer(tmp_path, sft_model, shoprules_dir, "--replay_trigger", trigger)
    inputs = _batch(trainer, n_groups=4)
    trainer._generate_and_score_completions(inputs)
    success, g = TRIGGERS[trigger], trainer.num_generations
    ok = [
        success(
            label_correct([c], [r["label"]])[0], score_components(c, r["label"], r["rule"], r["annotations"])
        )
        for c, r in zip(seen[-1], inputs)
    ]
    stuck = sum(not any(ok[i : i + g]) for i in range(0, len(ok), g))
    assert trainer._metrics["train"]["replay/triggered_frac"][-1] == stuck / 4


def test_stuck_groups_without_usable_ground_truth_are_counted(tmp_path, sft_model, shoprules_dir):
    # real-data rows (partial annotations, no rule, no `type` line): prefix mode cannot guide them,
    # and the trainer says so instead of silently running GRPO-PR
    trainer = _agrl_trainer(tmp_path, sft_model, shoprules_dir, "--guidance_mode", "prefix")
    partial = json.dumps(
        {
            "query": {"brand": "nike"},
            "product": {"brand": "puma"},
            "checks": {"brand": "mismatch"},
            "partial": True,
        }
    )
    inputs = [{**row, "annotations": partial, "rule": ""} for row in _batch(trainer)]
    trainer._generate_and_score_completions(inputs)
    metrics = trainer._metrics["train"]
    assert metrics["replay/no_guidance"][-1] == 2 and metrics["replay/triggered_frac"][-1] == 0.0
    assert not trainer._guided


def test_queued_examples_are_served_and_counted(tmp_path, sft_model, shoprules_dir):
    trainer = _agrl_trainer(tmp_path, sft_model, shoprules_dir, "--replay_queue_fraction", "0.5")
    queued = dict(trainer.train_dataset[5])
    trainer.replay_state.queue[queued["id"]] = {"row": queued, "since": 0}
    inputs = _batch(trainer)
    trainer._generate_and_score_completions(inputs)
    assert trainer._current_inputs is None
    assert trainer._metrics["train"]["replay/from_queue"][-1] == 1
    assert trainer.replay_state.examples[queued["id"]].retries == 1


def test_forced_prefix_tokens_never_get_a_negative_advantage(tmp_path, sft_model, shoprules_dir):
    from agrl.train.agrl_trainer import GuidedRow

    trainer = _agrl_trainer(tmp_path, sft_model, shoprules_dir)
    trainer._guided = [GuidedRow(0, 3, None), GuidedRow(1, 0, None), GuidedRow(2, 2, None)]
    output = {
        "advantages": torch.tensor([-1.0, -1.0, 0.5, -0.7]),
        "completion_ids": torch.zeros(4, 6, dtype=torch.long),
    }
    trainer._finish_guided_rows(output)
    adv = output["advantages"]
    assert adv.shape == (4, 6)
    assert torch.equal(
        adv[0], torch.tensor([0.0, 0.0, 0.0, -1.0, -1.0, -1.0])
    )  # prefix clamped, continuation kept
    assert torch.equal(adv[1], torch.full((6,), -1.0))  # no forced prefix: untouched
    assert torch.equal(adv[2], torch.full((6,), 0.5))  # positive advantages pass through
    assert torch.equal(adv[3], torch.full((6,), -0.7))  # unguided rows untouched


@pytest.mark.parametrize("weighting", ["shaping", "clip"])
def test_offpolicy_weights_shape_guided_advantages(tmp_path, sft_model, shoprules_dir, weighting):
    trainer = _agrl_trainer(
        tmp_path,
        sft_model,
        shoprules_dir,
        "--offpolicy_weighting",
        weighting,
        "--guidance_mode",
        "hint",
        "--guidance_start_level",
        "1",
    )
    out = trainer._generate_and_score_completions(_batch(trainer))
    adv = out["advantages"]
    assert adv.dim() == 2 and adv.shape == out["completion_ids"].shape
    guided = [r.index for r in trainer._guided]
    assert guided
    for i in range(adv.shape[0]):  # unguided rows keep TRL's one advantage per row
        mask = out["completion_mask"][i].bool()
        if i not in guided:
            assert torch.allclose(adv[i][mask], adv[i][mask][0].expand(int(mask.sum())))
    # the weights themselves: hinted rows are off-policy on every token
    weights = trainer._offpolicy_weights(out)
    mask = out["completion_mask"][guided].bool()
    assert weights.shape == mask.shape and torch.all(weights[~mask] == 0)
    live = weights[mask]
    cap = 1.0 if weighting == "shaping" else trainer.args.offpolicy_clip
    assert torch.all(live >= 0) and torch.all(live <= cap + 1e-6)
    assert not torch.allclose(live, torch.ones_like(live))  # they do reshape the update


def test_batched_hint_logprobs_equal_one_row_at_a_time(tmp_path, sft_model, shoprules_dir):
    trainer = _agrl_trainer(
        tmp_path,
        sft_model,
        shoprules_dir,
        "--offpolicy_weighting",
        "clip",
        "--offpolicy_clip",
        "1e9",
        "--guidance_mode",
        "hint",
        "--guidance_start_level",
        "2",
        "--replay_k",
        "2",
    )
    out = trainer._generate_and_score_completions(_batch(trainer, n_groups=2))
    rows = [r.index for r in trainer._guided]
    assert (
        len({len(r.guided_prompt_ids) for r in trainer._guided}) > 1 and len(rows) == 4
    )  # padding is exercised
    weights = trainer._offpolicy_weights(out)  # exp(logp - behaviour) on every hinted token
    completion_ids, completion_mask = out["completion_ids"][rows], out["completion_mask"][rows]
    keep = completion_ids.shape[1]
    with torch.no_grad():
        prompt = torch.cat([out["prompt_ids"][rows], completion_ids], dim=1)
        attention = torch.cat([out["prompt_mask"][rows], completion_mask], dim=1)
        logp, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, prompt, attention, keep, len(rows)
        )
        for j, row in enumerate(trainer._guided):
            hinted = torch.tensor([row.guided_prompt_ids])
            ids = torch.cat([hinted, completion_ids[j : j + 1]], dim=1)
            mask = torch.cat([torch.ones_like(hinted), completion_mask[j : j + 1]], dim=1)
            single, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep, 1)
            expected = (logp[j] - single[0]).exp() * completion_mask[j]
            assert torch.allclose(weights[j], expected, atol=1e-4, rtol=1e-3)


def test_guided_rows_survive_off_policy_mask_and_is_settings(tmp_path, sft_model, shoprules_dir):
    """With TRL's off-policy mask at its strictest and IS correction on, guided rows still get gradient."""
    trainer = _agrl_trainer(
        tmp_path,
        sft_model,
        shoprules_dir,
        "--off_policy_mask_threshold",
        "0.0",
        "--vllm_importance_sampling_correction",
        "true",
        "--guided_prefix_loss",
        "true",
        "--replay_k",
        "2",
    )
    out = trainer._generate_and_score_completions(_batch(trainer))
    guided = [r.index for r in trainer._guided]
    assert guided
    keep = torch.zeros(out["advantages"].shape[0], dtype=torch.bool)
    keep[guided] = True
    keep = keep.view(-1, *[1] * (out["advantages"].dim() - 1))  # guided rows make advantages per token
    out["advantages"] = torch.where(
        keep, torch.full_like(out["advantages"], -1.0), torch.zeros_like(out["advantages"])
    )
    trainer.model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; we call the loss directly
    loss = trainer.compute_loss(trainer.model, out)
    loss.backward()
    grad = sum(p.grad.abs().sum() for p in trainer.model.parameters() if p.grad is not None)
    assert float(grad) > 0


def test_prefix_tokens_can_be_excluded_from_the_loss(tmp_path, sft_model, shoprules_dir):
    trainer = _agrl_trainer(
        tmp_path, sft_model, shoprules_dir, "--guided_prefix_loss", "false", "--guidance_start_level", "1"
    )
    out = trainer._generate_and_score_completions(_batch(trainer))
    assert "tool_mask" in out
    for row in trainer._guided:
        assert out["tool_mask"][row.index][: row.prefix_len].sum() == 0
        assert out["tool_mask"][row.index][row.prefix_len :].sum() > 0


def test_grpo_and_agrl_train_and_log(tmp_path, sft_model, shoprules_dir):
    from agrl.train.grpo import run_grpo

    for name, extra in (("grpo", ["--reward_mode", "outcome", "--replay", "false"]), ("agrl", [])):
        out = tmp_path / name
        run_grpo(
            load_config(AGRLConfig, None, rl_args(out, sft_model, shoprules_dir, "--max_steps", "2", *extra))
        )
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        assert any("frac_reward_zero_std" in h for h in history)
        assert any("replay/triggered_frac" in h for h in history) == (name == "agrl")
        assert (out / "model.safetensors").exists()


@pytest.mark.slow  # ~25 s: three training processes, one killed
def test_killed_agrl_run_resumes_with_its_replay_state(tmp_path, sft_model, shoprules_dir):
    """SIGKILL a real `agrl train agrl` process after a checkpoint, resume it, and compare with a clean run."""
    base = rl_args(
        tmp_path / "x",
        sft_model,
        shoprules_dir,
        "--max_steps",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--lr_scheduler_type",
        "constant",
    )
    cli = [sys.executable, "-m", "agrl.cli", "train", "agrl"]

    def args_for(out: Path) -> list[str]:
        return [a if a != str(tmp_path / "x") else str(out) for a in base]

    clean = tmp_path / "clean"
    subprocess.run(cli + args_for(clean), check=True, capture_output=True, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli + args_for(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # agrl.json is written last (by the on_save callback, after TRL's files and the replay state):
    # killing before it would test a checkpoint cut in the middle of its save.
    done = [killed / "checkpoint-2" / f for f in ("trainer_state.json", "replay_state_0.json", "agrl.json")]
    while not all(f.exists() for f in done) and time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads((killed / "checkpoint-2" / "replay_state_0.json").read_text())
    assert ReplayState.from_json(saved).examples  # levels and visits are in the checkpoint
    assert (
        killed / "checkpoint-2" / "agrl.json"
    ).exists()  # a checkpoint is a model folder agrl can judge with
    # `true`, as TRL users write it: the latest checkpoint in output_dir
    subprocess.run(
        cli + args_for(killed) + ["--resume_from_checkpoint", "true"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    a = json.loads((clean / "checkpoint-4" / "replay_state_0.json").read_text())
    b = json.loads((killed / "checkpoint-4" / "replay_state_0.json").read_text())
    assert a == b  # same levels, queue and RNG as the uninterrupted run
    from safetensors.torch import load_file

    wa, wb = load_file(clean / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_dpo_pairs_from_hand_made_samples():
    records = [{"id": "a", "label": 2}, {"id": "b", "label": 4}, {"id": "c", "label": 1}]
    good_a = "<checks>\ntype: x | x match\n</checks>\n<rule> R03 n </rule>\n<answer> 2 </answer>"
    bad_a = good_a.replace("<answer> 2", "<answer> 4")
    samples = [[good_a, bad_a, "junk"], [bad_a.replace("<answer> 4", "<answer> 4")] * 2, [bad_a, "junk"]]
    samples[1] = [good_a.replace("<answer> 2", "<answer> 4")] * 2  # all correct for b
    pairs, counts = pairs_from_samples(records, samples, seed=0)
    assert counts == {"prompts": 3, "pairs": 1, "all_correct": 1, "all_wrong": 1}
    assert pairs[0]["id"] == "a" and pairs[0]["chosen"] == good_a and pairs[0]["rejected"] in (bad_a, "junk")


def test_dpo_trains_on_pairs(tmp_path, sft_model, shoprules_dir):
    records = read_records(shoprules_dir / "rl.jsonl")[:8]
    pairs = [
        {"id": r["id"], "chosen": r["reference"], "rejected": r["reference"].replace("match", "mismatch", 1)}
        for r in records
    ]
    args = load_config(
        AgrlDPOConfig,
        None,
        [
            "--model_name_or_path",
            str(sft_model),
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--logging_steps",
            "1",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
        ],
    )
    run_dpo(args, pairs_dataset(pairs, {r["id"]: r for r in records}, args))
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in h for h in history) and (tmp_path / "model.safetensors").exists()


def test_real_data_reference_holds_annotated_checks_the_rulebook_rule_and_the_human_label():
    from agrl.reasoning import parse_reasoning
    from agrl.train.data import reference_text

    record = {
        "id": "e1",
        "query": "nike shoes",
        "label": 3,
        "product": {"title": "adidas shoes"},
        "annotations": {
            "query": {"brand": "nike"},
            "product": {"brand": "adidas"},
            "checks": {"brand": "mismatch"},
            "partial": True,
        },
    }
    for fmt in ("label_first", "think_first"):
        parsed = parse_reasoning(reference_text(record, fmt), fmt)
        assert parsed.ok, parsed
        assert parsed.label == 3  # the human label, although the rulebook's brand rule says 2
        assert parsed.rule_id == "R04"
        assert parsed.checks == {"type": "unknown", "brand": "mismatch"}
    bare = parse_reasoning(
        reference_text({"id": "e2", "query": "q", "label": 1, "product": {"title": "t"}}), "think_first"
    )
    assert bare.ok and bare.label == 1 and bare.checks == {"type": "unknown"}


def test_a_record_naming_a_rule_without_annotations_cannot_be_rendered():
    from agrl.train.data import reference_text

    with pytest.raises(ValueError, match="names a rule but has no complete annotations"):
        reference_text({"id": "x", "query": "q", "label": 2, "rule": "R03", "product": {"title": "t"}})


def test_ptx_rehearsal_adds_the_reference_nll_and_lowers_it(tmp_path, sft_model, shoprules_dir):
    """GRPO-PR with the rehearsal term: the plain GRPO trainer's loss plus ptx_coef x the NLL of gold
    references; training on it (a large coefficient, a few steps) lowers that NLL on the same batches."""
    from agrl.train.grpo import build_grpo_trainer, run_grpo
    from agrl.train.ptx import reference_nll

    flags = ["--replay", "false", "--ptx_file", str(shoprules_dir / "sft.jsonl"), "--ptx_batch_size", "4"]
    args = load_config(
        AGRLConfig, None, rl_args(tmp_path / "a", sft_model, shoprules_dir, *flags, "--ptx_coef", "1.0")
    )
    trainer = build_grpo_trainer(args)
    assert trainer._ptx is not None and len(trainer._ptx.examples) >= 4
    for ids, labels in trainer._ptx.examples:  # loss on the reference only, which ends the sequence
        prompt = labels.index(next(lab for lab in labels if lab != -100))
        assert 0 < prompt < len(ids) and labels[prompt:] == ids[prompt:] and set(labels[:prompt]) == {-100}
        assert ids[-1] == trainer.processing_class.eos_token_id
    batch = trainer._ptx.batch(0, torch.device("cpu"))
    before = reference_nll(trainer.model, batch).item()
    with pytest.raises(ValueError, match="ptx_file"):
        load_config(AGRLConfig, None, rl_args(tmp_path / "b", sft_model, shoprules_dir, "--ptx_coef", "0.5"))
    out = tmp_path / "trained"
    run_grpo(load_config(AGRLConfig, None, rl_args(out, sft_model, shoprules_dir, *flags, "--ptx_coef", "20.0",
                                                    "--max_steps", "3", "--learning_rate", "1e-3")))  # fmt: skip
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("ptx/nll" in h for h in history)
    model, _ = load_model(str(out))
    assert reference_nll(model, batch).item() < before


def test_resume_true_without_a_checkpoint_is_a_clear_error(tmp_path, sft_model, shoprules_dir):
    from agrl.train.common import resume_point

    args = load_config(
        AGRLConfig,
        None,
        rl_args(tmp_path / "none", sft_model, shoprules_dir, "--resume_from_checkpoint", "true"),
    )
    with pytest.raises(FileNotFoundError, match="no checkpoint-N folder"):
        resume_point(args)
    args = load_config(
        AGRLConfig,
        None,
        rl_args(tmp_path / "none", sft_model, shoprules_dir, "--resume_from_checkpoint", "false"),
    )
    assert resume_point(args) is None
    (tmp_path / "none" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "none" / "checkpoint-12").mkdir()
    args = load_config(
        AGRLConfig,
        None,
        rl_args(tmp_path / "none", sft_model, shoprules_dir, "--resume_from_checkpoint", "true"),
    )
    assert resume_point(args) == str(tmp_path / "none" / "checkpoint-12")


def test_rl_dataset_carries_the_class_balanced_label_weight(tmp_path, shoprules):
    from agrl.train.data import rl_dataset

    records = shoprules["rl"][:200]
    counts = {g: sum(r["label"] == g for r in records) for g in {r["label"] for r in records}}
    off = rl_dataset(records, load_config(AGRLConfig, None, ["--output_dir", str(tmp_path)]))
    assert set(off["label_weight"]) == {1.0}
    args = load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--label_balance", "1.0"])
    weights = dict(zip(off["label"], rl_dataset(records, args)["label_weight"]))
    rarest = min(counts.values())
    assert weights == pytest.approx({g: rarest / n for g, n in counts.items()})
    with pytest.raises(ValueError, match="label_balance"):
        load_config(AGRLConfig, None, ["--output_dir", str(tmp_path), "--label_balance", "-1"])


def test_the_class_balanced_sampler_draws_every_class_as_often_and_repeats_per_seed_and_epoch():
    from agrl.train.data import ClassBalancedSampler

    labels = [4] * 90 + [3] * 9 + [1]
    sampler = ClassBalancedSampler(labels, power=1.0, seed=0)
    draws = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        draws += [labels[i] for i in sampler]
    assert len(draws) == 20 * len(labels)
    for grade in (4, 3, 1):  # a third each, against 90 / 9 / 1 % in the file
        assert abs(draws.count(grade) / len(draws) - 1 / 3) < 0.05
    again = ClassBalancedSampler(labels, power=1.0, seed=0)
    again.set_epoch(19)
    sampler.set_epoch(19)
    assert list(again) == list(sampler)  # a resumed run draws what the uninterrupted one drew
    sampler.set_epoch(18)
    assert list(again) != list(sampler)
    half = ClassBalancedSampler(labels, power=0.0, seed=0)  # power 0: the file's own mix
    assert [labels[i] for i in half].count(4) > 70


def test_class_balanced_sft_trains_a_real_model_on_the_balanced_draws(tmp_path, shoprules_dir):
    from agrl.data.io import read_records
    from agrl.train.data import ClassBalancedSampler
    from agrl.train.sft import AgrlSFTTrainer

    seen = []

    class Recorder(AgrlSFTTrainer):  # the real trainer; it records which rows its sampler drew
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            assert isinstance(sampler, ClassBalancedSampler)
            seen.extend(sampler)
            return sampler

    import agrl.train.sft as sft

    args = load_config(
        AgrlSFTConfig,
        None,
        ["--train_file", str(shoprules_dir / "sft.jsonl"), "--output_dir", str(tmp_path / "out"),
         "--max_train_samples", "64", "--per_device_train_batch_size", "8", "--max_steps", "2",
         "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--class_balance", "1",
         *TINY],
    )  # fmt: skip
    original, sft.AgrlSFTTrainer = sft.AgrlSFTTrainer, Recorder
    try:
        run_sft(args)
    finally:
        sft.AgrlSFTTrainer = original
    labels = [int(r["label"]) for r in read_records(shoprules_dir / "sft.jsonl")[:64]]
    assert len(seen) == 64 and (tmp_path / "out" / "model.safetensors").is_file()
    rare = min(set(labels), key=labels.count)
    assert [labels[i] for i in seen].count(rare) > labels.count(rare)  # drawn more often than it occurs
    with pytest.raises(ValueError, match="class_balance"):
        load_config(AgrlSFTConfig, None, ["--class_balance", "-1", "--output_dir", str(tmp_path / "x")])


def test_stuck_prompts_gold_references_join_the_loss_once(tmp_path, sft_model, shoprules_dir, shoprules):
    """`stuck_sft_coef`: the gold reference of every group the trigger found stuck is encoded for the
    loss (completion-only labels); the step's loss is TRL's plus coef x their NLL, taken once."""
    from agrl.train.ptx import collate, encode_reference, reference_nll

    trainer = _agrl_trainer(tmp_path, sft_model, shoprules_dir, "--stuck_sft_coef", "2.0")
    inputs = _batch(trainer)
    out = trainer._generate_and_score_completions(inputs)
    stuck = trainer._metrics["train"]["replay/triggered_frac"][-1] * 2
    assert stuck == len(trainer._stuck_refs) > 0  # an untrained model is stuck on every group
    tokenizer = trainer.processing_class
    by_id = {str(r["id"]): r for r in shoprules["rl"]}
    expected = [
        encode_reference(by_id[str(r["id"])], tokenizer, trainer.args)
        for r in inputs[:: trainer.num_generations]
    ]
    assert trainer._stuck_refs == expected  # the prompts' own gold references, completion-only labels
    refs = list(trainer._stuck_refs)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this test skips
    nll = reference_nll(trainer.model, collate(refs, tokenizer, torch.device("cpu"))).item()
    torch.manual_seed(0)
    total = trainer.compute_loss(trainer.model, out).item()
    assert not trainer._stuck_refs  # consumed by the step's first loss call
    torch.manual_seed(0)
    rl_only = trainer.compute_loss(trainer.model, out).item()
    assert total == pytest.approx(rl_only + 2.0 * nll, rel=1e-4)
    assert trainer._metrics["train"]["stuck_sft/references"][-1] == stuck
    with pytest.raises(ValueError, match="needs replay"):
        load_config(AGRLConfig, None, rl_args(tmp_path / "b", sft_model, shoprules_dir, "--replay", "false",
                                              "--stuck_sft_coef", "1.0"))  # fmt: skip
