"""The expression grammar: parsing, canonical rendering, error offsets, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.spec.expr import Atom, Call, ExprSyntaxError, ListExpr, Ranges, parse_expr, render


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("split(2)", "split(2)"),
        ("0..6,6..12", "0..6, 6..12"),
        ("fixed([[.5,.5],[0.2, 0.8]])", "fixed([[0.5, 0.5], [0.2, 0.8]])"),
        ("programmed(out/mad-results.json)", "programmed(out/mad-results.json)"),
        ("darts(lr=0.01, alternate=true)", "darts(lr=0.01, alternate=true)"),
        ("text( corpus.txt , block = 512 )", "text(corpus.txt, block=512)"),
        ("mad(in-context-recall)", "mad(in-context-recall)"),
        ("causal-lm", "causal-lm"),
        ('text("my file.txt")', 'text("my file.txt")'),
        ("x(hf:org/name@v1)", "x(hf:org/name@v1)"),
        ("f(2e-4)", "f(0.0002)"),
        ("f(a,)", "f(a)"),
    ],
)
def test_parse_and_render(text, canonical):
    assert render(parse_expr(text)) == canonical
    assert render(parse_expr(canonical)) == canonical


def test_ast_shapes_and_offsets():
    e = parse_expr("fixed([[1, 0], [0, 1]])")
    assert isinstance(e, Call) and e.name == "fixed"
    rows = e.args[0]
    assert isinstance(rows, ListExpr) and rows.offset == 6
    assert rows.items[1].offset == 15 and rows.items[1].items[1].offset == 19
    r = parse_expr("0..6, 6..12")
    assert isinstance(r, Ranges) and [x.offset for x in r.items] == [0, 6]
    assert parse_expr("search") == Atom("search", "word", 0)


@pytest.mark.parametrize(
    "text, offset, fragment",
    [("1:4", 1, "unexpected character ':'"), ("split(2", 7, "ends too early"), ("0..6 6..12", 5, "unexpected"),
     ("f(a=)", 4, "unexpected"), ("", 0, "empty"), ("a b", 2, "unexpected")],
)
def test_syntax_errors_point_at_the_problem(text, offset, fragment):
    with pytest.raises(ExprSyntaxError) as info:
        parse_expr(text)
    assert info.value.offset == offset and fragment in info.value.message


def test_colon_range_gets_a_hint():
    with pytest.raises(ExprSyntaxError) as info:
        parse_expr("0:6")
    assert "0..6" in info.value.hint


def _strip_offsets(e):
    if isinstance(e, Atom):
        return ("atom", e.value, e.kind)
    if isinstance(e, ListExpr):
        return ("list", tuple(_strip_offsets(i) for i in e.items))
    if isinstance(e, Ranges):
        return ("ranges", tuple((r.start, r.stop) for r in e.items))
    return ("call", e.name, tuple(_strip_offsets(a) for a in e.args), tuple((k, _strip_offsets(v)) for k, v, _ in e.kwargs))


words = st.from_regex(r"[a-z][a-z0-9_\-]{0,6}", fullmatch=True).filter(lambda w: w not in ("true", "false"))
values = st.recursive(
    st.one_of(st.integers(-1000, 1000).map(str), st.floats(0.001, 100).map(repr), words),
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=6,
)
calls = st.builds(
    lambda name, pos, kw: f"{name}({', '.join(pos + [f'{k}={v}' for k, v in kw])})",
    words, st.lists(values, max_size=3), st.lists(st.tuples(words, values), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(calls)
def test_render_is_a_fixed_point(text):
    e = parse_expr(text)
    again = parse_expr(render(e))
    assert _strip_offsets(again) == _strip_offsets(e)
    assert render(again) == render(e)


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_a_located_syntax_error(text):
    try:
        parse_expr(text)
    except ExprSyntaxError as err:
        assert 0 <= err.offset <= len(text)
