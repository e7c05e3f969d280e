"""A team's own data, labels only (no annotations, no rules): SFT, AGRL with grade-hint replay,
predict, eval and serve, end to end on a small CSV, with the tiny model."""

from __future__ import annotations

import csv
import json

import httpx

from agrl.configs import config_path
from agrl.data.io import read_records
from agrl.predict import run_predict
from agrl.reasoning import lenient_label
from agrl.serve import create_app
from agrl.stats import label_metrics
from agrl.train.config import AGRLConfig, AgrlSFTConfig, load_config
from agrl.train.grpo import run_grpo
from agrl.train.sft import run_sft
from tests.helpers import serving

TINY = ["--tiny_hidden", "32", "--tiny_layers", "1", "--tiny_heads", "2", "--tiny_intermediate", "64"]
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--logging_steps", "1"]
# (query, product title, brand, grade): what a relevance team exports from its judging tool.
ROWS = [
    ("running shoes", "Trail Running Shoes for Men", "Salomon", 4),
    ("running shoes", "Running Socks 6 Pack", "Nike", 2),
    ("running shoes", "Leather Office Shoes", "Clarks", 3),
    ("running shoes", "Garden Hose 50 ft", "Flexzilla", 1),
    ("usb c cable", "USB-C to USB-C Cable 2 m", "Anker", 4),
    ("usb c cable", "Micro USB Cable 1 m", "Amazon Basics", 3),
    ("usb c cable", "USB C Wall Charger", "Anker", 2),
    ("usb c cable", "Scented Candle", "Yankee", 1),
    ("steel kettle", "Stainless Steel Electric Kettle 1.7 L", "Cosori", 4),
    ("steel kettle", "Glass Electric Kettle", "Mueller", 3),
    ("steel kettle", "Kettle Descaler Tablets", "Urnex", 2),
    ("steel kettle", "Yoga Mat", "Gaiam", 1),
]


def _write_csv(path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "query", "product_title", "product_brand", "label"])
        for i, (query, title, brand, label) in enumerate(ROWS):
            writer.writerow([f"t{i}", query, title, brand, label])


def test_label_only_csv_trains_with_grade_hints_and_is_judged_and_served(tmp_path):
    data = tmp_path / "team.csv"
    _write_csv(data)
    sft = tmp_path / "sft"
    run_sft(
        load_config(
            AgrlSFTConfig,
            config_path("sft_tiny.yaml"),
            [
                "--train_file",
                str(data),
                "--output_dir",
                str(sft),
                "--reasoning_format",
                "label_first",
                "--max_steps",
                "40",
                "--per_device_train_batch_size",
                "12",
                "--learning_rate",
                "3e-3",
                *TINY,
                *QUIET,
            ],
        )
    )
    agrl = tmp_path / "agrl"
    run_grpo(
        load_config(
            AGRLConfig,
            config_path("agrl_tiny.yaml"),
            [
                "--model_name_or_path",
                str(sft),
                "--train_file",
                str(data),
                "--output_dir",
                str(agrl),
                "--reasoning_format",
                "label_first",
                "--guidance_mode",
                "hint",
                "--guidance_start_level",
                "1",
                "--replay_k",
                "2",
                "--per_device_train_batch_size",
                "8",
                "--num_generations",
                "4",
                "--max_completion_length",
                "24",
                "--max_steps",
                "3",
                "--seed",
                "0",
                *QUIET,
            ],
        )
    )
    history = json.loads((agrl / "trainer_state.json").read_text())["log_history"]
    logged = [h for h in history if "replay/no_guidance" in h]
    assert logged, "the AGRL trainer logs its replay counters"
    # Labels alone are enough ground truth for grade hints: every stuck group can be guided.
    assert all(h["replay/no_guidance"] == 0 for h in logged)
    assert json.loads((agrl / "agrl.json").read_text())["reasoning_format"] == "label_first"

    out = tmp_path / "predictions.jsonl"
    assert run_predict(str(agrl), data, out, batch_size=4, early_stop=True)["predictions"] == len(ROWS)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(len(ROWS))]
    for r in rows:  # early stop: nothing after the answer
        assert "</answer>" not in r["completion"] or r["completion"].rstrip().endswith("</answer>")
    gold = [r["label"] for r in read_records(data)]
    metrics = label_metrics(gold, [lenient_label(r["completion"]) for r in rows])
    assert metrics["n"] == len(ROWS) and 0.0 <= metrics["macro_f1"] <= 1.0

    with serving(create_app(str(agrl), max_batch=4)) as url:
        response = httpx.post(
            f"{url}/judge",
            json={
                "query": "running shoes",
                "products": [{"title": "Trail Running Shoes", "brand": "Salomon"}],
            },
            timeout=60,
        )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert set(result) >= {"label", "text"}
