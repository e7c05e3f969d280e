"""Shared fixtures: one tiny ShopRules benchmark per test session."""

from __future__ import annotations

import json

import pytest

from agrl.data.shoprules import SPLITS, generate


@pytest.fixture(scope="session")
def shoprules_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shoprules_tiny")
    generate(out, seed=0, scale="tiny", progress=False)
    return out


@pytest.fixture(scope="session")
def shoprules(shoprules_dir) -> dict[str, list[dict]]:
    """{split: records} of the tiny benchmark (seed 0)."""
    return {
        split: [json.loads(line) for line in (shoprules_dir / f"{split}.jsonl").read_text("utf-8").splitlines()]
        for split in SPLITS
    }
