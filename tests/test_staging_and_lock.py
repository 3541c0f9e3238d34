"""hybridc never deletes or writes through what it did not create: `discretize` stages its export in a
fresh directory of its own (never `.OUT.tmp` taken as found), refuses an -o that is a link or a file, and
names its default output after the model directory's real name; `train` opens RUN/.lock without following
a link, refuses a .lock it did not write, and removes only a lock it created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.models.export import export
from hybridc.errors import RunError
from hybridc.io.guarded_dir import GuardedDir
from hybridc.io import PathRefused
from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec
from tests.train.helpers import DATA, run, spec_text

USER_README = b"# my notes\nnot a model card\n"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A saved hybrid to discretize (written once: discretize only reads it)."""
    root = tmp_path_factory.mktemp("saved")
    lower(load_spec(write_spec(root, SMALL))).save_pretrained(root / "saved")
    return root / "saved"


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def refused(result, path: Path) -> None:
    """A clear refusal: exit 2, the path named, no traceback and no internal error."""
    assert result.exit_code == 2, result.output
    assert str(path) in result.output, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root`` (not following links): file bytes, link targets, directories."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith((".tmp", ".old")))


# ---- discretize -------------------------------------------------------------------------------------

def test_a_users_directory_named_like_the_old_staging_path_is_left_alone(tmp_path, saved):
    user = tmp_path / ".out.tmp"
    user.mkdir()
    (user / "README.md").write_bytes(USER_README)
    (user / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(user)
    result = cli("discretize", str(saved), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert snapshot(user) == before
    assert (tmp_path / "out" / "config.json").is_file()
    assert leftovers(tmp_path) == [".out.tmp"]  # (the user's, and nothing of ours)


def test_a_symlink_at_the_old_staging_path_is_never_written_through(tmp_path, saved):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_bytes(USER_README)
    (tmp_path / ".out.tmp").symlink_to(mine)
    result = cli("discretize", str(saved), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (mine / "README.md").read_bytes() == USER_README and [p.name for p in mine.iterdir()] == ["README.md"]
    assert (tmp_path / ".out.tmp").is_symlink() and os.readlink(tmp_path / ".out.tmp") == str(mine)
    assert (tmp_path / "out" / "README.md").read_bytes() != USER_README


def test_out_a_symlink_to_an_earlier_export_is_refused(tmp_path, saved):
    assert cli("discretize", str(saved), "-o", str(tmp_path / "export")).exit_code == 0
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "export")
    before = snapshot(tmp_path / "export")
    result = cli("discretize", str(saved), "-o", str(link))
    refused(result, link)
    assert "symbolic link" in result.output
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "export")
    assert snapshot(tmp_path / "export") == before
    assert leftovers(tmp_path) == []  # no .link.tmp


def test_out_a_symlink_to_a_users_directory_or_nowhere_is_refused(tmp_path, saved):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_bytes(USER_README)
    to_mine, dangling = tmp_path / "to-mine", tmp_path / "dangling"
    to_mine.symlink_to(mine)
    dangling.symlink_to(tmp_path / "nowhere")
    for link in (to_mine, dangling):
        refused(cli("discretize", str(saved), "-o", str(link)), link)
        assert link.is_symlink()
    assert snapshot(mine) == {"README.md": USER_README}
    assert not (tmp_path / "nowhere").exists() and leftovers(tmp_path) == []


def test_out_an_existing_file_is_refused(tmp_path, saved):
    mine = tmp_path / "model.txt"
    mine.write_bytes(USER_README)
    refused(cli("discretize", str(saved), "-o", str(mine)), mine)
    link = tmp_path / "link.txt"
    link.symlink_to(mine)
    refused(cli("discretize", str(saved), "-o", str(link)), link)
    assert mine.read_bytes() == USER_README and link.is_symlink()
    model = HybridModel.from_pretrained(saved)  # (the library refuses it too, before any work)
    with pytest.raises(PathRefused, match="is not a directory"):
        export(model, mine)
    assert mine.read_bytes() == USER_README and leftovers(tmp_path) == []


def test_discretize_dot_writes_a_sibling_named_after_the_run(tmp_path, saved, monkeypatch):
    import shutil

    run_dir = tmp_path / "myrun"
    shutil.copytree(saved, run_dir / "final")  # a run directory means its final/
    monkeypatch.chdir(run_dir)
    result = cli("discretize", ".")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "myrun-discretized" / "config.json").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == ["final"]  # no RUN/-discretized
    assert leftovers(tmp_path) == []
    again = cli("discretize", ".")  # the earlier export is replaced, as with a named run
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myrun", "myrun-discretized"]


