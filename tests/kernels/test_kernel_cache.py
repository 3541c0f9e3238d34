"""The kernel cache runs only what hybridc built for this user (hybridc/kernels/library.py).

Each case is a fresh process (a library, once loaded, stays loaded) with its own cache directory:
a library planted in a directory others can write is never loaded; a truncated library, one without the
kernels' symbols, and a FIFO under the library's name are rebuilt, not loaded, hung on or crashed on.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None and shutil.which("gcc") is None,
                                reason="needs a C compiler")

PROBE = textwrap.dedent("""\
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from hybridc.nn import kernels
        ok = kernels.available()
    print(json.dumps({"ok": ok, "warnings": [str(w.message) for w in caught], "reason": kernels.unavailable_reason()}))
    """)


def probe(cache: Path, **env: str) -> dict:
    import json

    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HYBRIDC_KERNEL_CACHE": str(cache), **env})
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # no SIGBUS (135), no crash
    return json.loads(done.stdout.strip().splitlines()[-1])


def library_name(cache: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "from hybridc.nn import kernels; print(kernels.library_name())"],
                          capture_output=True, text=True, env={**os.environ, "HYBRIDC_KERNEL_CACHE": str(cache)})
    return done.stdout.strip()


def compile_c(source: str, out: Path) -> None:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", str(src), "-o", str(out)], check=True)


@pytest.mark.slow  # a kernel rebuild or a fresh process: in .ci/run's long part
def test_a_library_planted_in_a_directory_others_can_write_is_never_loaded(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    marker = tmp_path / "constructor-ran"
    name = library_name(tmp_path / "elsewhere")
    planted = cache / name
    compile_c(f'#include <stdio.h>\n__attribute__((constructor)) static void run(void) {{ FILE *f = fopen("{marker}", '
              '"w"); if (f) fclose(f); }\n', planted)
    import hashlib

    (cache / (name + ".sha256")).write_text(hashlib.sha256(planted.read_bytes()).hexdigest() + "\n")
    cache.chmod(0o777)  # (a shared directory: anyone could have put this there)
    result = probe(cache)
    assert not marker.exists(), "a library from a directory others can write was loaded"
    assert result["ok"]  # built privately instead
    assert any("kernel cache is not used" in w and "writable by group and others" in w for w in result["warnings"])


def test_a_truncated_library_is_rebuilt_not_loaded(tmp_path):
    cache = tmp_path / "cache"
    assert probe(cache)["ok"]
    (library,) = cache.glob("*.so")
    library.write_bytes(library.read_bytes()[:4096])  # what a full disk or a killed copy leaves
    assert probe(cache)["ok"]
    assert library.stat().st_size > 4096


@pytest.mark.slow  # a kernel rebuild or a fresh process: in .ci/run's long part
def test_a_library_without_the_kernels_is_rebuilt(tmp_path):
    import hashlib

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    library = cache / library_name(cache)
    compile_c("int nothing_here(void) { return 0; }\n", library)
    (cache / (library.name + ".sha256")).write_text(hashlib.sha256(library.read_bytes()).hexdigest() + "\n")
    assert probe(cache)["ok"]


@pytest.mark.slow  # a kernel rebuild or a fresh process: in .ci/run's long part
def test_a_fifo_under_the_library_s_name_neither_hangs_nor_is_opened(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    fifo = cache / library_name(cache)
    os.mkfifo(fifo)
    assert probe(cache)["ok"]  # (a blocking open of a FIFO would hang here: the probe has a timeout)
    assert stat.S_ISREG(fifo.stat().st_mode)


def test_scan_fused_without_kernels_is_a_clear_error(tmp_path):
    from tests.specs import SMALL, write_spec

    spec = write_spec(tmp_path, SMALL)
    done = subprocess.run([sys.executable, "-m", "hybridc", "train", str(spec), "-o", str(tmp_path / "run"), "-q",
                           "--scan", "fused"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HYBRIDC_KERNEL_CACHE": str(tmp_path / "empty"), "CC": "false",
                               "PATH": str(tmp_path / "no-compilers")})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "--scan fused: hybridc's CPU kernels are not available here" in done.stderr and "--scan auto" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
