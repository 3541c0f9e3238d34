"""``hybridc lra``: the hybrid and each of its components trained from scratch on the Long Range Arena tasks.

As ``hybridc mad`` does for MAD: for every task the spec's components become from-scratch models of the same
families, joined the same way over the same number of blocks; the hybrid is searched on the task (one search
stage, the spec's search algorithm) and each component alone trains with the same budget. For each model the
learning rate with the best validation accuracy is kept (``--lrs``; validation only, never test) and its test
accuracy goes into the table, ``lra-results.json`` (with the searched alphas per task and block) and a PNG.

Tasks: ``listops`` and ``pathfinder`` are generated; ``image`` (CIFAR-10), ``text`` (IMDb) and ``retrieval``
(AAN) are read from ``--data-dir``, and skipped, by name, when their data is not there. Presets:

- ``lra``: LRA's lengths, sizes and budgets (ListOps of up to 2000 tokens, 96,000 training expressions, 5,000
  steps of 32; Pathfinder-32 hard, 200,000 images, 200 epochs of 512; CIFAR-10 in gray, 200 epochs of 256; IMDb
  bytes cut to 4000, 20,000 steps of 32; AAN pairs of 4000 bytes, 5,000 steps of 32); the components keep the
  sizes their ``init:`` gives them. A job for accelerators.
- ``cpu``: minutes on 2 CPU cores: ListOps of up to 256 tokens (6,000 expressions, 300 steps of 32, learning
  rates 1e-3 and 3e-3), Pathfinder-32 easy (1024 pixels, 2,000 images, 100 steps of 16, 3e-3), the read tasks
  likewise shortened (2,000 examples of each split, bytes cut to 1000 and 500), and components shrunk to LRA's
  Pathfinder and Image model size: width 32, 2 attention heads, as many layers as blocks (2 at least). A
  pretrained component, in either preset, is replaced by a from-scratch one of its family at that size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..spec.frontend import ResolvedSpec
from ..spec.model import DEFAULT_SEARCH
from .common import accuracy_bars, canonical, final_alphas, last, spec_from_data

TASKS = ("listops", "pathfinder", "image", "text", "retrieval")
PRESETS = ("cpu", "lra")
CPU_ATTENTION = {"hidden_size": 32, "heads": 2}
CPU_RECURRENT = {"hidden_size": 32}


@dataclass(frozen=True)
class TaskPlan:
    """One task under one preset: its data (``{data}`` stands for the file or directory found), the task and
    vocabulary it needs, the length of one sequence (one document, for retrieval), and its budget."""

    data: str
    task: str
    vocab: int
    length: int
    steps: int | None = None  # one of steps / epochs
    epochs: float | None = None
    batch_size: int = 32
    lrs: tuple[float, ...] = (1e-3,)
    warmup: int = 0


PLANS: dict[str, dict[str, TaskPlan]] = {
    "lra": {
        "listops": TaskPlan("listops(length=2000, depth=10, examples=100000, valid=0.02, test=0.02)", "classify(10)",
                            18, 2000, steps=5000, warmup=1000, lrs=(1e-4, 3e-4, 1e-3)),
        "pathfinder": TaskPlan("pathfinder(resolution=32, difficulty=hard, examples=200000)", "classify(2)", 256, 1024,
                               epochs=200, batch_size=512, lrs=(1e-4, 3e-4, 1e-3), warmup=312),
        "image": TaskPlan("pixels({data})", "classify(10)", 256, 1024, epochs=200, batch_size=256,
                          lrs=(1e-4, 3e-4, 1e-3), warmup=175),
        "text": TaskPlan("bytetext({data}, length=4000)", "classify(2)", 257, 4000, steps=20000, warmup=8000,
                         lrs=(1e-4, 3e-4, 1e-3)),
        "retrieval": TaskPlan("retrieval({data}, length=4000)", "match(2)", 257, 4000, steps=5000, warmup=1000,
                              lrs=(1e-4, 3e-4, 1e-3)),
    },
    "cpu": {
        "listops": TaskPlan("listops(length=256, depth=4, examples=6000)", "classify(10)", 18, 256, steps=300,
                            batch_size=32, lrs=(1e-3, 3e-3), warmup=30),
        "pathfinder": TaskPlan("pathfinder(resolution=32, difficulty=easy, examples=2000)", "classify(2)", 256, 1024,
                               steps=100, batch_size=16, lrs=(3e-3,), warmup=10),
        "image": TaskPlan("pixels({data}, limit=2000)", "classify(10)", 256, 1024, steps=100, batch_size=16,
                          lrs=(3e-3,), warmup=10),
        "text": TaskPlan("bytetext({data}, length=1000, limit=2000)", "classify(2)", 257, 1000, steps=100,
                         batch_size=16, lrs=(3e-3,), warmup=10),
        "retrieval": TaskPlan("retrieval({data}, length=500, limit=2000)", "match(2)", 257, 500, steps=100,
                              batch_size=16, lrs=(3e-3,), warmup=10),
    },
}

# where each read task looks under --data-dir, in order
DATA_PLACES = {
    "image": ("cifar-10-batches-bin", "cifar10", "cifar10.npz", "cifar-10"),
    "text": ("aclImdb", "imdb"),
    "retrieval": ("lra_release/lra_release/tsv_data", "lra_release/tsv_data", "tsv_data", "aan"),
}


def find_data(task: str, data_dir: Path) -> Path | None:
    """The file or directory ``task`` reads under ``data_dir`` (None: not there, or a generated task)."""
    for place in DATA_PLACES.get(task, ()):
        path = data_dir / place
        if path.exists():
            return path.resolve()
    return None


def missing_reason(task: str, data_dir: Path) -> str:
    return f"no data under {data_dir} (looked for {', '.join(DATA_PLACES[task])})"


def plan_for(task: str, preset: str, steps: int | None = None, batch_size: int | None = None,
             lrs: tuple[float, ...] | None = None) -> TaskPlan:
    """The preset's plan of ``task``, with the command line's overrides (``steps`` replaces epochs)."""
    plan = PLANS[preset][task]
    if steps is not None:
        plan = replace(plan, steps=steps, epochs=None, warmup=min(plan.warmup, steps // 10))
    if batch_size is not None:
        plan = replace(plan, batch_size=batch_size)
    if lrs is not None:
        plan = replace(plan, lrs=tuple(lrs))
    return plan


def proxy_components(rs: ResolvedSpec, plan: TaskPlan, preset: str) -> dict[str, Any]:
    """The spec's components from scratch for one task: same families and blocks, the task's vocabulary and
    length. Under ``lra`` an ``init:`` component keeps its config; otherwise (``cpu``, or a pretrained component)
    it is its family at width 32 (2 heads) with as many layers as blocks (2 at least)."""
    from ..components.registry import get_family

    out = {}
    blocks = rs.num_blocks
    for rc in rs.components:
        family = get_family(rc.family)
        if rs.spec.component(rc.name).source.kind == "init" and preset == "lra":
            init = dict(canonical(rs)["components"][rc.name]["init"])
        else:
            init = {"family": rc.family, **(CPU_ATTENTION if family.has_attention else CPU_RECURRENT),
                    "layers": max(2, blocks)}
            while family.config_problems(family.init_config({k: v for k, v in init.items() if k != "family"}, {})):
                init["hidden_size"] *= 2  # a family whose widths round up (xLSTM): the smallest it builds
                if init["hidden_size"] > 1024:
                    break
        init["layers"] = max(int(init.get("layers", 2)), blocks)
        init["vocab_size"] = plan.vocab
        if "max_length" in init or "heads" in init:
            init["max_length"] = max(int(init.get("max_length") or 0), plan.length)
        out[rc.name] = {"init": init, "blocks": f"split({blocks})", "trust_remote_code": False}
    return out


def proxy_spec(rs: ResolvedSpec, task: str, preset: str, plan: TaskPlan, data: str, lr: float) -> ResolvedSpec:
    spec = canonical(rs)
    spec["name"] = f"{rs.spec.name}-lra-{task}"
    spec["tokenizer"] = rs.names[0]
    spec["components"] = proxy_components(rs, plan, preset)
    spec["hybrid"].update(width="max", embeddings="mix", head="mix", mixture="search")
    spec["hybrid"].pop("budget", None)
    spec["task"] = plan.task
    search = next((s.get("search") for s in spec["train"]["stages"] if s.get("kind") == "search"), str(DEFAULT_SEARCH))
    length = {"steps": plan.steps} if plan.steps is not None else {"epochs": plan.epochs}
    spec["train"] = {
        "seed": rs.spec.train.seed, "checkpoint_every": 0, "baselines": True,
        **({"data_seed": rs.spec.train.data_seed} if rs.spec.train.data_seed is not None else {}),
        "stages": [{"name": "search", "kind": "search", "search": search, "data": data, **length,
                    "batch_size": plan.batch_size, "lr": lr, "weight_decay": 0.0, "schedule": "cosine",
                    "warmup": plan.warmup, "eval_every": 0}],
    }
    return spec_from_data(spec, rs.base_dir, f"lra proxy {task}")


def reusable(previous: dict[str, Any], previous_dir: Path, rs: ResolvedSpec, *, tasks: tuple[str, ...],
             preset: str = "cpu", data_dir: Path = Path("data"), steps: int | None = None,
             batch_size: int | None = None, lrs: tuple[float, ...] | None = None
             ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The rows of an earlier ``lra-results.json`` (``previous``, written into ``previous_dir``) that this run would
    redo as they are, and why each other task of ``tasks`` is not reusable. A row is taken when the results are
    of the same spec name, preset, blocks, components, seed and data seed, its data and budget are what this run's
    plan gives, and the spec each of its learning rates ran (``TASK/lrLR/spec.yaml`` under the directory that ran
    it: ``previous_dir``, or the row's own ``reused`` when it was itself taken over) is, canonically, the one this
    run would train. Rows come back as they were, with ``reused`` naming the directory that ran them."""
    from ..spec import load_spec

    previous_dir = Path(previous_dir)
    rows: dict[str, dict[str, Any]] = {}
    why: dict[str, str] = {}
    header = {"spec": rs.spec.name, "preset": preset, "blocks": rs.num_blocks, "components": list(rs.names),
              "seed": rs.spec.train.seed, "data_seed": rs.spec.train.data_seed_or_seed}
    differs = [f"{key} {previous.get(key)!r}, not {value!r}" for key, value in header.items()
               if previous.get(key) != value]
    for task in tasks:
        row = previous.get("tasks", {}).get(task)
        if differs:
            why[task] = "; ".join(differs)
            continue
        if row is None:
            why[task] = "not in the results"
            continue
        plan = plan_for(task, preset, steps, batch_size, lrs)
        found = find_data(task, data_dir)
        data = plan.data.replace("{data}", json.dumps(str(found)) if found is not None else "")
        budget = {"steps": plan.steps, "epochs": plan.epochs, "batch_size": plan.batch_size, "lrs": list(plan.lrs)}
        if row.get("data") != data or row.get("budget") != budget:
            why[task] = f"data {row.get('data')!r} and budget {row.get('budget')} are not {data!r} and {budget}"
            continue
        ran_in = Path(row.get("reused") or previous_dir)
        for lr in plan.lrs:
            ran = ran_in / task / f"lr{lr:g}" / "spec.yaml"
            if not ran.is_file():
                why[task] = f"{ran} is missing"
                break
            if canonical(load_spec(ran)) != canonical(proxy_spec(rs, task, preset, plan, data, lr)):
                why[task] = f"{ran} is not the spec this run would train"
                break
        else:
            rows[task] = {**row, "reused": str(ran_in)}
    return rows, why


