"""Keep what `agrl reproduce --resume` or `agrl esci --resume` needs from a run folder in git, so
another machine can finish it.

A full `agrl reproduce` (2 SFT warm starts, 5 seeds x 6 arms) takes longer on 2 cores than one working
session, and a fresh checkout holds no ignored run folder. This lists (or, with `--add`, force-adds)
the smallest set of files from which `--resume` continues the run where it stopped:

- each warm start's SFT model (the final folder's files, no checkpoints or optimizer state) and its
  gate, once its evaluation is finished: the RL arms of the seeds still to run start from it;
- each finished arm's evaluation metrics (every split) and its `trainer_state.json` (the training
  curves of the report). Predictions stay behind (about 0.5 MiB per arm): no resumed step reads them.

The data is not kept: `agrl reproduce` regenerates it from its seed (the generator is deterministic).
An arm that was killed mid-way is trained again from its start.

An `agrl esci --work` folder (it has `stages/`): every finished stage's JSON (grades, run facts,
CV scores), each judged arm's `trainer_state.json` (steps and curves), and the files of the SmolLM2
SFT model once its stage is finished (the RL arms of the seeds still to run start from it). Other
models stay behind: no later stage reads them. Run it with `--work results/esci/runs` to keep it.

    python scripts/keep_resume_state.py results/reproduce [--add]
    python scripts/keep_resume_state.py results/esci/runs [--add]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from agrl.experiments.shoprules import EVAL_SPLITS

MODEL_FILES = ("*.json", "*.jinja", "*.safetensors", "*.txt", "*.model")
SFT_MODEL = "smollm2_sft"  # agrl esci's warm start of the RL arms (work/models/smollm2_sft)


def finished(eval_dir: Path) -> bool:
    return all((eval_dir / f"{split}.metrics.json").is_file() for split in EVAL_SPLITS)


def esci_resume_state(work: Path) -> list[Path]:
    """The files of `work` (an `agrl esci --work` folder) that `--resume` reads back."""
    keep = sorted((work / "stages").glob("*.json"))
    for stage in keep:
        model = json.loads(stage.read_text("utf-8")).get("run", {}).get("path")
        if model is None:
            continue
        if Path(model).name == SFT_MODEL:  # the model the RL arms start from
            keep += sorted(f for pattern in MODEL_FILES for f in (work / "models" / SFT_MODEL).glob(pattern))
        elif (work / "models" / Path(model).name / "trainer_state.json").is_file():
            keep.append(work / "models" / Path(model).name / "trainer_state.json")
    return sorted(set(keep))


def resume_state(out: Path) -> list[Path]:
    """The files of `out` (an `agrl reproduce --out` folder, or an `agrl esci --work` folder) that
    `--resume` reads back."""
    if (out / "stages").is_dir():
        return esci_resume_state(out)
    runs = out / "runs"
    keep: list[Path] = []
    for work in [runs, *sorted(runs.glob("warm*"))]:
        if not (work / "eval").is_dir():
            continue
        for eval_dir in sorted(p for p in (work / "eval").iterdir() if p.is_dir() and finished(p)):
            keep += sorted(eval_dir.glob("*.metrics.json"))
            model = work / "models" / eval_dir.name
            if eval_dir.name == "sft":
                keep += sorted(f for pattern in MODEL_FILES for f in model.glob(pattern))
            elif (model / "trainer_state.json").is_file():
                keep.append(model / "trainer_state.json")
        if (work / "eval" / "gate.json").is_file():
            keep.append(work / "eval" / "gate.json")
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder given to agrl reproduce --out or agrl esci --work")
    parser.add_argument("--add", action="store_true", help="git add -f the files (they are ignored)")
    args = parser.parse_args(argv)
    files = resume_state(args.out)
    if not files:
        raise SystemExit(f"{args.out}: no finished warm start or arm to keep")
    size = sum(f.stat().st_size for f in files)
    for f in files:
        print(f)
    print(f"{len(files)} files, {size / 2**20:.1f} MiB")
    if args.add:
        subprocess.run(["git", "add", "-f", "--", *map(str, files)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
