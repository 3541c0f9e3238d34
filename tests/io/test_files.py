"""File writes: atomic, and with the modes every other tool gives (the umask; a replaced file keeps its mode)."""

from __future__ import annotations

import os
import stat

import pytest

from hybridc.io import atomic_write_text, process_umask


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_umask_and_replaced_files_keep_their_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert process_umask() == umask
        path = atomic_write_text(tmp_path / "a.txt", "one")
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
        os.chmod(path, 0o640)
        atomic_write_text(path, "two")
        assert path.read_text() == "two" and stat.S_IMODE(path.stat().st_mode) == 0o640
        assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left
    finally:
        os.umask(old)


def test_a_run_directory_follows_the_umask(tmp_path):
    from hybridc.spec import load_spec
    from hybridc.train.run import TrainOptions, train
    from tests.specs import write_spec
    from tests.train.helpers import DATA, spec_text

    old = os.umask(0o022)
    try:
        path = write_spec(tmp_path, spec_text(f"- {{name: search, data: \"{DATA}\", steps: 1}}\n"))
        train(load_spec(path), TrainOptions(out_dir=tmp_path / "run", quiet=True), say=lambda _: None)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"spec.yaml", "spec.lock.yaml", "plan.json", "metrics.jsonl", "README.md", "config.json"} <= {p.name for p in files}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), [
        (str(p.relative_to(tmp_path)), oct(stat.S_IMODE(p.stat().st_mode))) for p in files]


def test_a_symlinked_file_stays_a_symlink(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
