"""scripts/keep_resume_state.py: what a fresh checkout needs to resume `agrl reproduce`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agrl.experiments.shoprules import EVAL_SPLITS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/keep_resume_state.py"


def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _evaluated(eval_dir: Path, splits=EVAL_SPLITS) -> list[Path]:
    for s in splits:  # predictions are not needed to resume
        _touch(eval_dir / f"{s}.predictions.jsonl", "")
    return [_touch(eval_dir / f"{s}.metrics.json") for s in splits]


def test_keeps_finished_warm_starts_and_arms_but_no_checkpoints_or_unfinished_arms(tmp_path):
    runs = tmp_path / "out" / "runs"
    expected = set(_evaluated(runs / "eval" / "sft"))
    expected |= {
        _touch(runs / "models/sft" / n) for n in ("config.json", "model.safetensors", "chat_template.jinja")
    }
    _touch(runs / "models/sft/checkpoint-200/optimizer.pt")
    _touch(runs / "models/sft/checkpoint-200/model.safetensors")
    expected.add(_touch(runs / "eval/gate.json"))
    expected |= set(_evaluated(runs / "eval/agrl_s0"))
    expected.add(_touch(runs / "models/agrl_s0/trainer_state.json"))
    _touch(runs / "models/agrl_s0/model.safetensors")  # an RL arm's weights: the report needs none
    _evaluated(runs / "eval/grpo_s1", EVAL_SPLITS[:-1])  # killed during its evaluation
    _touch(runs / "models/grpo_s1/trainer_state.json")
    expected |= set(_evaluated(runs / "warm1/eval/sft"))
    expected.add(_touch(runs / "warm1/models/sft/model.safetensors"))

    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed = {Path(line) for line in done.stdout.splitlines()[:-1]}
    assert listed == expected
    assert done.stdout.splitlines()[-1].startswith(f"{len(expected)} files")


def test_an_empty_run_folder_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "no finished warm start or arm to keep" in done.stderr


def test_an_esci_work_folder_keeps_its_stages_the_sft_model_and_the_arms_curves(tmp_path):
    work = tmp_path / "work"
    expected = {
        _touch(work / "stages/peers.json", '{"predictions": {}}'),
        _touch(work / "stages/request.json"),
    }
    for name in ("smollm2_sft", "smollm2_agrl_s0"):
        run = {"grades": [4], "run": {"path": str(work / "models" / name), "steps": 3}}
        expected.add(_touch(work / "stages" / f"{name}.json", json.dumps(run)))
        expected.add(_touch(work / "models" / name / "trainer_state.json"))
    expected |= {
        _touch(work / "models/smollm2_sft" / n) for n in ("adapter_model.safetensors", "adapter_config.json")
    }
    _touch(work / "models/smollm2_sft/checkpoint-50/optimizer.pt")
    _touch(
        work / "models/smollm2_agrl_s0/adapter_model.safetensors"
    )  # an RL arm's weights: nothing reads them
    _touch(work / "models/smollm2_grpo_pr_s0/trainer_state.json")  # killed before its stage finished
    _touch(work / "cv/lora_1ep_fold0/adapter_model.safetensors")

    done = subprocess.run([sys.executable, str(SCRIPT), str(work)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {Path(line) for line in done.stdout.splitlines()[:-1]} == expected
