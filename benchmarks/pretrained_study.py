"""The method's claims on pretrained components: search against a sweep, the hybrid against its parts.

    python benchmarks/pretrained_study.py [--out runs/pretrained-study] [--seeds 0 1 2] [--quick]
                                          [--write benchmarks/README.md] [--figure docs/pretrained-study.png]
    python benchmarks/pretrained_study.py --variant NAME --search EXPR [--settle STEPS] [--free-alphas]
                                          # another search, same components and sweeps
    python benchmarks/pretrained_study.py --report-only --write ... --figure ...   # redo the report

Everything is built here, from text every Python installation has, with hybridc itself:

1. Two corpora. Pretraining: the source of the standard library's top-level modules (``*.py`` in
   ``sysconfig.get_paths()["stdlib"]``, sorted by name, concatenated). Target: the English reference text
   in ``pydoc_data.topics`` (the help topics, sorted by key): prose, not code.
2. Two components of different families, same byte tokenizer: a GPT-Neo-style attention model and a
   Mamba model (``COMPONENTS``), each pretrained alone on the code (a one-component spec, ``hybridc
   train``), then exported as a plain Hugging Face directory (``hybridc discretize``).
3. On the target, for every seed (the spec's ``train.seed``: data order, the split of the search data,
   initial projectors; ``train.data_seed`` is fixed, so every seed is tested on one test split):
   - ``b1``: a one-block hybrid of the two, align -> search -> rewind -> retrain, with ``baselines: true``,
     which also fine-tunes each component alone from its pretrained weights with the same budget (every
     training stage becomes a fine-tuning stage of the same length, the rewind stays: the component's
     final weights have had exactly the hybrid's retraining) on the same splits;
   - ``sweep``: the same one-block hybrid at 11 fixed mixtures (``hybridc sweep``: alpha[mamba] = 0, 0.1,
     ..., 1; each point runs the same stages with its alphas fixed, rewind included, so it differs from the
     searched hybrid only in its alphas);
   - ``b2``: a two-block hybrid, searched the same way, and ``b2-discrete``: the same with discretize
     instead of rewind (each block keeps its heavier component);
   - ``grid``: the two-block hybrid at the 3 x 3 fixed mixtures {0, 0.5, 1}^2.
4. A table of test losses (mean over seeds, with the range), the comparisons read as paired differences
   (runs of one seed share data order, initialisation and the test split: per seed a - b, their mean, a
   95% Student-t interval, t, p and the sign in every seed; ``paired.py``) and a figure: the sweep's
   curve, where search landed, the components alone. Regret = the searched hybrid's test loss - the best
   sweep point's (per seed; the best point is chosen by validation loss, as a user would choose it).

A sweep point and a component alone take the searched hybrid's stages with its weight steps exactly (an
alternating search stage of 100 steps updates the weights 50 times: the fixed mixture's stage has 50). ``--quick`` shrinks every budget to a
smoke run (minutes; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import HEADER, paired  # noqa: E402
from report import write_section  # noqa: E402

COMPONENTS = {
    "neo": "{family: gpt-neo, hidden_size: 128, layers: 4, heads: 4, vocab_size: 259, max_length: 256}",
    "mamba": "{family: mamba, hidden_size: 128, layers: 4, vocab_size: 259}",
}
BLOCK, BATCH = 128, 16  # pretraining: tokens per sequence, sequences per step
TARGET_BLOCK, TARGET_BATCH = 64, 8  # on the target (every hybrid, component and sweep point)
DEFAULT_SEARCH = "darts(lr=0.05, alternate=true)"
DATA_SEED = 0  # the target's split: one test split for every seed
SEEDS = [0, 1, 2]
BUDGETS = {  # steps
    "full": {"pretrain": 1500, "align": 150, "search": 100, "retrain": 100},
    "quick": {"pretrain": 20, "align": 5, "search": 10, "retrain": 10},
}


def write_corpora(data_dir: Path) -> tuple[Path, Path]:
    """(pretraining corpus, target corpus): the standard library's source and pydoc's topics."""
    from pydoc_data.topics import topics

    data_dir.mkdir(parents=True, exist_ok=True)
    code = data_dir / "stdlib.txt"
    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    write_if_changed(code, "".join(f"# ---- {p.name}\n{p.read_text(encoding='utf-8', errors='replace')}\n"
                                   for p in sources))
    prose = data_dir / "pydoc.txt"
    write_if_changed(prose, "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n")
    return code, prose


def write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file alone (another study process may be reading it)."""
    from hybridc.io import atomic_write_text

    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def pretrain_spec(name: str, seed: int, steps: int) -> str:
    return textwrap.dedent(f"""\
        hybridc: 1
        name: pretrain-{name}
        tokenizer: bytes
        components:
          {name}: {{init: {COMPONENTS[name]}}}
        train:
          seed: {seed}
          stages:
            - {{name: pretrain, kind: finetune, train: all, data: "text(data/stdlib.txt, block={BLOCK})",
               steps: {steps}, batch_size: {BATCH}, lr: 2e-3, warmup: {max(1, steps // 20)}, eval_every: {steps}}}
        """)


