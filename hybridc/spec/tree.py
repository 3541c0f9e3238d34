"""Positioned YAML trees: the front end's input. Every node knows where it came from.

The tree is JSON-like (mappings with string keys, sequences, scalars) and immutable. Scalars
carry their resolved value (YAML 1.2 core schema: ``1:4`` stays a string, ``2e-4`` is a float,
``yes`` is a string) plus the raw text and quoting style, so expression fields can point at a
column *inside* a scalar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import Location


@dataclass(frozen=True)
class Scalar:
    loc: Location
    value: Any  # str | int | float | bool | None
    raw: str = ""
    style: str = ""  # "" plain, "'" or '"' quoted, "|" or ">" block
    single_line: bool = True

    def loc_at(self, offset: int) -> Location:
        """Location of character ``offset`` of the scalar's value (exact for one-line scalars)."""
        if not self.single_line or self.style in ("|", ">"):
            return self.loc
        return self.loc.shifted(offset + (1 if self.style in ("'", '"') else 0))

    def to_python(self) -> Any:
        return self.value


@dataclass(frozen=True)
class Mapping:
    loc: Location
    items: tuple[tuple[Scalar, "Node"], ...] = field(default_factory=tuple)

    def keys(self) -> list[str]:
        return [k.value for k, _ in self.items]

    def get(self, key: str) -> "Node | None":
        for k, v in self.items:
            if k.value == key:
                return v
        return None

    def key_node(self, key: str) -> Scalar | None:
        for k, _ in self.items:
            if k.value == key:
                return k
        return None

    def __iter__(self) -> Iterator[tuple[Scalar, "Node"]]:
        return iter(self.items)

    def to_python(self) -> dict[str, Any]:
        return {k.value: v.to_python() for k, v in self.items}


@dataclass(frozen=True)
class Sequence:
    loc: Location
    items: tuple["Node", ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator["Node"]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_python(self) -> list[Any]:
        return [v.to_python() for v in self.items]


Node = Union[Scalar, Mapping, Sequence]


def find(root: Node, path: tuple[Any, ...]) -> Node | None:
    """The node at a JSON path (keys and indexes), or None."""
    node: Node | None = root
    for part in path:
        if isinstance(node, Mapping) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, Sequence) and isinstance(part, int) and 0 <= part < len(node):
            node = node.items[part]
        else:
            return None
    return node


def describe(value: Any) -> str:
    """A short human name of a value's YAML type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, Sequence)):
        return "a list"
    if isinstance(value, (dict, Mapping)):
        return "a mapping"
    return type(value).__name__
