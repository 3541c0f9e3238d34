"""Stage 1 of the front end: bytes -> positioned YAML tree (``tree.Node``), or located errors.

Guards against hostile input: size limit, node budget after alias expansion (billion laughs),
nesting depth, non-UTF-8 bytes, duplicate keys, multiple documents, custom tags, merge keys.
Plain scalars resolve by the YAML 1.2 core schema, not PyYAML's 1.1 rules.
"""

from __future__ import annotations

import math
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import Diagnostic, Location, SpecError
from .tree import Mapping, Node, Scalar, Sequence

MAX_BYTES = 1_000_000
MAX_NODES = 50_000
MAX_DEPTH = 64

_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")

_STR_TAG = "tag:yaml.org,2002:str"
_KNOWN_TAGS = {
    _STR_TAG,
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit resolvers: we resolve plain scalars ourselves (YAML 1.2)."""


_Loader.yaml_implicit_resolvers = {}


def resolve_plain(text: str):
    """The value of a plain scalar under the YAML 1.2 core schema."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts: no spec number is that large
            return float(text)
    if _OCT.fullmatch(text) or _HEX.fullmatch(text):
        value = int(text[2:], 8 if text[1] == "o" else 16)
        # as for decimals: a number past what Python prints as text is no spec number (and cannot be shown)
        return value if value.bit_length() <= 4000 else math.inf
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


@dataclass(frozen=True)
class Document:
    """A loaded spec file: its tree, its text and where it lives."""

    root: Node
    text: str
    file: str  # as shown in messages
    path: Path | None  # None for text not read from disk


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _offset_to_loc(file: str, data: bytes | str, offset: int) -> Location:
    before = data[:offset]
    newline = b"\n" if isinstance(before, bytes) else "\n"
    line = before.count(newline) + 1
    col = offset - (before.rfind(newline) + 1) + 1
    return Location(file, line, col)


_YAML_HINTS = (
    ("'\\t'", "YAML does not allow tabs for indentation; indent with spaces"),
    ("mapping values are not allowed", "quote a value that contains ': ', or fix the indentation"),
    ("found duplicate anchor", "give each anchor a different name"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("could not find expected ':'", "a key needs ':' after it; check the indentation"),
    ("did not find expected key", "check the indentation of this block"),
    ("did not find expected node content", "a value is missing; check for a stray '-' or ','"),
    ("found unexpected end of stream", "close the quote or bracket"),
    ("expected ',' or ']'", "close the list with ']' or separate items with ','"),
    ("expected ',' or '}'", "close the mapping with '}' or separate items with ','"),
)


def _yaml_error(file: str, err: yaml.YAMLError, text: str = "") -> Diagnostic:
    if isinstance(err, yaml.reader.ReaderError):
        char = chr(err.character) if isinstance(err.character, int) else str(err.character)
        return Diagnostic(
            _offset_to_loc(file, text, err.position) if text else Location(file, 1, 1),
            f"invalid character {char!r} (U+{ord(char[:1] or ' '):04X})",
            "specs must be printable UTF-8 text; remove the control character",
        )
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if "end of stream" in problem and getattr(err, "context_mark", None) is not None:
        mark = err.context_mark  # the quote or bracket left open, not the end of the file
    loc = _loc(file, mark) if mark is not None else Location(file, 1, 1)
    context = getattr(err, "context", None)
    message = f"invalid YAML: {problem}"
    if context and "recursive" not in problem:
        start = getattr(err, "context_mark", None)
        if start is not None and mark is not None and start.line != mark.line:  # where the open construct began
            context += f" that starts at line {start.line + 1}, column {start.column + 1}"
        message += f" ({context})"
    hint = next((h for needle, h in _YAML_HINTS if needle in problem), None)
    return Diagnostic(loc, message, hint)


class _Converter:
    """Turns PyYAML nodes into our tree, enforcing the budgets and collecting problems."""

    def __init__(self, file: str):
        self.file = file
        self.count = 0
        self.problems: list[Diagnostic] = []
        self.path: set[int] = set()  # ids of the nodes being converted (cycle detection)

    def convert(self, node: yaml.Node, depth: int = 0) -> Node:
        self.count += 1
        loc = _loc(self.file, node.start_mark)
        if self.count > MAX_NODES:
            raise SpecError([Diagnostic(loc, f"the spec expands to more than {MAX_NODES} YAML nodes",
                                        "anchors and aliases that multiply (a 'billion laughs') are not allowed")])
        if depth > MAX_DEPTH:
            raise SpecError([Diagnostic(loc, f"the spec nests deeper than {MAX_DEPTH} levels",
                                        "specs are shallow; check for runaway nesting")])
        if id(node) in self.path:
            raise SpecError([Diagnostic(loc, "recursive YAML alias: a value contains itself",
                                        "an alias (*name) may not refer to an enclosing anchor")])
        if node.tag not in _KNOWN_TAGS:
            self.problems.append(Diagnostic(loc, f"unsupported YAML tag {node.tag!r}",
                                            "remove the tag; specs use plain YAML values"))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        self.path.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc, depth)
            return Sequence(loc, tuple(self.convert(item, depth + 1) for item in node.value))
        finally:
            self.path.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, loc: Location) -> Scalar:
        text = node.value
        style = node.style or ""
        single = node.start_mark.line == node.end_mark.line
        if style == "" and node.tag in (_STR_TAG, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"):
            value = resolve_plain(text)
        else:
            value = text
        return Scalar(loc, value, text, style, single)

    def _mapping(self, node: yaml.MappingNode, loc: Location, depth: int) -> Mapping:
        items: list[tuple[Scalar, Node]] = []
        seen: dict[str, Location] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(self.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Diagnostic(key_loc, "keys must be plain names, not lists or mappings"))
                continue
            if key_node.tag not in _KNOWN_TAGS:
                self.problems.append(Diagnostic(key_loc, f"unsupported YAML tag {key_node.tag!r}",
                                                "remove the tag; specs use plain YAML values"))
                continue
            if key_node.value == "<<" and not key_node.style:
                self.problems.append(Diagnostic(key_loc, "YAML merge keys ('<<') are not supported",
                                                "write the keys out; anchors/aliases for whole values are fine"))
                continue
            key = Scalar(key_loc, key_node.value, key_node.value, key_node.style or "")
            if key.value in seen:
                first = seen[key.value]
                self.problems.append(Diagnostic(key_loc, f"duplicate key '{key.value}'",
                                                f"it is already set at line {first.line}; keep one"))
                continue
            seen[key.value] = key_loc
            self.count += 1
            items.append((key, self.convert(value_node, depth + 1)))
        return Mapping(loc, tuple(items))


def parse_text(text: str | bytes, file: str = "<spec>", path: Path | None = None) -> Document:
    """Parse spec text into a ``Document``; raises ``SpecError`` with located diagnostics."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError([_too_large(file, len(text))])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecError([Diagnostic(_offset_to_loc(file, text, err.start),
                                        f"the spec is not valid UTF-8 (byte 0x{text[err.start]:02x})",
                                        "save the file as UTF-8")]) from None
    if len(text) > MAX_BYTES:
        raise SpecError([_too_large(file, len(text))])
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        documents = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        raise SpecError([_yaml_error(file, err, text)]) from None
    except RecursionError:
        raise SpecError([Diagnostic(Location(file, 1, 1), "the spec nests too deeply to read",
                                    "specs are shallow; check for runaway nesting")]) from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise SpecError([Diagnostic(Location(file, 1, 1), "the spec is empty",
                                    "start from an example in specs/ or the README")])
    if len(documents) > 1:
        raise SpecError([Diagnostic(_loc(file, documents[1].start_mark), "the file holds more than one YAML document",
                                    "one spec per file; remove the '---' separator")])
    converter = _Converter(file)
    root = converter.convert(documents[0])
    if converter.problems:
        raise SpecError(converter.problems)
    return Document(root=root, text=text, file=file, path=path)


def _too_large(file: str, size: int) -> Diagnostic:
    return Diagnostic(Location(file, 1, 1), f"the spec is {size / 1e6:.1f} MB; specs are limited to {MAX_BYTES / 1e6:.0f} MB",
                      "a spec names models and data by path; it should not embed them")


def regular_file_bytes(path: str | Path, limit: int = MAX_BYTES) -> bytes | None:
    """The bytes of ``path`` (at most ``limit`` + 1) when it is a regular file, else None: a pipe or device
    is never opened (reading one could wait forever)."""
    try:
        if not stat.S_ISREG(Path(path).stat().st_mode):
            return None
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except (OSError, ValueError):
        return None


def load_file(path: str | Path) -> Document:
    """Read and parse a spec file. Missing/unreadable files are located errors too."""
    path = Path(path)
    file = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            raise SpecError([Diagnostic(Location(file, 1, 1), "this is not a regular file (a pipe, socket or device)",
                                        "pass the YAML file itself (reading a pipe could wait forever)")])
        size = info.st_size
        if size > MAX_BYTES:
            raise SpecError([_too_large(file, size)])
        with open(path, "rb") as f:  # at most one byte over the limit
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([Diagnostic(Location(file, 1, 1), "no such file", "check the path")]) from None
    except IsADirectoryError:
        raise SpecError([Diagnostic(Location(file, 1, 1), "this is a directory, not a spec file",
                                    "pass the YAML file")]) from None
    except OSError as err:
        raise SpecError([Diagnostic(Location(file, 1, 1), f"cannot read the spec: {err.strerror or err}")]) from None
    except ValueError as err:  # e.g. an embedded NUL in the path
        raise SpecError([Diagnostic(Location(file, 1, 1), f"invalid path: {err}", "check the path")]) from None
    return parse_text(data, file=file, path=path)
