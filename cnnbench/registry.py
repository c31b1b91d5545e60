"""A small generic registry: `@MODELS.register` a function, `MODELS.get(name)` finds it again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cnnbench.errors import UnknownNameError, did_you_mean

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to factories; the decorated function's name is its registered name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, fn: T | None = None, *, name: str | None = None):
        """Register `fn` under `name` (default: the function's name, `_` kept)."""

        def add(f: T) -> T:
            key = name or f.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = f
            return f

        return add(fn) if fn is not None else add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        hint = did_you_mean(name, self._entries, n=3)
        return f"unknown {self.kind} {name!r}{hint} known: {', '.join(sorted(self._entries))}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
