"""agrl's shipped training configs (YAML, package data; `configs/` in a checkout links here)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def config_path(name: str) -> Path:
    """The path of a shipped config by file name (`agrl_tiny.yaml`)."""
    folder = resources.files(__name__)
    packaged = folder.joinpath(name)
    if not packaged.is_file():
        known = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise FileNotFoundError(
            f"--config {name}: no such file here, and not one of agrl's shipped configs ({', '.join(known)})"
        )
    return Path(str(packaged))
