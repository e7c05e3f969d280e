"""Weight interpolation between a fine-tuned judge and the model it started from.

    agrl merge --base runs/models/sft --model runs/models/agrl --alpha 0.8 --out runs/models/agrl_a0.8

The merged weights are `(1 - alpha) * base + alpha * tuned`, tensor by tensor: WiSE-FT's
weight-space ensemble (Wortsman et al., 2022) and WARP's interpolation towards the initialisation
for RL-tuned policies (Ramé et al., 2024). On a judge RL-tuned from its SFT start, `alpha` trades what
RL learnt (the tail) against what it drifted away from (the head) without training again; pick it on
`dev` (`scripts/tune_dev.py --merge`), never on a reported split.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agrl.contract import load_contract, save_contract

MERGE_FILE = "merge.json"


def interpolate(
    base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """`(1 - alpha) * base + alpha * tuned` for every floating tensor (in float32, returned in the
    tuned tensor's dtype); integer buffers must be equal and are kept. Raises on any other difference
    in names or shapes: interpolating two different architectures is meaningless."""
    if not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: expected a weight in [0, 1] (0: the base model, 1: the tuned one)")
    if set(base) != set(tuned):
        only = sorted(set(base) ^ set(tuned))
        raise ValueError(f"the models' weights differ in name: {only[:5]} (different architectures)")
    merged = {}
    for name, t in tuned.items():
        b = base[name]
        if b.shape != t.shape:
            raise ValueError(f"weight {name}: shape {tuple(b.shape)} in the base, {tuple(t.shape)} tuned")
        if t.is_floating_point():
            merged[name] = torch.lerp(b.float(), t.float(), alpha).to(t.dtype)
        elif torch.equal(b, t):
            merged[name] = t.clone()
        else:
            raise ValueError(f"weight {name}: a non-floating tensor that differs between the models")
    return merged


def _same_contract(base: Path, tuned: Path) -> None:
    """Both folders must prompt and read the model the same way, or the merge serves neither."""
    a, b = asdict(load_contract(base)), asdict(load_contract(tuned))
    for name in a:
        if name != "agrl_version" and a[name] != b[name]:
            raise ValueError(
                f"{base} and {tuned}: prompt contracts differ in `{name}`; they cannot be merged"
            )


def merge_models(base: str | Path, tuned: str | Path, alpha: float, out: str | Path) -> Path:
    """Write the interpolated model to `out` (a new folder) with the tuned model's tokenizer and prompt
    contract, and `merge.json` saying what it was made of. Nothing is left behind on failure."""
    base, tuned, out = Path(base), Path(tuned), Path(out)
    for name, folder in (("--base", base), ("--model", tuned)):
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{name} {folder}: not a model folder (no config.json)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out}: exists and is not empty; choose a new folder")
    if out.resolve() in (base.resolve(), tuned.resolve()):
        raise ValueError(f"--out {out}: is one of the merged models")
    _same_contract(base, tuned)
    # the tuned folder's own tokenizer, unchanged (load_model would set inference-time padding)
    tokenizer = AutoTokenizer.from_pretrained(str(tuned))
    model = AutoModelForCausalLM.from_pretrained(str(tuned), dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model.load_state_dict(interpolate(reference.state_dict(), model.state_dict(), alpha))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_contract(tmp, load_contract(tuned))
        record = {"base": str(base), "tuned": str(tuned), "alpha": alpha}
        (tmp / MERGE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # the empty folder checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