def hybrid_spec(name: str, blocks: int, seed: int, budget: dict[str, int], *, discretize: bool = False,
                baselines: bool = False, search: str = DEFAULT_SEARCH, settle: int = 0,
                free_alphas: bool = False) -> str:
    """The target spec: both pretrained components, ``blocks`` blocks each, align -> search -> rewind
    (or discretize) -> retrain. Variants of the search: ``settle``: a final alpha-only pass, ``settle`` steps of
    an alternating search after the retraining with every weight fixed (settle / 2 alpha steps on the search
    split: the mixture fitted to the final weights); ``free_alphas``: the retraining trains the alphas too
    (fine-tuning at the searched mixture with the mixture still free)."""
    data = f'"text(data/pydoc.txt, block={TARGET_BLOCK})"'
    stages = [
        f'{{name: align, train: [projectors, alphas], data: {data}, steps: {budget["align"]}, '
        f'batch_size: {TARGET_BATCH}, lr: 3e-3, eval_every: {budget["align"]}}}',
        f'{{name: search, search: "{search}", steps: {budget["search"]}, batch_size: {TARGET_BATCH}, lr: 1e-3, '
        f'eval_every: {budget["search"]}}}',
    ]
    stages.append("{name: discretize}" if discretize else "{name: rewind}")
    groups = "train: [components, projectors, embeddings, head, alphas], " if free_alphas else ""
    stages.append(f'{{name: retrain, {groups}steps: {budget["retrain"]}, batch_size: {TARGET_BATCH}, lr: 1e-3, '
                  f'eval_every: {budget["retrain"]}}}')
    if settle and not discretize:
        stages.append(f'{{name: settle, kind: search, train: [alphas], search: "darts(lr=0.05, alternate=true)", '
                      f'steps: {settle}, batch_size: {TARGET_BATCH}, eval_every: {settle}}}')
    return textwrap.dedent(f"""\
        hybridc: 1
        name: {name}
        tokenizer: bytes
        components:
          neo: {{from: pretrained/neo, blocks: split({blocks})}}
          mamba: {{from: pretrained/mamba, blocks: split({blocks})}}
        hybrid: {{projector: linear, mixture: search}}
        train:
          seed: {seed}
          data_seed: {DATA_SEED}
          baselines: {str(baselines).lower()}
          stages:
        """) + "".join(f"    - {stage}\n" for stage in stages)


