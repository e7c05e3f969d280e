"""Where a result came from: the commit, whether the tree was clean, and the versions that ran it."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The distributions whose versions change what a run computes.
PACKAGES = (
    "agrl",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "numpy",
    "scipy",
    "scikit-learn",
)


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent
        )
    except OSError:
        return None


def _code_changes(porcelain: str) -> list[str]:
    """The changed paths of `git status --porcelain` output outside `results/`."""
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in porcelain.splitlines() if line.strip()]
    return [p for p in paths if not p.startswith("results/")]


def provenance() -> dict:
    """{commit, clean, versions, python}: `commit` is the bare sha (or "unknown" outside a checkout),
    `clean` False when tracked files differ from it (None when unknown). Files under `results/` do not
    count: they are what runs write, and a run that rewrites its own committed outputs (the evaluation
    files of `agrl reproduce`) still ran the committed code."""
    head = _git("rev-parse", "HEAD")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no") if commit != "unknown" else None
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": commit,
        "clean": None if status is None else not _code_changes(status.stdout),
        "versions": versions,
        "python": platform.python_version(),
    }
