"""The README's test file ("Testing your specs and families") is run as a user runs it, so it cannot rot."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_test_file() -> str:
    """The python block that follows "A complete test file" in the README's testing section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Testing your specs and families", 1)[1].split("\n## ", 1)[0]
    after = section.split("A complete test file", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_test_file_names_what_hybridc_testing_has() -> None:
    """Every name it imports exists (the cheap guard; CI's long part runs the file)."""
    tree = ast.parse(readme_test_file())
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module.startswith("hybridc")]
    assert imports
    for node in imports:
        module = importlib.import_module(node.module)
        for alias in node.names:
            assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), alias.name


@pytest.mark.slow
def test_the_readme_test_file_passes(tmp_path) -> None:
    """The file, as the README gives it, in a repository of its own (``specs/quickstart.yaml`` beside
    ``tests/``), run by pytest from that repository's root in a fresh process."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "tests" / "test_my_hybrids.py").write_text(readme_test_file())
    shutil.copy(ROOT / "specs" / "quickstart.yaml", tmp_path / "specs" / "quickstart.yaml")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "11 passed" in done.stdout, done.stdout[-2000:]
