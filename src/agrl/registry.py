"""Named extension points (reward components, guidance modes, off-policy weightings).

One mechanism for all of them: register a name once, look it up with an error that lists the known
names. Adding an extension is one decorated function in the module that owns the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict):
    def __init__(self, kind: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind

    def add(self, name: str, value: T) -> T:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = value
        return value

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` registers the function under `name`."""

        def register(fn: T) -> T:
            return self.add(name, fn)

        return register

    def lookup(self, name: str):
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}")
        return self[name]

    def copy(self) -> Registry:
        return Registry(self.kind, self)