def test_an_earlier_export_or_an_empty_directory_is_replaced_and_nothing_staged_is_left(tmp_path, saved):
    out = tmp_path / "out"
    for _ in range(2):
        result = cli("discretize", str(saved), "-o", str(out))
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("discretize", str(saved), "-o", str(empty)).exit_code == 0
    assert (empty / "config.json").is_file()
    mode = 0o777 & ~_umask()
    assert (out.stat().st_mode & 0o777) == mode and (empty.stat().st_mode & 0o777) == mode


def test_a_failed_export_removes_only_its_own_staging_directory(tmp_path, saved, monkeypatch):
    model = HybridModel.from_pretrained(saved)
    export(model, tmp_path / "out")
    before = snapshot(tmp_path / "out")
    (tmp_path / ".out.tmp").mkdir()  # a user's, as found

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(HybridModel, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export(model, tmp_path / "out")
    assert snapshot(tmp_path / "out") == before  # the earlier export stands
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp", "out"]


def _umask() -> int:
    from hybridc.io import process_umask

    return process_umask()


# ---- io helpers -------------------------------------------------------------------------------------

def test_fresh_staging_dirs_are_new_every_time(tmp_path):
    (tmp_path / ".out.tmp").mkdir()
    with GuardedDir.open(tmp_path) as parent:
        a, b = parent.make_temp_dir(".out."), parent.make_temp_dir(".out.")
    assert a != b and not any((tmp_path / a).iterdir()) and not any((tmp_path / b).iterdir())
    assert a.startswith(".out.") and a.endswith(".tmp") and a != ".out.tmp"
    assert (tmp_path / a).stat().st_mode & 0o777 == 0o700  # (private while it is built)


def test_install_refuses_links_files_and_unchecked_directories(tmp_path):
    parent = GuardedDir.open(tmp_path)

    def staged():
        d = parent.make_temp_dir(".t.")
        (tmp_path / d / "new.txt").write_text("new")
        return d

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("keep")
    for target in ("link", "file"):
        d = staged()
        with pytest.raises(PathRefused, match=target):
            parent.install(d, target)
    d = staged()
    with pytest.raises(PathRefused, match="not empty"):
        parent.install(d, "real")  # no check: only a new or empty directory is taken

    def not_ours(directory):
        raise RunError(f"{directory.path} is not ours")

    with pytest.raises(RunError, match="not ours"):
        parent.install(d, "real", not_ours)
    assert (tmp_path / "real" / "keep.txt").read_text() == "keep" and (tmp_path / "file").read_text() == "keep"
    (tmp_path / "real" / "mine").symlink_to(tmp_path / "file")  # an earlier output holding a link: not replaced
    with pytest.raises(PathRefused, match="mine is a symbolic link"):
        parent.install(d, "real", lambda directory: None)
    (tmp_path / "real" / "mine").unlink()
    parent.install(d, "real", lambda directory: None)  # the caller's own earlier output: replaced
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["new.txt"]
    assert not any(p.name.endswith(".old") for p in tmp_path.iterdir())
    assert (tmp_path / "link").is_symlink() and (tmp_path / "file").read_text() == "keep"
    parent.close()


# ---- the run lock -----------------------------------------------------------------------------------

TRAIN = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")


def train_cli(tmp_path: Path, run_dir: Path, *extra: str):
    spec = write_spec(tmp_path, TRAIN, "train.yaml")
    return cli("train", str(spec), "-o", str(run_dir), "-q", *extra)


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "notes.md"
    target.write_bytes(USER_README)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(target)
    refused(train_cli(tmp_path, run_dir), run_dir / ".lock")
    assert target.read_bytes() == USER_README
    assert (run_dir / ".lock").is_symlink() and [p.name for p in run_dir.iterdir()] == [".lock"]
    dangling = tmp_path / "run2"
    dangling.mkdir()
    (dangling / ".lock").symlink_to(tmp_path / "nowhere")
    refused(train_cli(tmp_path, dangling), dangling / ".lock")
    assert not (tmp_path / "nowhere").exists()


def test_a_users_lock_file_is_never_deleted_nor_truncated(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_bytes(USER_README)  # only a .lock, not ours: not an empty directory
    result = train_cli(tmp_path, run_dir)
    refused(result, run_dir / ".lock")
    assert "did not write" in result.output
    assert snapshot(run_dir) == {".lock": USER_README}
    refused(train_cli(tmp_path, run_dir, "--resume"), run_dir / ".lock")
    assert snapshot(run_dir) == {".lock": USER_README}


def test_a_lock_that_is_a_directory_or_a_fifo_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".lock").mkdir(parents=True)
    (run_dir / ".lock" / "inside.txt").write_bytes(USER_README)
    result = train_cli(tmp_path, run_dir)
    refused(result, run_dir / ".lock")
    assert "a directory" in result.output
    assert snapshot(run_dir) == {".lock": "dir", ".lock/inside.txt": USER_README}
    fifo_run = tmp_path / "fifo"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / ".lock")
    refused(train_cli(tmp_path, fifo_run), fifo_run / ".lock")
    assert [p.name for p in fifo_run.iterdir()] == [".lock"]


