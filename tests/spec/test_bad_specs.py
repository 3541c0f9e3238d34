"""The bad-spec corpus (tests/bad_specs/): every malformed or wrong spec is a located error, never a crash.

Each ``NN-name.yaml`` has an entry in ``tests/bad_specs/expected.yaml``: the line, column and a fragment of
the message (and optionally of the hint) of the first error by position, or a list of errors (``exactly:
true`` in one of them: no other error may be reported). For every
case ``hybridc validate`` must exit 2, print that ``FILE:LINE:COL: error: ...`` line, print no traceback and
write nothing; ``hybridc fmt --write`` must leave the file byte-identical. A few cases also go through
``hybridc compile`` and through a real ``python -m hybridc`` process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import SpecError
from hybridc.spec.load import MAX_BYTES, parse_text

CORPUS = Path(__file__).resolve().parent.parent / "bad_specs"
EXPECTED: dict[str, dict | list[dict]] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
CASES = sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml")
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.*?)(?: \(hint: (?P<hint>.*)\))?$")

# a handful that also run as a real process, and a few through `hybridc compile`
SUBPROCESS = ["05-tab-indent.yaml", "13-billion-laughs.yaml", "15-non-utf8.yaml", "16-control-character.yaml",
              "52-huge-integer.yaml", "81-expr-bad-escape.yaml", "96-missing-local-path.yaml",
              "101-hub-model-not-found.yaml"]
COMPILE = ["14-recursive-alias.yaml", "53-colon-ranges.yaml", "86-range-out-of-model.yaml",
           "95-heads-do-not-divide-width.yaml", "106-alphas-row-sum.yaml", "110-programmed-missing.yaml",
           "114-data-file-missing.yaml"]


def snapshot() -> dict[str, tuple[int, int]]:
    """Every file and directory under the corpus with its size and modification time."""
    return {str(p.relative_to(CORPUS)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(CORPUS.rglob("*"))}


def expected(name: str) -> list[dict]:
    entry = EXPECTED[name]
    return entry if isinstance(entry, list) else [entry]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def errors(output: str, path: str) -> list[dict]:
    """The ``FILE:LINE:COL: error:`` lines of ``output`` about ``path``, parsed."""
    found = []
    for line in output.splitlines():
        m = ERROR_LINE.match(line)
        if m and m["file"] == path:
            found.append(m.groupdict())
    return found


def check_errors(output: str, path: str, name: str) -> None:
    assert "Traceback" not in output, output
    got = errors(output, path)
    assert got, f"no located error for {name}:\n{output}"
    want = expected(name)
    for i, exp in enumerate(want):
        # the first expected error is the first reported (errors are sorted by position); the others follow
        candidates = [got[0]] if i == 0 else got
        match = [g for g in candidates if (int(g["line"]), int(g["col"])) == (exp["line"], exp["col"])
                 and exp["message"] in g["message"] and exp.get("hint", "") in (g["hint"] or "")]
        assert match, f"{name}: expected {exp}, got:\n{output}"
    if any(exp.get("exactly") for exp in want):  # these and no other errors (none follows from another)
        assert len(got) == len(want), f"{name}: expected only {want}, got:\n{output}"


def test_the_corpus_is_complete() -> None:
    assert len(CASES) >= 80
    assert sorted(EXPECTED) == CASES, "every case needs an entry in expected.yaml, and every entry a case"
    numbers = [name.split("-")[0] for name in CASES]
    assert all(n.isdigit() for n in numbers) and len(set(numbers)) == len(numbers), "NN-short-name.yaml, NN unique"
    for name in CASES:
        for exp in expected(name):
            assert set(exp) <= {"line", "col", "message", "hint", "exactly"} and exp["line"] >= 1 and exp["col"] >= 1, name


@pytest.mark.parametrize("name", CASES)
def test_validate_reports_the_located_error(name: str) -> None:
    path = str(CORPUS / name)
    before = snapshot()
    result = run("validate", path)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    check_errors(result.output, path, name)
    assert re.search(r"^\d+ errors? found$", result.output, re.M)
    assert snapshot() == before, "validate wrote into the corpus"


@pytest.mark.parametrize("name", CASES)
def test_fmt_write_leaves_the_file_alone(name: str) -> None:
    path = CORPUS / name
    content = path.read_bytes()
    before = snapshot()
    result = run("fmt", "--write", str(path))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # 2: it does not parse; 0: it parses (only semantic errors) and is already canonical
    assert result.exit_code in (0, 2), result.output
    assert "rewritten" not in result.output
    assert path.read_bytes() == content
    assert snapshot() == before


@pytest.mark.parametrize("name", COMPILE)
def test_compile_reports_the_same_error(name: str, tmp_path: Path) -> None:
    path = str(CORPUS / name)
    result = run("compile", path, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    check_errors(result.output, path, name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", SUBPROCESS)
def test_real_process(name: str) -> None:
    path = str(CORPUS / name)
    before = snapshot()
    done = subprocess.run([sys.executable, "-m", "hybridc", "validate", path], capture_output=True, text=True,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    check_errors(done.stderr, path, name)
    assert snapshot() == before


def test_validate_many_files_at_once() -> None:
    paths = [str(CORPUS / name) for name in CASES]
    result = run("validate", *paths)
    assert result.exit_code == 2
    assert len(re.findall(r"^\d+ errors? found$", result.output, re.M)) == len(CASES)
    for path, name in zip(paths, CASES):
        check_errors(result.output, path, name)


def test_a_10_mb_spec_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "w", encoding="utf-8") as f:
        f.write("hybridc: 1\nname: big\ncomponents: {x: {init: {family: mamba}}}\n")
        line = "# " + "x" * 1022 + "\n"
        for _ in range(10 * 1024):
            f.write(line)
    assert big.stat().st_size > 10_000_000
    result = run("validate", str(big))
    assert result.exit_code == 2 and "Traceback" not in result.output
    (err,) = errors(result.output, str(big))
    assert (err["line"], err["col"]) == ("1", "1") and "specs are limited to 1 MB" in err["message"]
    result = run("fmt", "--write", str(big))
    assert result.exit_code == 2 and "limited to 1 MB" in result.output
    # the same limit for text that is not read from a file
    with pytest.raises(SpecError) as info:
        parse_text(b"a: 1\n" + b"#" * MAX_BYTES, file="mem.yaml")
    assert "limited" in info.value.diagnostics[0].message


def test_a_spec_that_is_a_device_is_not_read_forever() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    result = run("validate", "/dev/zero")  # size 0 by stat, endless when read
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "/dev/zero:1:1: error:" in result.output