class Study:
    """Runs everything under ``out``. With a ``variant`` (a name for another ``search`` expression) only the
    searched hybrids run again (``<variant>-b1-s0``, ``<variant>-b2-s0``): the components alone and the sweeps
    do not depend on the search, so the variant is compared with the main study's."""

    def __init__(self, out: Path, budget: dict[str, int], seeds: list[int], quiet: bool = True,
                 search: str = DEFAULT_SEARCH, variant: str | None = None, settle: int = 0, free_alphas: bool = False):
        self.out, self.budget, self.seeds, self.quiet = out, budget, seeds, quiet
        self.search, self.variant = search, variant
        self.changes = {"settle": settle, "free_alphas": free_alphas}  # hybrid_spec's variants of the stages
        label = search + (f", then a final alpha-only pass ({settle // 2} steps)" if settle else "") + \
            (", alphas free in the retraining" if free_alphas else "")
        self.results: dict = {"seeds": seeds, "budget": budget, "search": search, "label": label, "variant": variant,
                              "data_seed": DATA_SEED, "runs": {}}
        self.began = time.perf_counter()

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.began:7.1f} s] {text}", flush=True)

    def spec(self, name: str, text: str):
        from hybridc.spec import load_spec

        path = self.out / f"{name}.yaml"
        path.write_text(text)
        return load_spec(path)

    def same_spec(self, path: Path, text: str) -> bool:
        """Whether the spec file at ``path`` says what ``text`` says (canonically)."""
        from hybridc.errors import SpecError
        from hybridc.spec.frontend import parse_string

        try:
            old = parse_string(path.read_text(), file=str(path), base_dir=self.out)
        except (OSError, SpecError):
            return False
        return old.canonical_text() == parse_string(text, file="<new>", base_dir=self.out).canonical_text()

    @staticmethod
    def finished_test(run_dir: Path) -> dict | None:
        """The test results of a run that finished (its final model saved), else None."""
        from hybridc.experiments.common import last

        test = last(run_dir, "test")
        return test if test is not None and (run_dir / "final" / "config.json").exists() else None

    def finished(self, name: str, text: str):
        """The result of run ``name`` read from its directory when it already finished with this spec (its
        final model and test, and each baseline's), else None: resuming a finished run would only evaluate
        and save it again."""
        from hybridc.experiments.common import last
        from hybridc.train.finish import RunResult

        run_dir = self.out / "runs" / name
        test = self.finished_test(run_dir)
        if test is None or not self.same_spec(run_dir / "spec.yaml", text):
            return None
        comparison = [{"model": "hybrid", **test}]
        if "baselines: true" in text:
            for component in COMPONENTS:
                row = self.finished_test(run_dir / "baselines" / component)
                if row is None:
                    return None
                comparison.append({"model": f"{component} alone (same budget)", **row})
        cut = last(run_dir, "discretize")
        return RunResult(run_dir, run_dir / "final", tuple(cut["selection"]) if cut else None, test, comparison)

    def train(self, name: str, text: str):
        from hybridc.train.run import TrainOptions, train

        done = self.finished(name, text)
        self.say(f"{'read (finished)' if done else 'training'} {name}")
        if done is not None:
            return done
        return train(self.spec(name, text), TrainOptions(out_dir=self.out / "runs" / name, quiet=self.quiet, resume=True),
                     say=lambda _: None)

    def sweep(self, name: str, blocks: int, grid: str, seed: int) -> list[dict]:
        """The sweep's rows (``run_sweep``'s), read from its points when every one already finished."""
        from hybridc.experiments.sweep import parse_grid, point_dir, point_row, run_sweep

        text = hybrid_spec(f"{name}-s{seed}", blocks, seed, self.budget)
        out = self.out / "runs" / f"{name}-s{seed}"
        points = list(itertools.product(parse_grid(grid), repeat=blocks))
        tests = [self.finished_test(point_dir(out, p)) for p in points]
        if self.same_spec(self.out / f"{name}-s{seed}.yaml", text) and all(t is not None for t in tests):
            self.say(f"read (finished) {name} (seed {seed})")
            return [point_row(p, point_dir(out, p), t) for p, t in zip(points, tests)]
        self.say(f"{name} (seed {seed})")
        return run_sweep(self.spec(f"{name}-s{seed}", text), parse_grid(grid), out, quiet=self.quiet,
                         search_run=self.out / "runs" / f"b{blocks}-s{seed}", say=lambda _: None)

    def pretrain(self) -> None:
        from hybridc.models.export import export
        from hybridc.models.load import load_hybrid

        for name in COMPONENTS:
            target = self.out / "pretrained" / name
            result = self.train(f"pretrain-{name}", pretrain_spec(name, 0, self.budget["pretrain"]))
            self.results["runs"][f"pretrain-{name}"] = result.test
            exported = export(load_hybrid(result.run_dir), target)  # what `hybridc discretize RUN -o DIR` does
            assert exported.kind != "hybrid", exported
            self.say(f"exported {target} as a plain {exported.kind} model (test loss on code {result.test['loss']:.3f})")

    def target_runs(self, seed: int) -> None:
        from hybridc.experiments.common import final_alphas

        b = self.budget
        record = self.results["runs"].setdefault(str(seed), {})
        prefix = f"{self.variant}-" if self.variant else ""
        run = f"{prefix}b1-s{seed}"
        result = self.train(run, hybrid_spec(run, 1, seed, b, baselines=not self.variant, search=self.search,
                                             **self.changes))
        record["b1"] = {"test": result.test, "alphas": final_alphas(self.out / "runs" / run)}
        if not self.variant:
            record["b1"]["baselines"] = {row["model"].split()[0]: row for row in result.comparison[1:]}
        for name, blocks, discrete in (("b2", 2, False), ("b2-discrete", 2, True))[:1 if self.variant else 2]:
            run = f"{prefix}{name}-s{seed}"
            result = self.train(run, hybrid_spec(run, blocks, seed, b, discretize=discrete, search=self.search,
                                                 **self.changes))
            record[name] = {"test": result.test, "alphas": final_alphas(self.out / "runs" / run),
                            "selection": list(result.selection or [])}
        if self.variant:
            return
        for name, blocks, grid in (("sweep", 1, "0:1:11"), ("grid", 2, "0:1:3")):
            record[name] = self.sweep(name, blocks, grid, seed)

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        write_corpora(self.out / "data")
        if self.variant is None:
            self.pretrain()
        elif not all((self.out / "pretrained" / name / "config.json").exists() for name in COMPONENTS):
            raise SystemExit("error: a variant reuses the main study's components: run it first (without --variant)")
        for seed in self.seeds:
            self.target_runs(seed)
        self.results["seconds"] = time.perf_counter() - self.began
        name = f"results-{self.variant}.json" if self.variant else "results.json"
        (self.out / name).write_text(json.dumps(self.results, indent=2) + "\n")
        return self.results


