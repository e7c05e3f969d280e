"""Miniature `agrl demo` and `agrl reproduce`: tiny data, a 1-layer model, a few steps, the full report."""

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agrl.experiments.budgets import ComparisonBudget
from agrl.experiments.runner import Arm, arm_record, changed_keys
from agrl.experiments.shoprules import (
    ARMS,
    combined_gate,
    from_checkpoint,
    run_comparison,
    run_demo,
    target_checks,
    warm_start_of,
)

SMALL_SFT = [
    "--max_steps",
    "4",
    "--tiny_hidden",
    "32",
    "--tiny_layers",
    "1",
    "--tiny_heads",
    "2",
    "--tiny_intermediate",
    "64",
    "--report_to",
    "none",
]
SMALL_RL = [
    "--per_device_train_batch_size",
    "8",
    "--num_generations",
    "4",
    "--max_completion_length",
    "24",
    "--logging_steps",
    "1",
    "--report_to",
    "none",
]
SMALL = ComparisonBudget(
    rl_steps=2,
    prompts_per_step=2,
    eval_n=8,
    curve_every=1,
    curve_n=4,
    dpo_steps=2,
    gate_prompts=4,
    gate_samples=2,
)


@pytest.mark.slow  # ~30 s: a miniature `agrl demo`
def test_miniature_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(
        out, seed=0, rl_cli=SMALL_RL, sft_cli=SMALL_SFT, budget=replace(SMALL, merge_alpha=0.5)
    )
    for method in ("sft", "grpo_pr", "agrl"):
        stats = summary["methods"][method]
        for key in (
            "tail/tail_solved",
            "w_eval/head_accuracy",
            "b_eval/accuracy",
            "b_eval/grounded_adherence",
        ):
            stat = stats[key]
            assert stat["n"] == 1 and 0.0 <= stat["mean"] <= 1.0 and stat["sd"] == 0.0, (method, key)
    assert (out / "runs" / "models" / "agrl_s0" / "config.json").exists()
    # merge_alpha: AGRL also evaluated merged with its SFT start (the control is not a demo arm)
    assert set(summary["methods"]) == {"sft", "grpo_pr", "agrl", "agrl@0.5"}
    merged = out / "runs" / "models" / "agrl@0.5_s0"
    assert json.loads((merged / "merge.json").read_text())["alpha"] == 0.5
    assert summary["methods"]["agrl@0.5"]["w_eval/accuracy"]["n"] == 1
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert {c["key"] for c in summary["gate"]["checks"]} == {"head_accuracy", "tail_solved", "stuck_rate"}
    report = (out / "report.md").read_text()
    assert report.startswith("# agrl demo") and "Gate before RL" in report.splitlines()[2]
    assert "| AGRL |" in report and "training_curves.png" in report
    assert "| AGRL merged with SFT (alpha 0.5) |" in report
    for png in ("accuracy.png", "per_rule.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "runs" / "models" / "agrl_s0" / "trainer_state.json").read_text())[
        "log_history"
    ]
    assert any("replay/triggered_frac" in h for h in history)
    assert [h["step"] for h in history if "eval_tail_tail_solved" in h] == [0, 1, 2]  # the learning curve
    assert [h["step"] for h in history if "eval_head_accuracy" in h] == [0, 1, 2]  # head on the same steps
    head_curve = summary["curves"]["agrl"]
    assert set(head_curve["head_final"]) == {"0"} and 0.0 <= head_curve["head_min"]["0"] <= 1.0
    assert "Per deciding rule (w_eval" in report and "What each judge states on each gold rule" in report
    assert "grounded given solved, head (w_eval)" in report
    # the demo is held to its own time target, not the reproduce's
    assert any(t.startswith("run time") and "target ≤ 8 min" in t for t in summary["targets"])


def test_the_run_time_target_is_the_callers_and_a_resumed_run_states_none():
    assert target_checks({}, minutes=8.4, max_minutes=8) == [
        "run time 8.4 min (target ≤ 8 min on 2 cores): MISSED"
    ]
    assert target_checks({}, minutes=7.9, max_minutes=8) == [
        "run time 7.9 min (target ≤ 8 min on 2 cores): met"
    ]
    assert target_checks({}, minutes=119.0) == ["run time 119.0 min (target ≤ 120 min on 2 cores): met"]
    assert target_checks({}, minutes=None) == []


