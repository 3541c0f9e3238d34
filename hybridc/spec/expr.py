"""Expression values of a spec, parsed by a Lark LALR grammar (``grammar.lark``) into a tiny AST.

Every node records ``offset``: the character offset of its first character in the expression text,
so a field interpreter can report errors at the exact column inside a YAML scalar.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Union

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError


@dataclass(frozen=True)
class Atom:
    """A number, a quoted string or a bare word (name, path, ``true``)."""

    value: Any
    kind: str  # "number" | "string" | "word"
    offset: int


@dataclass(frozen=True)
class ListExpr:
    items: tuple["Expr", ...]
    offset: int


@dataclass(frozen=True)
class Call:
    """``name(positional..., key=value...)``."""

    name: str
    args: tuple["Expr", ...]
    kwargs: tuple[tuple[str, "Expr", int], ...]  # (key, value, offset of key)
    offset: int


@dataclass(frozen=True)
class RangeExpr:
    start: int
    stop: int
    offset: int


@dataclass(frozen=True)
class Ranges:
    """``a..b, c..d, ...``: half-open layer ranges."""

    items: tuple[RangeExpr, ...]
    offset: int


Expr = Union[Atom, ListExpr, Call, Ranges]


class ExprSyntaxError(Exception):
    """A syntax error at ``offset`` in the expression text."""

    def __init__(self, message: str, offset: int, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


@cache
def _parser() -> Lark:
    grammar = resources.files("hybridc.spec").joinpath("grammar.lark").read_text()
    # No cache=True: lark would keep the parser as a pickle under a predictable name in the shared temporary
    # directory and load whatever stands there (another local user's file). Building it takes ~10-20 ms.
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _pos(token: Token) -> int:
    return token.start_pos or 0


MAX_DEPTH = 32  # brackets and calls inside each other
_MAX_DIGITS = 100  # digits of a layer index
MAX_INT = 2**63 - 1  # larger whole numbers are errors (they overflow floats and every count)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


def _unescape(text: str, offset: int) -> str:
    """Backslash escapes of a quoted string (\\n, \\t, \\", \\\\, \\xHH, \\uHHHH); other backslashes stay as
    written (a Windows path). ``offset``: where ``text`` starts, for errors."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        code = text[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in _HEX_WIDTH:
            width = _HEX_WIDTH[code]
            digits = text[i + 2:i + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits) \
                    or int(digits, 16) > 0x10FFFF:
                raise ExprSyntaxError(f"invalid escape '{text[i:i + 2 + width]}' in a quoted string", offset + i,
                                      f"write \\{code} and {width} hex digits, or \\\\ for a backslash")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _check_depth(text: str) -> None:
    """Reject runaway nesting before parsing (the tree transform is recursive)."""
    depth, quote, escaped = 0, None, False
    for i, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExprSyntaxError(f"the expression nests deeper than {MAX_DEPTH} levels", i,
                                      "expressions are short: a call, a list of rows, ranges")
        elif char in ")]":
            depth -= 1


@v_args(inline=True)
class _ToAst(Transformer):
    def number(self, tok: Token) -> Atom:
        text = str(tok)
        try:
            value: Any = int(text)
        except ValueError:
            value = float(text)
        if isinstance(value, int) and abs(value) > MAX_INT or isinstance(value, float) and math.isinf(value):
            raise ExprSyntaxError(f"the number {text[:12]}{'...' if len(text) > 12 else ''} is too large", _pos(tok),
                                  "use an ordinary number")
        return Atom(value, "number", _pos(tok))

    def string(self, tok: Token) -> Atom:
        text = str(tok)[1:-1]
        text = _unescape(text, _pos(tok) + 1) if "\\" in text else text
        return Atom(text, "string", _pos(tok))

    def word(self, tok: Token) -> Atom:
        return Atom(str(tok), "word", _pos(tok))

    def ranges(self, *toks: Token) -> Ranges:
        items = []
        for tok in toks:
            a, _, b = str(tok).partition("..")
            if max(len(a), len(b)) > _MAX_DIGITS:
                raise ExprSyntaxError(f"layer index {(a if len(a) > _MAX_DIGITS else b)[:12]}... is too large",
                                      _pos(tok), "layer indexes are small whole numbers")
            items.append(RangeExpr(int(a), int(b), _pos(tok)))
        return Ranges(tuple(items), items[0].offset)

    @v_args(meta=True)
    def list(self, meta, items) -> ListExpr:
        return ListExpr(tuple(i for i in items if i is not None), meta.start_pos)

    def posarg(self, value):
        return ("pos", value)

    def kwarg(self, key: Token, value):
        return ("kw", (str(key), value, _pos(key)))

    def args(self, *items):
        return [i for i in items if i is not None]

    def call(self, name: Token, args=None) -> Call:
        positional, keywords = [], []
        for kind, item in args or []:
            (positional if kind == "pos" else keywords).append(item)
        return Call(str(name), tuple(positional), tuple(keywords), _pos(name))


_TOKEN_NAMES = {
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "EQUAL": "'='",
    "NUMBER": "a number", "STRING": "a quoted string", "WORD": "a name", "RANGE": "a range a..b",
    "$END": "the end",
}


def _expected(names) -> str:
    shown = sorted({_TOKEN_NAMES.get(n, n) for n in names})
    return ", ".join(shown[:-1]) + (" or " if len(shown) > 1 else "") + shown[-1] if shown else "something else"


def parse_expr(text: str) -> Expr:
    """Parse an expression; raises ``ExprSyntaxError`` with the offset of the problem."""
    if not text.strip():
        raise ExprSyntaxError("empty expression", 0)
    _check_depth(text)
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as err:
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        hint = None
        if char == ":" and any(c.isdigit() for c in text[:err.pos_in_stream]):
            hint = "write layer ranges as start..stop, e.g. 0..6 (YAML 1.1 tools read 1:4 as the number 64)"
        raise ExprSyntaxError(f"unexpected character {char!r}", err.pos_in_stream, hint) from None
    except UnexpectedEOF as err:
        raise ExprSyntaxError(f"the expression ends too early (expected {_expected(err.expected)})",
                              len(text)) from None
    except UnexpectedToken as err:
        if err.token.type == "$END":
            raise ExprSyntaxError(f"the expression ends too early (expected {_expected(err.expected)})",
                                  len(text.rstrip())) from None
        raise ExprSyntaxError(f"unexpected {str(err.token)!r} (expected {_expected(err.expected)})",
                              _pos(err.token)) from None
    except UnexpectedInput as err:  # pragma: no cover - other lark errors
        raise ExprSyntaxError(str(err), getattr(err, "pos_in_stream", 0) or 0) from None
    try:
        ast = _ToAst().transform(tree)
        if isinstance(ast, Token):  # a lone terminal (lark inlines ?start)
            ast = _ToAst().word(ast)
    except VisitError as err:  # lark wraps what a rule raises
        if isinstance(err.orig_exc, ExprSyntaxError):
            raise err.orig_exc from None
        raise
    except RecursionError:  # not reached after _check_depth; kept as a guard
        raise ExprSyntaxError("the expression nests too deeply", 0) from None
    return ast


def render(expr: Expr) -> str:
    """Canonical text of an expression (single spaces after commas, no trailing commas)."""
    if isinstance(expr, Atom):
        return render_value(expr.value)
    if isinstance(expr, ListExpr):
        return "[" + ", ".join(render(i) for i in expr.items) + "]"
    if isinstance(expr, Ranges):
        return ", ".join(f"{r.start}..{r.stop}" for r in expr.items)
    args = [render(a) for a in expr.args] + [f"{k}={render(v)}" for k, v, _ in expr.kwargs]
    return f"{expr.name}({', '.join(args)})"


_WORDLIKE = None


def render_value(value: Any) -> str:
    """Canonical text of a Python value inside an expression."""
    global _WORDLIKE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value else "nan"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    if value is None:
        return "null"
    text = str(value)
    if _WORDLIKE is None:
        import re

        _WORDLIKE = re.compile(r"(\.{1,2}/|[A-Za-z_/~])[A-Za-z0-9_./:@~+\-]*")
    if _WORDLIKE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