# ---- the report ------------------------------------------------------------------------------------


def summary(results: dict) -> dict[str, list[float]]:
    """Per seed: the test loss of every model, the best sweep and grid points (by validation loss)."""
    rows: dict[str, list[float]] = {}

    def add(key, value):
        rows.setdefault(key, []).append(value)

    for seed in map(str, results["seeds"]):
        r = results["runs"][seed]
        add("neo alone", r["b1"]["baselines"]["neo"]["loss"])
        add("mamba alone", r["b1"]["baselines"]["mamba"]["loss"])
        add("hybrid, 1 block, searched + retrained", r["b1"]["test"]["loss"])
        best = min(r["sweep"], key=lambda p: p["valid_loss"])
        add("best sweep point (1 block)", best["test_loss"])
        add("alpha[mamba] of the best sweep point", best["alpha_block0"])
        add("alpha[mamba] found by search (1 block)", r["b1"]["alphas"][0][1])
        add("regret (1 block)", r["b1"]["test"]["loss"] - best["test_loss"])
        add("hybrid, 2 blocks, searched + retrained", r["b2"]["test"]["loss"])
        add("hybrid, 2 blocks, searched + discretized + retrained", r["b2-discrete"]["test"]["loss"])
        best2 = min(r["grid"], key=lambda p: p["valid_loss"])
        add("best grid point (2 blocks)", best2["test_loss"])
        add("regret (2 blocks)", r["b2"]["test"]["loss"] - best2["test_loss"])
        better = min(r["b1"]["baselines"]["neo"]["loss"], r["b1"]["baselines"]["mamba"]["loss"])
        add("hybrid (1 block) - better component", r["b1"]["test"]["loss"] - better)
    return rows


