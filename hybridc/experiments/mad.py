"""``hybridc mad``: the hybrid and each of its components trained from scratch on the MAD proxy tasks.

For every task the spec's components become small from-scratch proxies (same families; ``init:``
components keep their config, pretrained ones get a small proxy size), joined the same way over the
same number of blocks, and searched on the task; each component alone trains with the same budget.
Accuracy here is MAD's macro accuracy (``macro_accuracy``: torchmetrics' macro ``MulticlassAccuracy``
over the classes that are a target or predicted, see ``train.loop.MacroAccuracy``). For each model the
learning rate with the best validation accuracy is kept (``--lrs``; validation only, never test), and
its test accuracy goes into the table, ``mad-results.json`` (with the searched alphas per task and
block, which ``hybridc program`` reads) and a PNG.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..io.guarded_dir import GuardedDir
from ..spec.frontend import ResolvedSpec
from ..spec.mad_presets import TASKS, sequence_length, settings
from ..spec.model import DEFAULT_SEARCH
from ..train.run import TrainOptions, train
from .common import accuracy_bars, canonical, final_alphas, last, spec_from_data

ATTENTION_PROXY = {"hidden_size": 64, "layers": 2, "heads": 4}
RECURRENT_PROXY = {"hidden_size": 64, "layers": 2}


@dataclass(frozen=True)
class MadBudget:
    steps: int = 300
    batch_size: int = 32
    lrs: tuple[float, ...] = (1e-3,)
    weight_decay: float = 0.0


def proxy_components(rs: ResolvedSpec, vocab: int, length: int) -> dict[str, Any]:
    out = {}
    blocks = rs.num_blocks
    for rc in rs.components:
        component = rs.spec.component(rc.name)
        if component.source.kind == "init":
            init = {k: v for k, v in canonical(rs)["components"][rc.name]["init"].items()}
        else:
            from ..components.registry import get_family

            family = get_family(rc.family)
            init = {"family": rc.family, **(ATTENTION_PROXY if family.has_attention else RECURRENT_PROXY)}
            while family.config_problems(family.init_config({k: v for k, v in init.items() if k != "family"}, {})):
                init["hidden_size"] *= 2  # a family whose widths round up (xLSTM): the smallest it builds
                if init["hidden_size"] > 1024:
                    break
        init["layers"] = max(int(init.get("layers", 2)), blocks)
        init["vocab_size"] = vocab
        if "max_length" in init or "heads" in init:
            init["max_length"] = max(int(init.get("max_length") or 0), length)
        out[rc.name] = {"init": init, "blocks": f"split({blocks})", "trust_remote_code": False}
    return out


def proxy_spec(rs: ResolvedSpec, task: str, preset: str, lr: float, budget: MadBudget) -> ResolvedSpec:
    values = settings(task, preset)
    data = canonical(rs)
    data["name"] = f"{rs.spec.name}-mad-{task}"
    data["tokenizer"] = rs.names[0]
    data["components"] = proxy_components(rs, values["vocab"], sequence_length(task, values))
    data["hybrid"].update(width="max", embeddings="mix", head="mix", mixture="search")
    data["task"] = "compress" if task == "compression" else "causal-lm"
    search = next((s.get("search") for s in data["train"]["stages"] if s.get("kind") == "search"), str(DEFAULT_SEARCH))
    data["train"] = {
        "seed": rs.spec.train.seed, "checkpoint_every": 0, "baselines": True,
        **({"data_seed": rs.spec.train.data_seed} if rs.spec.train.data_seed is not None else {}),
        "stages": [{"name": "search", "kind": "search", "search": search,
                    "data": f"mad({task}, preset={preset})", "steps": budget.steps, "batch_size": budget.batch_size,
                    "lr": lr, "weight_decay": budget.weight_decay, "schedule": "cosine", "warmup": min(20, budget.steps // 10)}],
    }
    return spec_from_data(data, rs.base_dir, f"mad proxy {task}")


def _score(run_dir: Path, split: str) -> float:
    event = last(run_dir, "eval", split) if split == "valid" else last(run_dir, "test")
    return float(event["macro_accuracy"]) if event else float("nan")


def run_mad(rs: ResolvedSpec, out_dir: Path, *, tasks: tuple[str, ...] = TASKS, preset: str = "cpu",
            budget: MadBudget = MadBudget(), quiet: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the suite; returns (and writes) the results: per task the test accuracy of each model at its
    best validation setting, and the hybrid's searched alphas."""
    out_dir = Path(out_dir)
    names = list(rs.names)
    results: dict[str, Any] = {"spec": rs.spec.name, "preset": preset, "blocks": rs.num_blocks, "components": names,
                               "budget": {"steps": budget.steps, "batch_size": budget.batch_size,
                                          "lrs": list(budget.lrs), "weight_decay": budget.weight_decay},
                               "tasks": {}}
    with GuardedDir.open(out_dir, create=True) as out:  # (every run inside it, and the results)
        for task in tasks:
            runs = []
            for lr in budget.lrs:
                run_dir = out_dir / task / f"lr{lr:g}"
                say(f"mad: {task} (preset {preset}, lr {lr:g})")
                with out.child(task, create=True) as task_dir:
                    train(proxy_spec(rs, task, preset, lr, budget),
                          TrainOptions(out_dir=run_dir, quiet=quiet, resume=True, label="hybrid"), say=lambda _: None,
                          within=task_dir)
                models = {"hybrid": run_dir, **{m: run_dir / "baselines" / m for m in names}}
                runs.append((lr, models))
            row: dict[str, Any] = {"test": {}, "valid": {}, "lr": {}}
            for model in ["hybrid", *names]:
                lr, dirs = max(runs, key=lambda r: _score(r[1][model], "valid"))
                row["valid"][model] = _score(dirs[model], "valid")
                row["test"][model] = _score(dirs[model], "test")
                row["lr"][model] = lr
                if model == "hybrid":
                    row["alphas"] = final_alphas(dirs[model])
            results["tasks"][task] = row
        out.write_text("mad-results.json", json.dumps(results, indent=2) + "\n")
        image = io.BytesIO()
        plot_mad(results, image)
        out.write_bytes("mad-results.png", image.getvalue())
    return results


def plot_mad(results: dict[str, Any], path: Path | BinaryIO) -> Path | BinaryIO:
    """Grouped bars: test accuracy per task and model, as a PNG in ``path`` (a file name or a binary file)."""
    labels = [t.replace("-in-context", "\nin-context").replace("-", " ") for t in results["tasks"]]
    return accuracy_bars(results, path, title=f"MAD ({results['preset']} preset): {results['spec']}",
                         ylabel="test accuracy (macro)", labels=labels)
