"""What the hostile-artifact tests share: a finished tiny run to damage (GPT-Neo + Mamba, checkpoints kept), the
same components' run stopped inside a distill stage (its teacher saved under ``teacher/``), a fresh workspace copy
of either per case, the commands a user runs next on it, and the checks every case makes (a result or a clear
error: exit 0, 1 or 2, no traceback, no hang, nothing outside the run changed).

Used by ``test_artifact_fuzz.py`` (random damage) and ``test_bad_artifacts.py`` (the named corpus in
``bad_artifacts/``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import textwrap
from pathlib import Path

from click.testing import CliRunner

from hybridc.cli import main
from tests.models.test_saved_models import CORPUS, make_sources

HANG_SECONDS = 120  # a tiny model's command takes about a second; more than this is a hang


def make_base(root: Path, bpe_tokenizer_files: dict[str, Path]) -> Path:
    """``root`` with a finished run (``run/``: checkpoints at steps 2 and 4, ``final/``), its sources, spec and
    data, and a user's files beside it (``outside/``) that no command may touch."""
    dirs = make_sources(root, bpe_tokenizer_files)
    (root / "corpus.txt").write_text(CORPUS)
    (root / "spec.yaml").write_text(textwrap.dedent(f"""\
        hybridc: 1
        name: fuzz
        tokenizer: zattn
        components:
          zattn: {{from: {dirs['zattn']}, blocks: split(2)}}
          assm: {{from: {dirs['assm']}, blocks: split(2)}}
        hybrid: {{mixture: "fixed([[0.3, 0.7], [0.6, 0.4]])"}}
        train:
          seed: 3
          checkpoint_every: 2
          stages:
            - {{name: tune, kind: finetune, data: "text({root / 'corpus.txt'}, block=16)", steps: 4, batch_size: 4}}
        """))
    result = CliRunner().invoke(main, ["train", str(root / "spec.yaml"), "-o", str(root / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    (root / "outside").mkdir()
    (root / "outside" / "notes.txt").write_text("a user's file\n")
    (root / "outside" / "config.json").write_text('{"model_type": "gpt2"}\n')
    return root


DISTILL_STAGES = """\
  stages:
    - {name: tune, kind: finetune, data: "text(CORPUS, block=16)", steps: 2, batch_size: 4}
    - {name: discretize}
    - {name: distill, distill: "kl(temperature=2.0)", steps: 4, batch_size: 4}
"""


def make_distilling(root: Path) -> Path:
    """``root/distilling``: the base spec's components trained by ``root/distill.yaml`` (2 steps, discretize,
    4 distill steps; checkpoints every 2) and stopped after the second distill step, as SIGTERM stops it:
    checkpoints step-2 and step-4, the teacher in ``teacher/checkpoints/step-2``, no ``final/``."""
    import pytest

    import hybridc.train.run as run_module

    head = (root / "spec.yaml").read_text().partition("  stages:\n")[0]
    (root / "distill.yaml").write_text(head + DISTILL_STAGES.replace("CORPUS", str(root / "corpus.txt")))
    calls = {"n": 0}

    def stop_at_step_4(self) -> bool:
        calls["n"] += 1
        return calls["n"] == 4

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module.Run, "stop_requested", stop_at_step_4)
        result = CliRunner().invoke(main, ["train", str(root / "distill.yaml"), "-o", str(root / "distilling"), "-q"])
    assert result.exit_code == 130, result.output  # (stopped, a checkpoint written)
    run = root / "distilling"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2", "step-4"], result.output
    assert [p.name for p in (run / "teacher" / "checkpoints").iterdir()] == ["step-2"]
    return run


def tree_digest(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (links not followed) with its content digest or link target."""
    out = {}
    for entry in sorted(path.rglob("*")):
        if entry.is_symlink():
            out[str(entry)] = "-> " + os.readlink(entry)
        elif entry.is_file():
            out[str(entry)] = hashlib.sha256(entry.read_bytes()).hexdigest()
        else:
            out[str(entry)] = "dir" if entry.is_dir() else "special"
    return out


def workspace(base: Path, tmp: Path, stopped: bool = False, distilling: bool = False) -> tuple[Path, Path]:
    """A fresh copy of the run and of the user's outside files for one case, in ``tmp``; ``stopped``: the run
    as if stopped after its first checkpoint (``final/`` and ``step-4`` removed), what ``--resume`` reads;
    ``distilling``: the run stopped inside its distill stage (``make_distilling``) instead."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copytree(base / ("distilling" if distilling else "run"), tmp / "run", symlinks=True)
    shutil.copytree(base / "outside", tmp / "outside", symlinks=True)
    if stopped:
        shutil.rmtree(tmp / "run" / "final")
        shutil.rmtree(tmp / "run" / "checkpoints" / "step-4")
    return tmp / "run", tmp / "outside"


def commands(base: Path, run: Path, out: Path, spec: str = "spec.yaml") -> dict[str, list[str]]:
    """The commands a user runs on a run directory, by name (``spec``: the run's spec, for ``resume``)."""
    return {
        "eval": ["eval", str(run), "--data", f"text({base / 'corpus.txt'}, block=16)"],
        "generate": ["generate", str(run), "the quick", "--max-new-tokens", "3"],
        "discretize": ["discretize", str(run), "-o", str(out)],
        "resume": ["train", str(base / spec), "-o", str(run), "--resume", "--quiet"],
    }


class Hang(Exception):
    pass


def run_guarded(args: list[str]):
    """The CLI in this process, stopped as a hang after ``HANG_SECONDS``."""
    def alarm(signum, frame):
        raise Hang(f"{' '.join(args)} hung for {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    try:
        return CliRunner().invoke(main, args, env={"HYBRIDC_DEBUG": None})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_outcome(result, what: str) -> None:
    """A result or a clear error: exit 0, 1 or 2 (never 70, a signal or a hang), and no traceback."""
    assert not isinstance(result.exception, Hang), what
    assert result.exit_code in (0, 1, 2), f"{what}: exit {result.exit_code}\n{result.output}"
    assert "internal error" not in result.output and "Traceback" not in result.output, f"{what}\n{result.output}"
