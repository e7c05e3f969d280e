"""A miniature `agrl demo`: tiny data, a 1-layer model, a few SFT and RL steps, the full report."""

import json

from agrl.pipeline import run_demo

SMALL_SFT = ["--max_steps", "4", "--tiny_hidden", "32", "--tiny_layers", "1", "--tiny_heads", "2",
             "--tiny_intermediate", "64", "--report_to", "none"]
SMALL_RL = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", "24", "--logging_steps", "1", "--report_to", "none", "--eval_max_samples", "4"]


def test_miniature_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(out, seed=0, overrides=SMALL_RL, sft_overrides=SMALL_SFT, eval_max_samples=8, eval_every=1)
    for method in ("sft", "grpo", "agrl"):
        assert (out / "models" / method / "config.json").exists()
        for split in ("b_eval", "w_eval", "hard"):
            stat = summary[method][split]["accuracy"]
            assert stat["n"] == 1 and 0.0 <= stat["mean"] <= 1.0 and stat["std"] == 0.0
            for metric in ("macro_f1", "rule_adherence"):
                assert metric in summary[method][split]
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    report = (out / "report.md").read_text()
    assert "| AGRL |" in report and "training_curves.png" in report
    for png in ("accuracy.png", "per_rule.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "models" / "agrl" / "trainer_state.json").read_text())["log_history"]
    assert any("replay/triggered_frac" in h for h in history)
    assert any("eval_hard_accuracy" in h for h in history)