@pytest.mark.slow  # ~40 s: a miniature `agrl reproduce`
def test_miniature_reproduce_pairs_every_arm_with_grpo(tmp_path):
    out = tmp_path / "reproduce"
    # seed 0 from warm start 0, seed 1 from warm start 1; AGRL and the control also merged with SFT
    budget = replace(SMALL, warm_starts=2, merge_alpha=0.7)
    summary = run_comparison(out, "mini", "test", [0, 1], "tiny", budget, ARMS, SMALL_RL, SMALL_SFT)
    assert set(summary["methods"]) == {"sft", *ARMS, "agrl@0.7", "sft_gold@0.7"}
    assert summary["vs_sft"]["agrl@0.7"]["w_eval/head_accuracy"]["n"] == 2
    for arm in ARMS:
        stat = summary["methods"][arm]["tail/tail_solved"]
        assert stat["n"] == 2 and set(stat["per_seed"]) == {"0", "1"}
        lo, hi = stat["ci95"]
        assert 0.0 <= lo <= stat["mean"] <= hi <= 1.0 or stat["mean"] == lo == hi
    diff = summary["vs_grpo"]["agrl"]["tail/tail_solved"]
    per_seed = summary["methods"]["agrl"]["tail/tail_solved"]["per_seed"]
    grpo = summary["methods"]["grpo"]["tail/tail_solved"]["per_seed"]
    assert diff["per_seed"] == {s: per_seed[s] - grpo[s] for s in ("0", "1")}
    # the headline pairs AGRL with GRPO-PR (same reward, no replay); SFT and the control are references too
    grpo_pr = summary["methods"]["grpo_pr"]["tail/accuracy"]["per_seed"]
    agrl_acc = summary["methods"]["agrl"]["tail/accuracy"]["per_seed"]
    headline = summary["vs_grpo_pr"]["agrl"]["tail/accuracy"]
    assert headline["per_seed"] == pytest.approx({s: agrl_acc[s] - grpo_pr[s] for s in ("0", "1")})
    assert len(headline["seed_ci95"]) == 2 and {"vs_grpo", "vs_sft", "vs_sft_gold"} <= set(summary)
    stuck = summary["gate"]["stuck_per_rule"]
    assert (
        stuck
        and set(stuck) <= {"R03", "R09", "R10", "R01", "R11"}
        and all(0 <= v <= 1 for v in stuck.values())
    )
    # every arm of a seed saw the same prompts in the same order
    prompts = [
        json.loads(line)["id"]
        for line in (out / "runs" / "warm1" / "data" / "rl_s1.jsonl").read_text().splitlines()
    ]
    assert len(prompts) == SMALL.rl_steps * SMALL.prompts_per_step
    assert summary["targets"] and all(("met" in t) or ("MISSED" in t) for t in summary["targets"])
    report = (out / "report.md").read_text()
    assert "Paired differences against GRPO-PR" in report and "Paired differences against GRPO (" in report
    assert "SFT-on-gold (control)" in report and "Stuck per tail rule" in report
    # two warm starts: two data draws and two SFT models, each seed paired with its own
    assert summary["notes"]["warm_start_of_seed"] == {"0": 0, "1": 1}
    assert (out / "runs" / "warm1" / "models" / "sft" / "config.json").exists()
    assert (out / "runs" / "warm1" / "data" / "sft.jsonl").read_bytes() != (
        out / "runs" / "data" / "sft.jsonl"
    ).read_bytes()
    assert set(summary["gate"]["per_warm_start"]) == {"0", "1"} and "- warm start 1:" in report
    # what replay did is in summary.json, per seed, for the arms that replay (not for GRPO-PR)
    triggered = summary["replay"]["agrl"]["replay/triggered_frac"]
    assert triggered["n"] == 2 and 0.0 <= triggered["mean"] <= 1.0 and "grpo_pr" not in summary["replay"]
    assert "## Replay" in report and set(summary["stability"]) >= {"agrl", "grpo_pr"}
    assert "## Tail solved per rule (tail_novel" in report
    assert summary["methods"]["agrl"]["tail_novel/tail_solved"]["n"] == 2
    assert (out / "runs" / "warm1" / "models" / "agrl_s1").exists()
    assert not (
        out / "runs" / "models" / "agrl_s1"
    ).exists()  # a resumed run reads every finished arm back: the same statistics, nothing trained again
    models = {p: p.stat().st_mtime for p in (out / "runs").glob("**/models/*/model.safetensors")}
    again = run_comparison(
        out, "mini", "test", [0, 1], "tiny", budget, ARMS, SMALL_RL, SMALL_SFT, resume=True
    )
    assert json.loads(json.dumps(again["methods"])) == json.loads(json.dumps(summary["methods"]))
    assert again["curves"] == summary["curves"]
    assert {p: p.stat().st_mtime for p in models} == models
    # its report says that its minutes are not the comparison's, and it checks no time target
    assert "resumed: this run trained only" in (out / "report.md").read_text()
    assert not any(t.startswith("run time") for t in again["targets"])
    # an arm whose config changed since its run is trained again, not read back
    recorded = out / "runs" / "eval" / "grpo_s0" / "arm.json"
    record = json.loads(recorded.read_text())
    assert record["method"] == "grpo" and "output_dir" not in record["fields"]
    record["config"]["learning_rate"] = 0.123
    recorded.write_text(json.dumps(record))
    grpo_model = out / "runs" / "models" / "grpo_s0" / "model.safetensors"
    changed = run_comparison(
        out, "mini", "test", [0, 1], "tiny", budget, ("grpo", "agrl"), SMALL_RL, SMALL_SFT, resume=True
    )
    assert "grpo_s0" not in changed["notes"]["resumed"] and "grpo_s1" in changed["notes"]["resumed"]
    assert grpo_model.stat().st_mtime != models[grpo_model]
    agrl_model = out / "runs" / "models" / "agrl_s0" / "model.safetensors"
    assert agrl_model.stat().st_mtime == models[agrl_model]
    assert json.loads(recorded.read_text())["config"]["learning_rate"] != 0.123


