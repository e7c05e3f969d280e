"""The annotator's word lists, read from the YAML files beside this module (one per reader).

Keeping them as data lets a team extend a list (a brand that is also a common word, a compound product
type of its catalogue) without touching the reading logic, and keeps each reader's code short.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def _file(reader: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(f"lexicon/{reader}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):  # pragma: no cover - guards edits of the shipped files
        raise ValueError(f"agrl/data/annotate/lexicon/{reader}.yaml: expected a mapping of word lists")
    return data


def entry(reader: str, name: str) -> Any:
    """The list or mapping `name` of `lexicon/<reader>.yaml`, as written (order kept)."""
    data = _file(reader)
    if name not in data:  # pragma: no cover - guards edits of the shipped files
        raise KeyError(f"agrl/data/annotate/lexicon/{reader}.yaml has no entry {name!r}")
    return data[name]


def words(reader: str, name: str) -> frozenset[str]:
    """A word list of `lexicon/<reader>.yaml` as a set."""
    return frozenset(str(w) for w in entry(reader, name))