PAIRS = (  # (a, b): a - b per seed, from ``summary``'s rows
    ("hybrid, 1 block, searched + retrained", "mamba alone"),
    ("hybrid, 1 block, searched + retrained", "neo alone"),
    ("hybrid, 1 block, searched + retrained", "best sweep point (1 block)"),
    ("hybrid, 2 blocks, searched + retrained", "best grid point (2 blocks)"),
    ("hybrid, 2 blocks, searched + retrained", "hybrid, 1 block, searched + retrained"),
    ("best sweep point (1 block)", "mamba alone"),
)


def paired_table(rows: dict[str, list[float]]) -> str:
    lines = [HEADER]
    for a, b in PAIRS:
        lines.append(paired(rows[a], rows[b]).row(f"{a} - {b}"))
    return "\n".join(lines)


def variant_summary(main: dict, variant: dict) -> dict[str, list[float]]:
    """Per seed of the variant: where its search landed and its regrets, against the main study's sweeps
    and components."""
    rows: dict[str, list[float]] = {}
    for seed in map(str, variant["seeds"]):
        r, m = variant["runs"][seed], main["runs"][seed]
        best = min(m["sweep"], key=lambda p: p["valid_loss"])
        best2 = min(m["grid"], key=lambda p: p["valid_loss"])
        better = min(m["b1"]["baselines"]["neo"]["loss"], m["b1"]["baselines"]["mamba"]["loss"])
        for key, value in (("alpha[mamba] found (1 block)", r["b1"]["alphas"][0][1]),
                           ("regret (1 block)", r["b1"]["test"]["loss"] - best["test_loss"]),
                           ("regret (2 blocks)", r["b2"]["test"]["loss"] - best2["test_loss"]),
                           ("hybrid (1 block) - better component", r["b1"]["test"]["loss"] - better)):
            rows.setdefault(key, []).append(value)
    return rows


def variants_table(main: dict, variants: list[dict]) -> str:
    """One row per search expression (the main study's first): mean (range over seeds) of each number."""
    entries = [(main["search"] + " (the table's)", variant_summary(main, main))]
    entries += [(v.get("label", v["search"]), variant_summary(main, v)) for v in variants if v["seeds"] == main["seeds"]]
    keys = list(entries[0][1])
    lines = ["| search | " + " | ".join(keys) + " | regret (1 block): 95% CI, signs |",
             "|---|" + "---:|" * len(keys) + "---|"]
    for search, rows in entries:
        regret = paired(rows["regret (1 block)"], [0.0] * len(rows["regret (1 block)"]))
        signs = "".join("+" if d > 0 else "-" for d in regret.differences)
        lines.append(f"| `{search}` | " + " | ".join(
            f"{statistics.mean(rows[k]):.4f} ({max(rows[k]) - min(rows[k]):.4f})" for k in keys)
            + f" | [{regret.ci_low:+.4f}, {regret.ci_high:+.4f}] {signs} |")
    return "\n".join(lines)


