"""Soak: a training run killed with SIGKILL at 20 random points and resumed each time ends with exactly
the weights of an uninterrupted run. Not in the default suite: set HYBRIDC_SOAK=1 (CI's nightly mode)
and run `python -m pytest -m slow tests/soak -s` (the kill points and the result are printed)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.specs import write_spec
from tests.train.helpers import DATA, spec_text

KILLS = 20

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("HYBRIDC_SOAK"), reason="set HYBRIDC_SOAK=1 to run the soak test")]

STAGES = f"""\
    - {{name: search, search: 'gaea(lr=0.2)', data: '{DATA}', steps: 120}}
    - {{name: discretize}}
    - {{name: retrain, steps: 80}}
    """


def start(spec, out, resume):
    args = [sys.executable, "-m", "hybridc", "train", str(spec), "-o", str(out), "-q"] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_soak_kill_9_at_random_points(tmp_path):
    spec = write_spec(tmp_path, spec_text(STAGES).replace("checkpoint_every: 0", "checkpoint_every: 7"))
    reference = start(spec, tmp_path / "reference", resume=False)
    began = time.time()
    assert reference.wait(timeout=1800) == 0, reference.stderr.read()
    duration = time.time() - began
    rng = random.Random(int(os.environ.get("HYBRIDC_SOAK_SEED", "0")))
    points = sorted(rng.uniform(0.05, 0.95) * duration for _ in range(KILLS))
    out = tmp_path / "killed"
    killed_at = []
    for i, delay in enumerate(points):
        process = start(spec, out, resume=i > 0)
        time.sleep(delay if i == 0 else max(delay - points[i - 1], 0.5))
        if process.poll() is not None:  # it finished before the kill point
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(round(delay, 2))
    final = start(spec, out, resume=True)
    assert final.wait(timeout=1800) == 0, final.stderr.read()
    a = load_file(str(tmp_path / "reference" / "final" / "model.safetensors"))
    b = load_file(str(out / "final" / "model.safetensors"))
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"soak: reference run {duration:.1f} s; killed with SIGKILL {len(killed_at)} times at {killed_at} s; "
          f"final weights {'bit-identical' if same else 'DIFFERENT'} ({len(a)} tensors)")
    assert len(killed_at) >= KILLS // 2
    assert same
