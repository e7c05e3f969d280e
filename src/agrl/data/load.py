"""Whatever `--data` may name: a record file (JSONL / CSV / Parquet) or an ESCI folder (official layout)."""

from __future__ import annotations

from pathlib import Path

from agrl.data.io import read_records


def load_records(path: str | Path, require_label: bool = True) -> list[dict]:
    """Records from a file, or from a folder in the ESCI parquet layout (labels E/S/C/I -> 4..1)."""
    path = Path(path)
    if path.is_dir():
        from agrl.data.esci import EXAMPLES_FILE, load_esci

        if not (path / EXAMPLES_FILE).is_file():
            raise FileNotFoundError(
                f"{path}: a folder given as data must hold the ESCI layout ({EXAMPLES_FILE})"
            )
        return load_esci(path)
    return read_records(path, require_label=require_label)
