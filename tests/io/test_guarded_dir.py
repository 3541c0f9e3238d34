"""``hybridc.io.guarded_dir``: below its root, nothing is followed through a link, and nothing that is not a
directory or a regular file of hybridc's is written, read, renamed or removed; a link swapped in after a
directory was opened changes nothing (everything goes through the open descriptor)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.errors import PathRefused
from hybridc.io.guarded_dir import GuardedDir
from hybridc.io import NotRegularFile
from tests.artifacts import tree_digest


@pytest.fixture
def tree(tmp_path):
    """(root, outside): a root with a/b/file.txt, and a user's directory outside it with notes.txt."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file.txt").write_text("ours")
    outside.mkdir()
    (outside / "notes.txt").write_text("a user's file")
    return root, outside


def test_a_link_at_any_depth_is_refused_by_every_operation(tree):
    root, outside = tree
    (root / "a" / "link").symlink_to(outside)
    (root / "a" / "b" / "file-link").symlink_to(outside / "notes.txt")
    before = tree_digest(outside)
    with GuardedDir.open(root) as d:
        for call in (lambda: d.child("a/link"), lambda: d.child("a/link/deeper", create=True),
                     lambda: d.write_text("a/link/new.txt", "x"), lambda: d.write_text("a/b/file-link", "x"),
                     lambda: d.append_text("a/b/file-link", "x"), lambda: d.remove_tree("a/link"),
                     lambda: d.remove_file("a/b/file-link"), lambda: d.lstat("a/link/notes.txt"),
                     lambda: d.remove_tree("a")):  # (a tree holding links is not removed either)
            with pytest.raises(PathRefused):
                call()
        for name in ("a/b/file-link", "a/link/notes.txt"):
            with pytest.raises((NotRegularFile, PathRefused)):
                d.read_bytes(name)
        assert d.kind("a/link") == "a symbolic link" and not d.is_dir("a/link") and not d.is_file("a/b/file-link")
        assert d.foreign_entries(files=["a/b/file-link"], directories=["a/link"]) == [
            "a/link is a symbolic link", "a/b/file-link is a symbolic link"]
    assert tree_digest(outside) == before and (root / "a" / "b" / "file.txt").read_text() == "ours"


def test_a_fifo_is_refused_without_blocking(tree):
    root, _ = tree
    os.mkfifo(root / "a" / "fifo")
    with GuardedDir.open(root) as d:
        with pytest.raises(NotRegularFile, match="a FIFO, not a regular file"):
            d.read_bytes("a/fifo")
        with pytest.raises(PathRefused, match="a FIFO, not a file"):
            d.append_text("a/fifo", "x")
        with pytest.raises(PathRefused, match="a FIFO, not a directory"):
            d.child("a/fifo")
        assert d.foreign_entries(trees=["a"]) == ["a/fifo is a FIFO"]


def test_writes_are_atomic_and_take_the_umask(tree):
    root, _ = tree
    old = os.umask(0o027)
    try:
        with GuardedDir.open(root) as d:
            d.write_text("a/new.txt", "one")
            (root / "a" / "new.txt").chmod(0o600)
            d.write_text("a/new.txt", "two")  # (a replaced file keeps its mode)
            d.append_text("a/log.txt", "x\n")
    finally:
        os.umask(old)
    assert (root / "a" / "new.txt").read_text() == "two" and (root / "a" / "new.txt").stat().st_mode & 0o777 == 0o600
    assert (root / "a" / "log.txt").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (root / "a").iterdir()) == ["b", "log.txt", "new.txt"]  # no temporary left


def test_a_directory_swapped_for_a_link_after_it_was_opened_is_not_followed(tree):
    """The open descriptor is the directory: renaming it away and putting a link to the user's directory in its
    place sends nothing there."""
    root, outside = tree
    before = tree_digest(outside)
    with GuardedDir.open(root) as d, d.child("a/b") as b:
        (root / "a" / "b").rename(root / "a" / "moved")
        (root / "a" / "b").symlink_to(outside)
        b.write_text("written.txt", "ours")
        with open(b.library_path("library.txt"), "w") as f:  # (what save_pretrained is given)
            f.write("ours")
        b.remove_file("file.txt")
    assert tree_digest(outside) == before
    assert sorted(p.name for p in (root / "a" / "moved").iterdir()) == ["library.txt", "written.txt"]


def test_remove_tree_removes_only_directories_of_ours(tree):
    root, outside = tree
    with GuardedDir.open(root) as d:
        assert d.remove_tree("missing") is False
        with pytest.raises(PathRefused, match="not a directory"):
            d.remove_tree("a/b/file.txt")
        assert d.remove_tree("a") is True
    assert not (root / "a").exists() and (outside / "notes.txt").exists()


def test_install_replaces_only_an_accepted_earlier_output(tree):
    root, outside = tree
    with GuardedDir.open(root) as d:
        staged = d.make_temp_dir(".out.")
        (root / staged / "model.txt").write_text("new")
        (root / "out").symlink_to(outside)
        with pytest.raises(PathRefused, match="symbolic link"):
            d.install(staged, "out")
        (root / "out").unlink()
        (root / "out").mkdir()
        (root / "out" / "old.txt").write_text("old")
        d.install(staged, "out", check=lambda existing: None)
    assert [p.name for p in (root / "out").iterdir()] == ["model.txt"]
    assert sorted(p.name for p in root.iterdir()) == ["a", "out"]


NAMES = st.sampled_from(["a", "b", "c"])


@settings(max_examples=25, deadline=None)
@given(links=st.lists(st.lists(NAMES, min_size=1, max_size=3), max_size=3),
       paths=st.lists(st.lists(NAMES, min_size=1, max_size=4), min_size=1, max_size=6))
def test_no_path_reaches_outside_whatever_links_are_planted(tmp_path_factory, links, paths):
    """Links to the user's directory planted at random places of a tree; writing, appending, making and removing
    at random paths either works inside the root or is refused: the user's directory never changes."""
    base = tmp_path_factory.mktemp("guarded")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "notes.txt").write_text("a user's file")
    for parts in links:
        at = root.joinpath(*parts)
        at.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(at):
            at.symlink_to(outside)
    before = tree_digest(outside)
    with GuardedDir.open(root) as d:
        for parts in paths:
            name = "/".join(parts)
            for call in (lambda: d.child(name, create=True).close(), lambda: d.write_text(name + "x", "w"),
                         lambda: d.append_text(name + "y", "w"), lambda: d.remove_tree(name),
                         lambda: d.remove_file(name + "x"), lambda: d.read_bytes(name)):
                try:
                    call()
                except (PathRefused, OSError):
                    pass
    assert tree_digest(outside) == before