def test_changed_keys_name_what_differs_between_two_arm_records():
    old = {"method": "grpo", "config": {"learning_rate": 1e-4, "beta": 0.0}, "fields": {"seed": 0}, "cli": []}
    new = {**old, "config": {"learning_rate": 5e-5, "beta": 0.0, "max_steps": 9}, "cli": ["--beta", "0.1"]}
    assert changed_keys(old, old) == []
    assert changed_keys(old, new) == ["cli", "config.learning_rate", "config.max_steps"]


def test_an_arm_record_reads_the_config_values_not_its_comments(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("# lr from a grid\nlearning_rate: 0.0001\noutput_dir: a\n")
    arm = Arm("x", "grpo", str(config), {"output_dir": "runs/x", "seed": 3})
    record = arm_record(arm, ["--beta", "0.1"])
    config.write_text("# another comment\nlearning_rate: 0.0001\noutput_dir: b\n")
    assert arm_record(arm, ["--beta", "0.1"]) == record
    assert record == {"method": "grpo", "config": {"learning_rate": 0.0001}, "fields": {"seed": 3},
                      "cli": ["--beta", "0.1"]}  # fmt: skip


@given(n=st.integers(1, 12), data=st.data())
def test_warm_starts_take_the_seeds_in_contiguous_blocks(n, data):
    warm_starts = data.draw(st.integers(1, n))
    seeds = list(range(10, 10 + n))
    of = warm_start_of(seeds, warm_starts)
    order = [of[s] for s in seeds]
    assert order == sorted(order) and set(order) == set(range(warm_starts))
    sizes = [order.count(w) for w in range(warm_starts)]
    assert max(sizes) - min(sizes) <= 1  # as even as the count allows


def test_warm_starts_beyond_the_seeds_are_an_error():
    with pytest.raises(ValueError, match="warm_starts 3"):
        warm_start_of([0, 1], 3)


def test_combined_gate_averages_values_and_passes_only_when_every_warm_start_passes():
    def gate(stuck: float, per_rule: dict) -> dict:
        ok = stuck >= 0.4
        check = {"name": "stuck", "key": "stuck_rate", "op": ">=", "threshold": 0.4, "value": stuck, "ok": ok}
        return {"passed": ok, "checks": [check], "stuck_per_rule": per_rule}

    one = gate(0.5, {"R03": 0.5})
    assert combined_gate({0: one}) is one
    both = combined_gate({0: one, 1: gate(0.3, {"R03": 0.1, "R10": 0.6})})
    assert both["checks"][0]["value"] == pytest.approx(0.4) and not both["passed"]
    assert both["stuck_per_rule"] == pytest.approx({"R03": 0.3, "R10": 0.6})
    assert set(both["per_warm_start"]) == {"0", "1"}


def test_a_killed_arm_resumes_from_its_latest_checkpoint(tmp_path):
    out = tmp_path / "agrl_s0"
    arm = Arm("agrl", "grpo", "agrl_tiny.yaml", {"output_dir": str(out)})
    assert from_checkpoint(arm, resume=True) is arm  # nothing there yet: from the start
    for step in (50, 100):
        (out / f"checkpoint-{step}").mkdir(parents=True)
    assert from_checkpoint(arm, resume=True).fields["resume_from_checkpoint"] == str(out / "checkpoint-100")
    assert from_checkpoint(arm, resume=False) is arm  # a fresh run never picks up an old checkpoint


def test_replay_summary_averages_each_counter_over_the_steps_that_log_it():
    from agrl.report import replay_summary

    histories = {
        "agrl": {
            0: [{"replay/triggered_frac": 0.5}, {"replay/triggered_frac": 0.0, "replay/guided_success": 1.0}],
            1: [{"replay/triggered_frac": 0.25}],
        },
        "grpo_pr": {0: [{"reward": 1.0}]},
    }
    out = replay_summary(histories)
    assert set(out) == {"agrl"}
    assert out["agrl"]["replay/triggered_frac"]["per_seed"] == {"0": 0.25, "1": 0.25}
    assert out["agrl"]["replay/guided_success"] == {"per_seed": {"0": 1.0}, "mean": 1.0, "sd": 0.0, "n": 1}


@pytest.mark.slow  # ~40 s: the same miniature comparison in this process and in two workers
def test_arms_in_worker_processes_give_the_results_of_one_process(tmp_path):
    import torch

    from agrl.experiments.parallel import threads_per_job

    budget = replace(SMALL, warm_starts=2, merge_alpha=0.5)
    arms = ("agrl",)  # the control's SFT method runs in the workers too: the warm starts
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(2))  # the workers' thread count: a unit's result depends on it
    try:
        one = run_comparison(
            tmp_path / "one", "mini", "test", [0, 1], "tiny", budget, arms, SMALL_RL, SMALL_SFT
        )
    finally:
        torch.set_num_threads(threads)
    two = run_comparison(
        tmp_path / "two", "mini", "test", [0, 1], "tiny", replace(budget, jobs=2), arms, SMALL_RL, SMALL_SFT
    )
    assert set(two["methods"]) == {"sft", "agrl", "agrl@0.5"}
    assert json.loads(json.dumps(two["methods"])) == json.loads(json.dumps(one["methods"]))
    assert two["curves"] == one["curves"] and two["gate"] == one["gate"]
    assert two["notes"]["budget"]["jobs"] == 2 and "seed 1 agrl_minutes" in two["notes"]
    for model in ("sft", "agrl_s0"):  # the same weights, byte for byte
        assert (tmp_path / "two" / "runs" / "models" / model / "model.safetensors").read_bytes() == (
            tmp_path / "one" / "runs" / "models" / model / "model.safetensors"
        ).read_bytes()