def table(rows: dict[str, list[float]]) -> str:
    lines = ["| | mean | range over seeds | per seed |", "|---|---:|---:|---|"]
    for key, values in rows.items():
        lines.append(f"| {key} | {statistics.mean(values):.4f} | {max(values) - min(values):.4f} | "
                     + ", ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


def figure(results: dict, path: Path, variants: list[dict] = ()) -> None:
    """Three panels: (a) the sweep's test loss against alpha[mamba] (seeds' mean and range), where search
    landed, the components alone; (b) the same near the best points, one line per seed, so that each
    searched hybrid is read against its own seed's sweep; (c) the two-block grid (mean test loss) with the
    two-block searches' alphas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = list(map(str, results["seeds"]))
    runs = results["runs"]
    xs = [p["alpha_block0"] for p in runs[seeds[0]]["sweep"]]
    curves = [[p["test_loss"] for p in runs[s]["sweep"]] for s in seeds]
    mean = [statistics.mean(c[i] for c in curves) for i in range(len(xs))]
    fig, (ax, zoom, grid_ax) = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1.2, 1.2, 0.9]})
    ax.fill_between(xs, [min(c[i] for c in curves) for i in range(len(xs))],
                    [max(c[i] for c in curves) for i in range(len(xs))], alpha=0.2, color="C0")
    ax.plot(xs, mean, "o-", color="C0", label="fixed mixture (seeds' mean and range)")
    for i, s in enumerate(seeds):
        r = runs[s]["b1"]
        ax.plot([r["alphas"][0][1]], [r["test"]["loss"]], "*", ms=12, color="C3",
                label=f"searched: {results['search']}" if i == 0 else None)
        zoom.plot(xs, curves[i], "o-", color=f"C{i}", lw=1, ms=3, label=f"seed {s}: fixed mixtures")
        zoom.plot([r["alphas"][0][1]], [r["test"]["loss"]], "*", ms=13, color=f"C{i}", mec="k",
                  label=f"searched: {results['search']}" if i == 0 else None)
        for k, v in enumerate(variants):
            if s in v["runs"]:
                rv = v["runs"][s]["b1"]
                zoom.plot([rv["alphas"][0][1]], [rv["test"]["loss"]], "^v<>"[k % 4], ms=7, color=f"C{i}", mec="k",
                          label=f"searched: {v.get('label', v['search'])}" if i == 0 else None)
    for name, color in (("neo", "C1"), ("mamba", "C2")):
        loss = statistics.mean(runs[s]["b1"]["baselines"][name]["loss"] for s in seeds)
        ax.axhline(loss, ls="--", color=color, label=f"{name} alone, fine-tuned (mean)")
    ax.set_xlabel("alpha[mamba] (one block; alpha[neo] = 1 - alpha[mamba])")
    ax.set_ylabel("test loss (nats per byte)")
    ax.set_title("(a) one block: fixed mixtures, search, the parts", fontsize=10)
    ax.legend(fontsize=7)
    lo = min(xs[i] for i in range(len(xs)) if mean[i] <= min(mean) + 0.15 * (max(mean) - min(mean)))
    zoom.set_xlim(lo - 0.05, 1.02)
    tail = [c[i] for c in curves for i in range(len(xs)) if xs[i] >= lo]
    zoom.set_ylim(min(tail) - 0.01, max(tail) + 0.01)
    zoom.set_xlabel("alpha[mamba]")
    zoom.set_title("(b) near the best, per seed (point 1.0 = Mamba alone)", fontsize=10)
    zoom.legend(fontsize=6, loc="upper right")
    for a in (ax, zoom):
        a.grid(alpha=0.3)
    values = sorted({p["alpha_block0"] for p in runs[seeds[0]]["grid"]})
    cells = [[statistics.mean(next(p["test_loss"] for p in runs[s]["grid"] if p["alpha_block0"] == a0
                                   and p["alpha_block1"] == a1) for s in seeds) for a0 in values] for a1 in values]
    image = grid_ax.imshow(cells, origin="lower", cmap="viridis", extent=(-0.25, 1.25, -0.25, 1.25))
    for r, a1 in enumerate(values):
        for c, a0 in enumerate(values):
            grid_ax.text(a0, a1, f"{cells[r][c]:.3f}", ha="center", va="center", fontsize=7, color="w")
    for i, s in enumerate(seeds):
        a = runs[s]["b2"]["alphas"]
        grid_ax.plot([a[0][1]], [a[1][1]], "*", ms=12, color="C3", mec="k", label="searched (each seed)" if i == 0 else None)
    grid_ax.set_xticks(values)
    grid_ax.set_yticks(values)
    grid_ax.set_xlabel("alpha[mamba], block 0")
    grid_ax.set_ylabel("alpha[mamba], block 1")
    grid_ax.set_title("(c) two blocks: mean test loss of fixed mixtures", fontsize=10)
    grid_ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(image, ax=grid_ax, fraction=0.046)
    fig.suptitle("Pretrained GPT-Neo-style + Mamba (both pretrained here on the stdlib's code), fine-tuned on pydoc's "
                 "English text", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict, command: str, variants: list[dict]) -> str:
    import torch

    body = textwrap.dedent(f"""\
        Measured with `{command}` on {platform.machine()}, {os.cpu_count()} cores (every run from scratch: about an hour),
        Python {platform.python_version()}, torch {torch.__version__}. Steps of {BATCH} x {BLOCK} bytes in pretraining,
        {TARGET_BATCH} x {TARGET_BLOCK} bytes on the target: {json.dumps(results['budget'])}; seeds {results['seeds']};
        search `{results['search']}`. Test losses are nats per byte on the target's test split, one split for every
        seed (`data_seed: {results.get('data_seed', DATA_SEED)}`).

        """) + table(summary(results)) + "\n"
    body += ("\nPaired by seed (each seed's runs share data order, initialisation and the test split): a - b per "
             "seed, its mean, a 95% Student-t interval of the mean, t, the two-sided p and the sign in every seed.\n\n"
             + paired_table(summary(results)) + "\n")
    if variants:
        body += ("\nOther searches, each rerun on the same seeds (`--variant NAME --search EXPR [--settle STEPS] "
                 "[--free-alphas]`; the components alone and the sweeps are the table's): mean (range over seeds); "
                 "the last column is the one-block regret's 95% interval (paired by seed) and its sign in each seed. "
                 "`alphas free in the retraining`: the retraining stage trains the alphas with the weights; `a final "
                 "alpha-only pass`: after the retraining, an alternating search stage that trains only the alphas "
                 "(on the search split, every weight fixed).\n\n" + variants_table(results, variants) + "\n")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pretrained-study")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--quick", action="store_true", help="smoke-run budgets")
    parser.add_argument("--search", default=DEFAULT_SEARCH, help=f"the search stage's algorithm (default {DEFAULT_SEARCH})")
    parser.add_argument("--variant", help="rerun only the searched hybrids with --search, under this name")
    parser.add_argument("--settle", type=int, default=0, metavar="STEPS",
                        help="a variant: a final alternating alpha-only search of STEPS after the retraining (STEPS/2 alpha steps)")
    parser.add_argument("--free-alphas", action="store_true", help="a variant: the retraining trains the alphas too")
    parser.add_argument("--report-only", action="store_true", help="report the results already in --out")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
    else:
        if (args.settle or args.free_alphas) and not args.variant:
            parser.error("--settle and --free-alphas change the search: name the variant (--variant NAME)")
        study = Study(args.out, BUDGETS["quick" if args.quick else "full"], args.seeds, search=args.search,
                      variant=args.variant, settle=args.settle, free_alphas=args.free_alphas)
        results = study.run()
        if args.variant:
            results = json.loads((args.out / "results.json").read_text())
    variants = [json.loads(p.read_text()) for p in sorted(args.out.glob("results-*.json"))]
    command = "python benchmarks/pretrained_study.py" + (" --quick" if results["budget"] == BUDGETS["quick"] else "") + \
        ("" if results["seeds"] == SEEDS else " --seeds " + " ".join(map(str, results["seeds"])))
    body = report(results, command, variants)
    print(body)
    if args.figure:
        figure(results, args.figure, variants)
    if args.write:
        write_section(args.write, "pretrained-study", "Pretrained components: search vs sweep, hybrid vs its parts", body)


if __name__ == "__main__":
    main()
