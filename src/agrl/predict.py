"""`agrl predict` as a batch job: batched, resumable, output format by extension, nothing half-written.

Completions stream batch by batch into `<out>.partial` (JSONL, flushed and synced after every
batch); when every record is done they are written to `out` in its format (.jsonl, .csv or
.parquet) atomically (:func:`agrl.data.io.atomic_write`), and the partial file goes. `resume=True`
keeps the rows already in `out` and in the partial file (a line cut by a kill is dropped), rewrites
the partial file from them atomically too, and judges only the other ids, so a killed run loses at
most the batch in flight and never writes an id twice.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from agrl.data.io import DataError, atomic_write, jsonl_line, read_rows, write_jsonl

if TYPE_CHECKING:  # transformers and the rulebook load with the model, not at import
    from transformers import PreTrainedTokenizerBase

    from agrl.rules import Rulebook

FORMATS = (".jsonl", ".csv", ".parquet")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _existing(out: Path) -> list[dict]:
    """Rows already done: those of a finished `out`, then the complete lines of the partial file
    (the caller rewrites the partial file from these, which drops a line cut by a kill)."""
    rows: list[dict] = []
    if out.exists():
        rows += [row for _, row in read_rows(out) if isinstance(row, dict)]
    partial = partial_path(out)
    if partial.exists():
        text = partial.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a kill mid-line leaves a cut last line
        for number, line in enumerate(complete.splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(
                    partial, number, None, "not a JSON row (remove the file to start over)"
                ) from None
    seen, unique = set(), []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or row.get("id") is None:
            where = partial if partial.exists() else out
            raise DataError(
                where, None, "id", f"row {number} of what was done has no id (remove the file to start over)"
            )
        if str(row.get("id")) not in seen:
            seen.add(str(row.get("id")))
            unique.append({"id": str(row["id"]), "completion": row.get("completion")})
    return unique


def _write(out: Path, rows: Sequence[dict]) -> None:
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        write_jsonl(out, rows)
        return
    import pyarrow as pa

    table = pa.Table.from_pylist(
        [{"id": r["id"], "completion": r["completion"]} for r in rows],
        schema=pa.schema([("id", pa.string()), ("completion", pa.string())]),
    )
    with atomic_write(out, "wb") as handle:
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, handle)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, handle)


def by_prompt_length(
    records: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    system_prompt: bool = False,
    rulebook: Rulebook | None = None,
) -> tuple[list[dict], list[list[int]]]:
    """`records` shortest prompt first (stable), with their encoded prompts in the same order, so
    that every batch holds similar lengths and nothing is encoded twice.

    `generate_completions` sorts within one call, but predict calls it once per batch so that it
    can checkpoint each one: without a job-wide order a batch pads to its longest prompt. The
    written output goes back to input order, and resume works by id, so the order is free.
    """
    from agrl.models.generate import encode_prompts

    prompts = encode_prompts(tokenizer, records, system_prompt, rulebook)
    order = sorted(range(len(records)), key=lambda i: len(prompts[i]))
    return [records[i] for i in order], [prompts[i] for i in order]


def run_predict(
    model: str,
    data: str | Path,
    out: str | Path,
    batch_size: int = 64,
    max_new_tokens: int = 128,
    resume: bool = False,
    system_prompt: bool | None = None,
    early_stop: bool = False,
    dtype: str = "fp32",
) -> dict:
    from agrl.contract import load_contract
    from agrl.data.load import load_records
    from agrl.models import load_model, torch_dtype
    from agrl.models.generate import generate_completions

    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {out}: unsupported output type {out.suffix!r} (use {', '.join(FORMATS)})")
    if Path(data).resolve() == out.resolve():
        raise ValueError(
            f"--out {out} is the input file: predictions would replace the data (choose another --out)"
        )
    records = load_records(data, require_label=False)  # fail on bad input before loading a model
    if not records:
        raise DataError(data, None, None, "no records to judge")
    contract = load_contract(model)
    contract.check(str(model), system_prompt=system_prompt)
    done = _existing(out) if resume else []
    done_ids = {r["id"] for r in done}
    todo = [r for r in records if r["id"] not in done_ids]
    partial = partial_path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: no folder {out.parent} to write into")
    loaded = (
        load_model(model, torch_dtype(dtype)) if todo else None
    )  # before any file: a missing model leaves nothing behind
    # Atomically: truncating in place would lose the done rows to a kill before they are rewritten.
    write_jsonl(partial, done)
    if loaded is not None:
        model_, tokenizer = loaded
        todo, prompts = by_prompt_length(todo, tokenizer, contract.system_prompt, contract.prompt_rulebook())
        # On a terminal a live bar; in a log file a line every 30 s (tqdm's disable=None would hide it).
        bar = tqdm(total=len(todo), desc="predict", mininterval=0.1 if sys.stderr.isatty() else 30.0)
        with open(partial, "a", encoding="utf-8") as handle:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                texts = generate_completions(
                    model_,
                    tokenizer,
                    batch,
                    batch_size=batch_size,
                    max_new_tokens=max_new_tokens,
                    system_prompt=contract.system_prompt,
                    rulebook=contract.prompt_rulebook(),
                    progress=False,
                    stop_after_answer=early_stop,
                    prompts=prompts[start : start + batch_size],
                )
                handle.write(
                    "".join(jsonl_line({"id": r["id"], "completion": t[0]}) for r, t in zip(batch, texts))
                )
                handle.flush()
                os.fsync(handle.fileno())
                bar.update(len(batch))
        bar.close()
    rows = {str(r["id"]): r for r in map(json.loads, partial.read_text(encoding="utf-8").splitlines())}
    ordered = [rows[r["id"]] for r in records if r["id"] in rows]
    _write(out, ordered)
    partial.unlink()
    return {
        "out": str(out),
        "predictions": len(ordered),
        "resumed": len(done_ids & {r["id"] for r in records}),
    }