def test_a_failing_unit_stops_the_run_with_its_error():
    from agrl.experiments.parallel import map_jobs, worker_pool

    assert list(map_jobs(abs, [-3, 2, -1], None)) == [(0, 3), (1, 2), (2, 1)]
    with pytest.raises(ValueError, match="jobs: expected at least 1"), worker_pool(0):
        pass
    with worker_pool(2) as pool:
        assert sorted(map_jobs(abs, [-3, 2, -1], pool)) == [(0, 3), (1, 2), (2, 1)]
        with pytest.raises(TypeError, match="bad operand type"):
            list(map_jobs(abs, [1, "x", 2], pool))
        # a unit is yielded when it finishes, not when the slowest one does (the workers are up by now)
        arrived = [(index, time.perf_counter()) for index, _ in map_jobs(time.sleep, [2.0, 0.0], pool)]
        assert [index for index, _ in arrived] == [1, 0]
        assert arrived[1][1] - arrived[0][1] > 1.0


def test_a_clean_tree_ignores_what_runs_write_under_results():
    from agrl.experiments.provenance import _code_changes

    status = " M results/reproduce/runs/eval/agrl_s0/tail.metrics.json\n D results/esci/report.md\n"
    assert _code_changes(status) == []
    assert _code_changes(status + " M src/agrl/rewards.py\nR  a.py -> src/b.py\n") == [
        "src/agrl/rewards.py",
        "src/b.py",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_run_that_started_them_is_killed(tmp_path):
    def running(pid: int) -> bool:  # a zombie has ended: only its parent has not collected it yet
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    script = tmp_path / "run.py"
    script.write_text(
        "import os, time\n"
        "from agrl.experiments.parallel import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    with worker_pool(2) as pool:\n"
        "        pool.submit(time.sleep, 600)\n"
        "        pool.submit(time.sleep, 600)\n"
        "        time.sleep(8)\n"
        "        print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "        os._exit(9)  # killed: no shutdown, no cleanup\n"
    )
    log = tmp_path / "run.log"  # not a pipe: live workers would hold it open
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, str(script)], stdout=handle, stderr=subprocess.DEVNULL, timeout=120
        )
    workers = [int(p) for p in log.read_text().split()]
    assert done.returncode == 9 and len(workers) == 2
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(running(p) for p in workers):
        time.sleep(0.5)
    assert [p for p in workers if running(p)] == []
