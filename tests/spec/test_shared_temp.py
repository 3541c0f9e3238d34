"""The front end keeps nothing in the shared temporary directory: a file there under a predictable name is input
another local user may have placed (lark's parser cache is a pickle it would load)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.specs import SMALL, write_spec


def test_validate_reads_and_writes_nothing_in_the_shared_temporary_directory(tmp_path):
    shared = tmp_path / "tmp"
    shared.mkdir()
    spec = write_spec(tmp_path, SMALL)
    env = {**os.environ, "TMPDIR": str(shared), "TEMP": str(shared), "TMP": str(shared)}
    for _ in range(2):  # (a second run would read what the first left)
        done = subprocess.run([sys.executable, "-m", "hybridc", "validate", str(spec)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in shared.iterdir()) == []
