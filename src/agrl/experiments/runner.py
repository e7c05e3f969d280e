"""Train one *arm* of an experiment: a shipped config, field overrides, a typed `RunInfo` back.

An arm is declared, not scripted: `Arm("agrl", "grpo", "agrl_tiny.yaml", {"max_steps": 200})`.
Its config is parsed once from the YAML (TRL's parser: CPU defaults < YAML < the user's command-line
flags) and the experiment's fields are applied with `dataclasses.replace`; a flag the user gave on the
command line still wins over the experiment's value.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig

from agrl.configs import config_path
from agrl.data.io import write_json
from agrl.registry import Registry
from agrl.train.config import AGRLConfig, AgrlDPOConfig, AgrlSFTConfig, load_config
from agrl.train.dpo import run_dpo
from agrl.train.grpo import run_grpo
from agrl.train.sft import run_sft

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    """A training stage: its config class and the function that trains from such a config."""

    config_class: type
    run: Callable[..., str]


METHODS = Registry("training method")
METHODS.add("sft", Method(AgrlSFTConfig, run_sft))
METHODS.add("grpo", Method(AGRLConfig, run_grpo))  # GRPO, GRPO-PR, replay-only and AGRL: agrl.train.grpo
METHODS.add("dpo", Method(AgrlDPOConfig, run_dpo))


@dataclass(frozen=True)
class Arm:
    """A training run of an experiment: a name, a method, a shipped config (or a path) and field values."""

    name: str
    method: str
    config: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def with_fields(self, **values: Any) -> Arm:
        return dataclasses.replace(self, fields={**self.fields, **values})


@dataclass(frozen=True)
class RunInfo:
    """What a finished run left: its folder, optimizer steps, the trainer's loop time (no load, save or
    evaluation), the wall time of the whole call, and the trainer's log history."""

    name: str
    path: Path
    steps: int
    train_runtime: float | None
    seconds: float
    log_history: list[dict]

    @classmethod
    def read(cls, name: str, path: Path, seconds: float = 0.0) -> RunInfo:
        """The run in `path` from its `trainer_state.json` (no steps and no history when absent)."""
        state_file = Path(path) / "trainer_state.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        history = state.get("log_history", [])
        runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), None)
        return cls(name, Path(path), int(state.get("global_step", 0)), runtime, seconds, history)

    def summary(self) -> dict:
        """JSON-ready, without the log history."""
        return {"path": str(self.path), "steps": self.steps, "train_runtime": self.train_runtime,
                "seconds": self.seconds}  # fmt: skip


def cli_fields(argv: Sequence[str]) -> list[str]:
    """The config fields a command line sets (`--key value` or `--key=value`)."""
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--")]


def replace_config(config: Any, **values: Any) -> Any:
    """`dataclasses.replace` for TRL configs: GRPOConfig derives `generation_batch_size` from the batch
    size in `__post_init__` and refuses it beside `steps_per_generation`, so it is derived again."""
    if isinstance(config, GRPOConfig) and "generation_batch_size" not in values:
        values["generation_batch_size"] = None
    return dataclasses.replace(config, **values)


def arm_config(arm: Arm, cli: Sequence[str] = ()) -> Any:
    """The arm's parsed config: YAML and the user's flags, then the arm's fields (the user's flags win)."""
    method = METHODS.lookup(arm.method)
    path = Path(arm.config) if Path(arm.config).is_file() else config_path(arm.config)
    parsed = load_config(method.config_class, path, list(cli))
    user = set(cli_fields(cli))
    return replace_config(parsed, **{k: v for k, v in arm.fields.items() if k not in user})


# Where a run writes or resumes from does not decide its result: a moved folder is the same run.
UNRECORDED_FIELDS = ("output_dir", "resume_from_checkpoint", "logging_dir")


def arm_record(arm: Arm, cli: Sequence[str] = ()) -> dict:
    """What decides an arm's result, as JSON: its method, its config file's values, the experiment's
    fields and the user's flags. Kept beside its evaluation so that a resumed experiment can tell a
    finished arm from one whose config changed since (comments in the YAML do not count)."""
    path = Path(arm.config) if Path(arm.config).is_file() else config_path(arm.config)
    values = yaml.safe_load(path.read_text("utf-8")) or {}
    record = {
        "method": arm.method,
        "config": {k: v for k, v in values.items() if k not in UNRECORDED_FIELDS},
        "fields": {k: v for k, v in arm.fields.items() if k not in UNRECORDED_FIELDS},
        "cli": list(cli),
    }
    return json.loads(json.dumps(record, default=str))  # the form it has when read back


def changed_keys(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The keys (`config.learning_rate`, `cli`, ...) whose values differ between two `arm_record`s."""
    keys = []
    for part in sorted(set(recorded) | set(current)):
        old, new = recorded.get(part), current.get(part)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            keys += [f"{part}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            keys.append(part)
    return keys


def train_arm(arm: Arm, cli: Sequence[str] = (), **run_kwargs: Any) -> RunInfo:
    """Train `arm` (its `output_dir` field names the folder) and read back what the run left."""
    config = arm_config(arm, cli)
    started = time.monotonic()
    path = METHODS.lookup(arm.method).run(config, **run_kwargs)
    return RunInfo.read(arm.name, Path(path), time.monotonic() - started)


def from_checkpoint(arm: Arm, resume: bool) -> Arm:
    """With `resume`, an arm whose run was killed after a checkpoint continues from its latest one
    (model, optimizer, scheduler, RNG and replay state) instead of from its start."""
    folder = Path(arm.fields["output_dir"])
    last = get_last_checkpoint(str(folder)) if resume and folder.is_dir() else None
    if last is None:
        return arm
    log.info("%s: resuming from %s", arm.name, last)
    return arm.with_fields(resume_from_checkpoint=last)


class StageMissing(Exception):
    """A read-only run reached a stage that no earlier run finished."""


class Stages:
    """The finished stages of an experiment, one JSON file each under `folder` (written whole, so a
    killed run leaves none half-written); with `resume`, a finished stage is read back, not redone;
    `read_only` (a report of what is finished) computes nothing: `run` raises StageMissing instead."""

    def __init__(
        self, folder: Path, resume: bool, origin: Mapping[str, Any] | None = None, read_only: bool = False
    ):
        self.folder, self.resume, self.read_only = Path(folder), resume or read_only, read_only
        self.origin = dict(origin or {})  # the code that computed each stage (provenance), stored with it
        self.read_back: list[str] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Any:
        """The stage's stored value when resuming and it finished, else None."""
        path = self.path(name)
        if not (self.resume and path.is_file()):
            return None
        self.read_back.append(name)
        log.info("stage %s: read back from %s", name, path)
        return json.loads(path.read_text("utf-8"))

    def run(self, name: str, compute: Callable[[], dict]) -> dict:
        """The stage's stored value (resuming), else `compute()` stored; read-only: StageMissing."""
        done = self.get(name)
        if done is not None:
            return done
        if self.read_only:
            raise StageMissing(name)
        return self.put(name, compute())

    def put(self, name: str, value: dict) -> dict:
        write_json(self.path(name), {**value, "computed_at": self.origin} if self.origin else value)
        return value

    def origins(self) -> dict[str, Any]:
        """{stage: the provenance it was computed at} for every stage file that records one."""
        out = {}
        for path in sorted(self.folder.glob("*.json")):
            origin = json.loads(path.read_text("utf-8")).get("computed_at")
            if origin:
                out[path.stem] = origin
        return out