def _score(run_dir: Path, split: str) -> float:
    event = last(run_dir, "eval", split) if split == "valid" else last(run_dir, "test")
    return float(event["accuracy"]) if event else float("nan")


def run_lra(rs: ResolvedSpec, out_dir: Path, *, tasks: tuple[str, ...] = TASKS, preset: str = "cpu",
            data_dir: Path = Path("data"), steps: int | None = None, batch_size: int | None = None,
            lrs: tuple[float, ...] | None = None, quiet: bool = True, done: dict[str, dict[str, Any]] | None = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the tasks; returns (and writes) the results: per task the test accuracy of each model at its best
    validation learning rate, the hybrid's searched alphas, its wall time, and the tasks skipped with the reason.
    ``done``: rows of tasks already run (see ``reusable``), kept as they are and not run again."""
    from ..data import build_data
    from ..train.run import TrainOptions, train

    out_dir = Path(out_dir)
    names = list(rs.names)
    results: dict[str, Any] = {"spec": rs.spec.name, "preset": preset, "blocks": rs.num_blocks, "components": names,
                               "data_seed": rs.spec.train.data_seed_or_seed, "seed": rs.spec.train.seed,
                               "tasks": {}, "skipped": {}}
    for task in tasks:
        if done and task in done:
            results["tasks"][task] = done[task]
            say(f"lra: {task}: reused from {done[task].get('reused', 'earlier results')}")
            continue
        began = time.monotonic()
        plan = plan_for(task, preset, steps, batch_size, lrs)
        found = find_data(task, data_dir)
        if "{data}" in plan.data and found is None:
            results["skipped"][task] = missing_reason(task, data_dir)
            say(f"lra: {task} skipped: {results['skipped'][task]}")
            continue
        data = plan.data.replace("{data}", json.dumps(str(found)) if found is not None else "")
        runs, built = [], None
        for lr in plan.lrs:
            proxy = proxy_spec(rs, task, preset, plan, data, lr)
            if built is None:  # the task's data, built once for every learning rate (each run's data is this)
                say(f"lra: {task}: preparing {data}")
                stage = proxy.spec.train.stages[0]
                built = {stage.data: build_data(stage.data, task=proxy.spec.task, tokenizer=None,
                                                seed=proxy.spec.train.data_seed_or_seed, base_dir=proxy.base_dir,
                                                location=proxy.source_map.at("train", "stages", 0, "data"))}
            run_dir = out_dir / task / f"lr{lr:g}"
            say(f"lra: {task} (preset {preset}, lr {lr:g})")
            train(proxy, TrainOptions(out_dir=run_dir, quiet=quiet, resume=True), say=lambda _: None, built=built)
            runs.append((lr, {"hybrid": run_dir, **{m: run_dir / "baselines" / m for m in names}}))
        row: dict[str, Any] = {"data": data, "test": {}, "valid": {}, "lr": {},
                               "budget": {"steps": plan.steps, "epochs": plan.epochs, "batch_size": plan.batch_size,
                                          "lrs": list(plan.lrs)}}
        for model in ["hybrid", *names]:
            lr, dirs = max(runs, key=lambda r: _score(r[1][model], "valid"))
            row["valid"][model] = _score(dirs[model], "valid")
            row["test"][model] = _score(dirs[model], "test")
            row["lr"][model] = lr
            if model == "hybrid":
                row["alphas"] = final_alphas(dirs[model])
        row["minutes"] = round((time.monotonic() - began) / 60, 2)
        results["tasks"][task] = row
        _write(results, out_dir)
    _write(results, out_dir)
    return results


def _write(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lra-results.json").write_text(json.dumps(results, indent=2) + "\n")
    if results["tasks"]:
        plot_lra(results, out_dir / "lra-results.png")


def plot_lra(results: dict[str, Any], path: Path) -> Path:
    """Grouped bars: test accuracy per task and model, the chance level of each task dotted."""
    chance = [1 / (10 if "classify(10)" in PLANS["cpu"][task].task else 2) for task in results["tasks"]]
    return accuracy_bars(results, path, title=f"Long Range Arena ({results['preset']} preset): {results['spec']}",
                         ylabel="test accuracy", chance=chance)
