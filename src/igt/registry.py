"""Name -> factory registries, so configs stay plain data and a new part is one decorated class."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from igt.errors import IgtError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (backbones, methods, datasets).

    Args:
        kind: What is registered, used in error messages (``"backbone"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise IgtError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
