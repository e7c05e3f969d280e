"""What `pip install` ships: the configs and the rulebook are package data, usable from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_configs_and_rulebook(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("agrl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "src" / "agrl" / "configs").glob("*.yaml")}
    assert {"agrl_tiny.yaml", "sft_tiny.yaml", "sft_gold_tiny.yaml"} <= shipped
    assert {f"agrl/configs/{n}" for n in shipped} <= names
    assert "agrl/rules/default.yaml" in names


def test_shipped_configs_resolve_outside_the_checkout(tmp_path):
    code = (
        "from agrl.pipeline import config_path, RL_METHODS; from agrl.train.config import AGRLConfig, load_config;"
        "args = load_config(AGRLConfig, config_path(RL_METHODS['agrl']), ['--output_dir', 'o']);"
        "print(args.guidance_start_level, args.replay_k)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["2", "4"]  # the values tuned on dev
    done = subprocess.run(
        [sys.executable, "-m", "agrl.cli", "train", "agrl", "--config", "no_such.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "shipped configs" in done.stderr
