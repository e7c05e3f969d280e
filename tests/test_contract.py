"""The prompt contract (agrl.json): written by every training stage, read by predict/serve/eval, enforced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agrl.contract import CONTRACT_FILE, PromptContract, load_contract, save_contract
from agrl.rules import default_rulebook
from agrl.train.config import AGRLConfig, AgrlSFTConfig, load_config
from agrl.train.sft import run_sft

TINY = ["--tiny_hidden", "32", "--tiny_layers", "1", "--tiny_heads", "2", "--tiny_intermediate", "64"]


@pytest.fixture(scope="module")
def label_first_model(shoprules_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft_label_first")
    run_sft(
        load_config(
            AgrlSFTConfig,
            None,
            [
                "--train_file",
                str(shoprules_dir / "sft.jsonl"),
                "--output_dir",
                str(out),
                "--max_train_samples",
                "32",
                "--per_device_train_batch_size",
                "16",
                "--max_steps",
                "2",
                "--save_strategy",
                "no",
                "--report_to",
                "none",
                "--disable_tqdm",
                "true",
                "--reasoning_format",
                "label_first",
                "--system_prompt",
                "true",
                "--rulebook_in_prompt",
                "true",
                *TINY,
            ],
        )
    )
    return out


def test_training_writes_the_contract(label_first_model):
    data = json.loads((label_first_model / CONTRACT_FILE).read_text())
    assert data["reasoning_format"] == "label_first" and data["system_prompt"] is True
    contract = load_contract(label_first_model)
    assert contract.rulebook_in_prompt and contract.rulebook.ids == default_rulebook().ids
    assert contract.prompt_rulebook() is not None and contract.label_map == {"E": 4, "S": 3, "C": 2, "I": 1}


def test_a_folder_without_a_contract_gets_the_defaults(tmp_path):
    assert load_contract(tmp_path) == PromptContract()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"reasoning_format": "yaml"}', "reasoning_format"),
        ('{"system_prompt": "yes"}', "system_prompt"),
        ('{"rulebook_yaml": "rules: []"}', "rulebook_yaml"),
        ('{"flavour": 1}', "flavour"),
        ("not json", "cannot read"),
    ],
)
def test_a_bad_contract_names_the_file_and_field(tmp_path, content, field):
    (tmp_path / CONTRACT_FILE).write_text(content)
    with pytest.raises(ValueError, match=field) as info:
        load_contract(tmp_path)
    assert str(tmp_path / CONTRACT_FILE) in str(info.value)


def test_round_trip(tmp_path):
    contract = PromptContract(reasoning_format="label_first", system_prompt=True)
    save_contract(tmp_path, contract)
    assert load_contract(tmp_path) == contract


def test_serving_with_a_contradicting_flag_is_an_error(label_first_model):
    from agrl.serve import create_app

    with pytest.raises(ValueError, match="contradicts"):
        create_app(str(label_first_model), fmt="think_first")
    with pytest.raises(ValueError, match="system_prompt"):
        create_app(str(label_first_model), system_prompt=False)
    app = create_app(str(label_first_model), fmt="label_first")  # restating it is fine
    assert app.title == "agrl judge"


def test_predict_with_a_contradicting_flag_fails_before_writing(label_first_model, shoprules_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    other = tmp_path / "plain"
    other.mkdir()
    for name in label_first_model.iterdir():
        if name.name != CONTRACT_FILE:
            (other / name.name).write_bytes(name.read_bytes())
    save_contract(other, PromptContract(system_prompt=False))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agrl.cli",
            "predict",
            "--model",
            str(other),
            "--data",
            str(shoprules_dir / "b_eval.jsonl"),
            "--out",
            str(out),
            "--system-prompt",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "contradicts" in done.stderr and not out.exists()


def test_rl_from_a_folder_must_prompt_it_as_it_was_trained(label_first_model, shoprules_dir, tmp_path):
    from agrl.train.grpo import build_grpo_trainer

    args = load_config(
        AGRLConfig,
        None,
        [
            "--model_name_or_path",
            str(label_first_model),
            "--train_file",
            str(shoprules_dir / "rl.jsonl"),
            "--output_dir",
            str(tmp_path),
            "--max_train_samples",
            "8",
            "--per_device_train_batch_size",
            "8",
            "--num_generations",
            "4",
            "--report_to",
            "none",
        ],
    )
    with pytest.raises(ValueError, match="reasoning_format"):
        build_grpo_trainer(args)
