"""The prompt contract a saved model carries: `agrl.json` beside its weights.

Training, evaluation and serving must prompt a model identically (reasoning format, system prompt,
rulebook summary in the prompt) and read its output with the same rulebook and label map. Every
model folder agrl saves holds this file; `predict`, `serve` and `reproduce`'s evaluation read it, and
a command-line flag that contradicts it is an error rather than a silently different prompt.
Folders without the file (older agrl, foreign models) get today's defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from agrl import __version__
from agrl.data.io import atomic_write_text
from agrl.reasoning import FORMATS
from agrl.rules import Rulebook, RulebookError, parse_rulebook
from agrl.schema import DEFAULT_LABEL_MAP

CONTRACT_FILE = "agrl.json"


def _default_rulebook_yaml() -> str:
    return resources.files("agrl.rules").joinpath("default.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptContract:
    reasoning_format: str = "think_first"
    system_prompt: bool = False
    rulebook_in_prompt: bool = False
    rulebook_yaml: str = field(default_factory=_default_rulebook_yaml, repr=False)
    label_map: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LABEL_MAP))
    agrl_version: str = __version__

    @property
    def rulebook(self) -> Rulebook:
        return parse_rulebook(yaml.safe_load(self.rulebook_yaml), f"{CONTRACT_FILE} rulebook")

    def prompt_rulebook(self) -> Rulebook | None:
        """The rulebook whose summary goes into the system prompt, or None."""
        return self.rulebook if self.rulebook_in_prompt else None

    def check(self, source: str, **flags: object) -> None:
        """Raise if a given flag (not None) says something else than the contract."""
        for name, value in flags.items():
            if value is not None and value != getattr(self, name):
                raise ValueError(
                    f"{source}: --{name} {value!r} contradicts the model's {CONTRACT_FILE} "
                    f"({name}: {getattr(self, name)!r}); the model was trained with the latter"
                )


def contract_from_args(args) -> PromptContract:
    """The contract of a training run (its AgrlArguments)."""
    text = Path(args.rulebook).read_text(encoding="utf-8") if args.rulebook else _default_rulebook_yaml()
    return PromptContract(
        args.reasoning_format, bool(args.system_prompt), bool(args.rulebook_in_prompt), text
    )


def save_contract(folder: str | Path, contract: PromptContract) -> None:
    atomic_write_text(
        Path(folder) / CONTRACT_FILE, json.dumps(asdict(contract), indent=2, sort_keys=True) + "\n"
    )


def load_contract(folder: str | Path) -> PromptContract:
    """The folder's contract; defaults when it has none. Errors name the file and the field."""
    path = Path(folder) / CONTRACT_FILE
    if not path.is_file():
        return PromptContract()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the prompt contract: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    known = set(PromptContract.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}")
    contract = PromptContract(**data)
    if contract.reasoning_format not in FORMATS:
        raise ValueError(
            f"{path}: field `reasoning_format`: expected one of {sorted(FORMATS)}, "
            f"got {contract.reasoning_format!r}"
        )
    for name in ("system_prompt", "rulebook_in_prompt"):
        if not isinstance(getattr(contract, name), bool):
            raise ValueError(f"{path}: field `{name}`: expected true or false")
    try:
        contract.rulebook  # noqa: B018 - validate now, not at the first request
    except RulebookError as exc:
        raise ValueError(f"{path}: field `rulebook_yaml`: {exc}") from exc
    return contract
