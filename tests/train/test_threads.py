"""Threads per stage: one per core the other processes leave free, fixed by HYBRIDC_THREADS, recorded,
and a resumed stage runs on the count it started on."""

from __future__ import annotations

import json

import pytest

from hybridc.errors import RunError
from hybridc.train.threads import choose_threads, fixed_threads, running_others, stage_threads


def test_one_thread_per_free_core() -> None:
    assert stage_threads(2, 2, 0) == 2
    assert stage_threads(2, 2, 1) == 1
    assert stage_threads(2, 2, 4) == 1  # at least one
    assert stage_threads(8, 16, 2) == 8  # at most torch's default
    assert stage_threads(2, 2, None) == 2  # unknown load: the default


def test_running_others_reads_the_runnable_count_and_takes_the_median() -> None:
    samples = iter(["0.5 0.4 0.3 3/90 123", "0.5 0.4 0.3 1/90 123", "0.5 0.4 0.3 3/90 123"])
    assert running_others(lambda: next(samples), samples=3, interval=0) == 2  # itself not counted
    assert running_others(lambda: "garbage", samples=1, interval=0) is None


def test_the_user_fixes_the_count() -> None:
    assert choose_threads(2, env={"HYBRIDC_THREADS": "3"}, others=lambda: 5) == (3, "fixed by HYBRIDC_THREADS")
    assert choose_threads(2, env={"OMP_NUM_THREADS": "1"}, others=lambda: 0)[0] == 1
    assert choose_threads(2, env={}, cores=2, others=lambda: 2) == (1, "2 other processes running on 2 cores")
    assert choose_threads(2, env={}, cores=2, others=lambda: 0) == (2, "the machine is quiet")
    with pytest.raises(RunError, match="HYBRIDC_THREADS='two' is not a number of threads"):
        fixed_threads({"HYBRIDC_THREADS": "two"})


def test_a_run_records_its_threads_and_a_busy_machine_gets_fewer(tmp_path, monkeypatch) -> None:
    import torch

    import hybridc.train.run as run_module
    from tests.train.helpers import DATA, run, spec_text

    monkeypatch.delenv("HYBRIDC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(run_module, "choose_threads", lambda default: (1, "2 other processes running on 2 cores"))
        result, _ = run(tmp_path, spec_text(f"- {{name: align, data: '{DATA}', steps: 2}}"))
        assert torch.get_num_threads() == 2  # restored after the run
    finally:
        torch.set_num_threads(before)
    events = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["threads"] for e in events if e["event"] == "stage"] == [1]