def test_a_run_whose_lock_was_replaced_by_a_link_is_not_resumed_through_it(tmp_path):
    run(tmp_path, TRAIN)
    run_dir = tmp_path / "run"
    metrics = (run_dir / "metrics.jsonl").read_bytes()
    target = tmp_path / "notes.md"
    target.write_bytes(USER_README)
    (run_dir / ".lock").unlink()
    (run_dir / ".lock").symlink_to(target)
    refused(train_cli(tmp_path, run_dir, "--resume"), run_dir / ".lock")
    assert target.read_bytes() == USER_README and (run_dir / ".lock").is_symlink()
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics


def test_hybridcs_own_lock_is_reused_and_only_a_lock_this_process_created_is_removed(tmp_path):
    # a directory holding only a lock a killed hybridc left is empty: a new run starts in it
    left = tmp_path / "left"
    left.mkdir()
    (left / ".lock").write_text("hybridc process 12345\n")
    result = train_cli(tmp_path, left)
    assert result.exit_code == 0, result.output
    assert (left / ".lock").read_text() == f"hybridc process {os.getpid()}\n"  # (the lock kept, rewritten)
    # a new run that fails early removes the lock it created, not one it found
    corpus = tmp_path / "short.txt"
    corpus.write_text("too short")
    bad = spec_text(f"- {{name: finetune, data: 'text({corpus}, block=16)', steps: 2}}",
                    mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n")
    bad = bad.replace("vocab_size: 32", "vocab_size: 260")
    spec = write_spec(tmp_path, bad, "bad.yaml")
    found = tmp_path / "found"
    found.mkdir()
    (found / ".lock").write_text("hybridc process 12345\n")
    assert cli("train", str(spec), "-o", str(found), "-q").exit_code != 0
    assert [p.name for p in found.iterdir()] == [".lock"]
    assert cli("train", str(spec), "-o", str(tmp_path / "new"), "-q").exit_code != 0
    assert not (tmp_path / "new").exists()


def test_out_the_model_itself_or_a_trained_hybrid_is_refused(tmp_path, saved):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(saved, model)
    before = snapshot(model)
    refused(cli("discretize", str(model), "-o", str(model)), model)  # (it used to replace its own input)
    other = tmp_path / "other"
    shutil.copytree(saved, other)  # a saved hybrid that is not discretized: a trained model, not an export
    result = cli("discretize", str(model), "-o", str(other))
    refused(result, other)
    assert "not discretized" in result.output
    assert snapshot(model) == before and snapshot(other) == before and leftovers(tmp_path) == []
