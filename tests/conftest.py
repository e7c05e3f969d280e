"""Shared fixtures: one tiny ShopRules benchmark per test session, the shared ESCI sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from agrl.data.esci import EXAMPLES_FILE
from agrl.data.shoprules import SPLITS, generate

ROOT = Path(__file__).resolve().parents[1]
# The shared ESCI sample (official parquet layout) beside the checkout: ../shared/data/esci-us-sample.
ESCI_SAMPLE = ROOT.parent / "shared" / "data" / "esci-us-sample"

# Tiny models gain nothing from several threads, and OpenMP spin-waiting on a busy 2-core machine
# makes each step up to 100x slower. Child processes (CLI tests) inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def esci_sample() -> Path:
    """The ESCI sample folder; the test is skipped where the shared data is not mounted."""
    if not (ESCI_SAMPLE / EXAMPLES_FILE).is_file():
        pytest.skip(f"ESCI sample not found: no {EXAMPLES_FILE} in {ESCI_SAMPLE} (shared data not mounted)")
    return ESCI_SAMPLE


@pytest.fixture(scope="session")
def shoprules_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shoprules_tiny")
    generate(out, seed=0, scale="tiny", progress=False)
    return out


@pytest.fixture(scope="session")
def shoprules(shoprules_dir) -> dict[str, list[dict]]:
    """{split: records} of the tiny benchmark (seed 0)."""
    return {
        split: [
            json.loads(line) for line in (shoprules_dir / f"{split}.jsonl").read_text("utf-8").splitlines()
        ]
        for split in SPLITS
    }
