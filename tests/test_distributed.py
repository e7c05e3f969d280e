"""AGRL on two CPU processes (gloo) under torchrun: whole groups per process, per-rank replay state."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.test_train import rl_args, sft_model  # noqa: F401  (module fixture reused)


@pytest.mark.slow  # ~15 s: torchrun, two processes
@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun missing"
)
def test_agrl_under_torchrun_two_processes(tmp_path, sft_model, shoprules_dir):  # noqa: F811
    out = tmp_path / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "agrl.cli",
        "train",
        "agrl",
        *rl_args(
            out,
            sft_model,
            shoprules_dir,
            "--max_steps",
            "2",
            "--use_cpu",
            "true",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    triggered = [h["replay/triggered_frac"] for h in history if "replay/triggered_frac" in h]
    assert triggered and all(0.0 <= t <= 1.0 for t in triggered)
    states = [json.loads((out / "checkpoint-2" / f"replay_state_{rank}.json").read_text()) for rank in (0, 1)]
    ids = [set(s["examples"]) for s in states]
    assert ids[0] and ids[1]
    # Each prompt group lives on one process: no example is judged by both.
    assert not ids[0] & ids[1]
    # 2 steps x 2 groups per process, every group visited once on its own process.
    assert sum(sum(e["visits"] for e in s["examples"].values()) for s in states) == 2 * 2 * 2
