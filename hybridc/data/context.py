"""What a data-source builder gets: the source with every argument filled, the task, the tokenizer,
the seed, the spec's directory and the location of the data expression (for located errors)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, Location, SpecError
from ..spec.model import DataSource, Task
from ..spec.signatures import DATA_SOURCES
from .dataset import Split
from .tokenizer import Tokenizer


def canonical_source(source: DataSource) -> DataSource:
    """``source`` with every parameter of its signature named, in signature order (defaults filled)."""
    sig = DATA_SOURCES[source.name]
    given = dict(source.args)
    unknown = set(given) - {p.name for p in sig.params}
    if unknown:
        raise ValueError(f"{source.name}() has no parameter {', '.join(sorted(unknown))}")
    args = []
    for p in sig.params:
        if p.name in given:
            args.append((p.name, _coerce(p.type, given[p.name])))
        elif p.required:
            raise ValueError(f"{source.name}() needs '{p.name}'")
        else:
            args.append((p.name, p.default))
    return DataSource(source.name, tuple(args))


def _coerce(kind: str, value: Any) -> Any:
    """Numbers in their parameter's type, so that ``valid=0`` and ``valid=0.0`` seed the same splits."""
    if value is None or isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, (int, float)):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def short_form(source: DataSource) -> str:
    """The source as a user would write it: required arguments positionally, then the non-default ones,
    e.g. ``text(data/corpus.txt, block=256)``."""
    from ..spec.expr import render_value

    sig = DATA_SOURCES[source.name]
    parts = []
    for p in sig.params:
        value = source.arg(p.name, p.default)
        if p.required:
            parts.append(render_value(value))
        elif value != p.default:
            parts.append(f"{p.name}={render_value(value)}")
    return f"{source.name}({', '.join(parts)})"


@dataclass(frozen=True)
class SourceContext:
    source: DataSource  # canonical: every parameter named
    task: Task
    tokenizer: Tokenizer | None
    seed: int
    base_dir: Path
    location: Location

    def arg(self, name: str) -> Any:
        return self.source.arg(name)

    @property
    def short(self) -> str:
        return short_form(self.source)

    def error(self, message: str, hint: str | None = None) -> SpecError:
        """A ``SpecError`` located at the data expression (raise it)."""
        return SpecError([Diagnostic(self.location, message, hint)])

    def require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise self.error(
                f"{self.source.name}() data needs a tokenizer, but the spec's tokenizer has none "
                "(a component built with init: has no tokenizer)",
                "set tokenizer: bytes, or point tokenizer at a tokenizer directory or hf:<id>",
            )
        return self.tokenizer


@dataclass(frozen=True)
class Examples:
    """Every example of a source, before splitting; ``unit`` names them in descriptions ("sequences");
    ``files``: the local files they were read from, in reading order (none for synthetic or Hub data)."""

    data: Split
    unit: str = "sequences"
    files: tuple[Path, ...] = ()
