"""scripts/tune_dev.py: the multi-seed comparison on dev (paired by seed against a base point)."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/tune_dev.py"
spec = importlib.util.spec_from_file_location("tune_dev", SCRIPT)
assert spec is not None and spec.loader is not None
tune_dev = importlib.util.module_from_spec(spec)
sys.modules["tune_dev"] = tune_dev  # dataclasses look their module up there
spec.loader.exec_module(tune_dev)


def _row(setting: str, seed: int | None, tail: float, natural: float) -> dict:
    row = {"setting": setting, "tail_solved": tail, "natural_accuracy": natural, "head_accuracy": 0.9}
    return row if seed is None else {**row, "seed": seed}


ROWS = [
    {"setting": "sft", "tail_solved": 0.0, "natural_accuracy": 0.8, "head_accuracy": 0.95},
    _row("default", None, 0.30, 0.92),  # a single-seed grid's row: the tuning seed (100)
    _row("default", 101, 0.26, 0.91),
    _row("default", 102, 0.28, 0.93),
    _row("level3", 100, 0.36, 0.92),
    _row("level3", 101, 0.30, 0.90),
    _row("level3", 102, 0.36, 0.93),
    _row("level3", 103, 0.50, 0.99),  # no base at seed 103: in the mean, not in the pairs
]


def test_paired_rows_pair_by_seed_with_the_seed_level_t_interval():
    rows = {r["setting"]: r for r in tune_dev.paired_rows(ROWS, "default")}
    assert set(rows) == {"default", "level3"}  # SFT is the start, not a point
    tail = rows["level3"]["tail_solved"]
    assert rows["level3"]["seeds"] == [100, 101, 102, 103]
    assert tail["n"] == 4 and tail["mean"] == pytest.approx((0.36 + 0.30 + 0.36 + 0.50) / 4)
    diffs = [0.06, 0.04, 0.08]
    assert tail["pairs"] == 3 and tail["diff"] == pytest.approx(sum(diffs) / 3)
    low, high = stats.t.interval(0.95, 2, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert tail["diff_ci95"] == pytest.approx((low, high))
    assert rows["default"]["tail_solved"]["diff"] == pytest.approx(0.0)
    # a field no row has: no mean, no pairs, no interval
    assert rows["level3"]["grounded_solved_tail"] == {"mean": None, "sd": 0.0, "n": 0, "diff": None,
                                                      "diff_ci95": None, "pairs": 0}  # fmt: skip


def test_paired_rows_name_the_points_when_the_base_is_missing():
    with pytest.raises(ValueError, match="--base 'shipped': no such point .*default, level3"):
        tune_dev.paired_rows(ROWS, "shipped")


def test_render_writes_the_paired_table_beside_the_grid(tmp_path):
    out = tmp_path / "agrl_seeds.json"
    out.write_text(json.dumps({"method": "agrl", "steps": 200, "seed": 100, "base": "default", "rows": ROWS}))
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--render"], check=True, cwd=ROOT)
    text = out.with_suffix(".md").read_text()
    assert "seed(s) 100, 101, 102, 103" in text
    assert "## Paired by seed against `default` (seeds 100, 101, 102, 103)" in text
    # level3's tail: mean 38.0 ± 8.5 over 4 seeds; +6.0 paired over 3, interval from t(2)
    assert "| level3 | 4 | 38.0 ± 8.5 (+6.0 [+1.0, +11.0]) |" in text
    assert out.with_suffix(".png").stat().st_size > 0


def test_reported_seeds_are_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json"), "--sft", "s", "--data", "d",
         "--seeds", "100", "3"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2 and "0-4 are the reported seeds" in done.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow  # ~1 min: two grid points (2 RL steps each) trained in this process and in two workers
def test_points_in_worker_processes_give_the_rows_of_one_process(tmp_path, shoprules_dir):
    from agrl.experiments.runner import train_arm
    from agrl.experiments.shoprules import sft_arm
    from tests.test_pipeline import SMALL_RL, SMALL_SFT

    sft = tmp_path / "sft"
    train_arm(sft_arm(shoprules_dir, sft, seed=0), SMALL_SFT)
    rl = shlex.join([*SMALL_RL, "--max_steps", "2"])
    flags = ["--sft", str(sft), "--data", str(shoprules_dir), "--steps", "2", "--method", "agrl", "--merge", "0.5",
             "--point", f"a={rl}", "--point", f"b={rl} --learning_rate 1e-3"]  # fmt: skip
    tables = {}
    for jobs in (1, 2):
        out = tmp_path / f"grid{jobs}.json"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *flags, "--jobs", str(jobs), "--work", str(tmp_path / f"w{jobs}"),
             "--out", str(out)],
            # one thread in one process, or two shared out over two workers: one thread per point
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": str(jobs)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        tables[jobs] = json.loads(out.read_text())

    def timeless(table: dict) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "minutes"} for r in table["rows"]]

    assert [r["setting"] for r in tables[2]["rows"]] == ["sft", "constant", "a", "a@0.5", "b", "b@0.5"]
    assert timeless(tables[2]) == timeless(tables[1])
    assert tables[2]["rows"][2] != tables[2]["rows"][4]  # the points differ, so the test can fail
    assert tables[2]["rows"][2]["format_valid"] is not None


def test_the_constant_row_is_a_floor_not_a_point(shoprules_dir):
    from agrl.data.io import read_records

    dev = read_records(shoprules_dir / "dev.jsonl")
    floor = tune_dev.constant_scores(dev)
    assert floor["tail_solved"] == 0.0 and 0.2 < floor["natural_accuracy"] < 0.7
    assert floor["format_valid"] == 1.0
    # even a constant row that looked best would be neither chosen nor paired
    rows = [*ROWS, {"setting": "constant", "tail_solved": 0.9, "natural_accuracy": 0.99, "format_valid": 1.0}]
    assert tune_dev.choose(rows, min_tail=0.0, min_format=0.0)["setting"] != "constant"
    assert "constant" not in {r["setting"] for r in tune_dev.paired_rows(rows, "default")}


def test_points_that_would_share_a_folder_or_a_prompts_file_are_refused(tmp_path):
    def run(*points: str, jobs: str = "2") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json"), "--sft", "s", "--data", str(tmp_path),
             "--jobs", jobs, *(f for p in points for f in ("--point", p))],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip

    (tmp_path / "x.json").write_text(json.dumps({"rows": [{"setting": "sft"}, {"setting": "constant"}]}))
    (tmp_path / "dev.jsonl").write_text("")
    twice = run("a=", "a=--beta 0.1")
    assert twice.returncode == 2 and "--point a: named twice" in twice.stderr
    mixes = run("a=", "b=--rl_tail_share 0.3")
    assert mixes.returncode == 2 and "different prompt mixes (a, b)" in mixes.stderr
