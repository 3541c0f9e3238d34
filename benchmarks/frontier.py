"""Hybrids under an inference budget: test loss against cost for the continuous hybrid, argmax
discretization, budgeted discretization (+ retraining or + distillation) and each component alone.

    python benchmarks/frontier.py [--out runs/frontier] [--seeds 0 1 2] [--budgets 0.4 0.46] [--quick]
                                  [--write benchmarks/README.md] [--figure docs/frontier.png]
    python benchmarks/frontier.py --report-only ...     # redo the report and figure from --out

The pair: a Llama-style attention model and a Mamba model (4 layers, width 64 each, cut into 4 blocks of one
layer), new, on in-context recall (``recall(vocab=16, length=64)``): attention is the component the task
wants in some blocks and the expensive one (FLOPs per token, and a KV cache that grows with the context),
so a budget below the searched argmax binds. Every arm takes the same weight steps (a 300-step joint search,
then 100 steps) from the same seed, so the arms of one seed share their data order, initialisation and test
split (``train.data_seed`` fixed) and are compared paired by seed:

- ``continuous``: search, then 100 fine-tuning steps of the continuous hybrid (both components in every
  block); with ``baselines: true``, which also trains each component alone for the same 400 steps;
- ``argmax``: search, discretize (argmax per block), retrain;
- ``budget-<share>``: ``hybrid.budget: {flops_per_token: <share>x}``: the search is cost-aware and the
  discretize stage keeps the most probable selection within the budget; then retrain;
- ``budget-<share>-distill``: the same search and selection (same seed: bit-identical up to discretize),
  then ``distill`` (KL to the continuous hybrid at the discretize stage, temperature 2) instead of retraining.

Costs: FLOPs per token from hybridc's cost model (``hybridc compile``'s table), relative to the continuous
hybrid; and decode latency measured here: each final model, loaded from its directory, prefills a 64-token
prompt and decodes 64 tokens greedily with its cache, all models in lockstep (one step of each in turn), the
median step per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import HEADER, paired  # noqa: E402
from report import write_section  # noqa: E402

COMPONENTS = {
    "attn": "{family: llama, hidden_size: 64, layers: 4, heads: 4, vocab_size: 32, max_length: 128}",
    "ssm": "{family: mamba, hidden_size: 64, layers: 4, vocab_size: 32}",
}
BLOCKS = 4
DATA = "recall(vocab=16, length=64, examples=4096)"
SEARCH = "dash(lr=0.05, alternate=false, tau=1.0)"
SEEDS = [0, 1, 2]
SHARES = [0.4, 0.46]
STEPS = {"full": {"search": 300, "after": 100}, "quick": {"search": 20, "after": 10}}
PROMPT, NEW, ROUNDS = 64, 64, 5  # decode latency: prompt tokens, decoded tokens, lockstep rounds


def spec_text(name: str, seed: int, steps: dict[str, int], *, after: str, share: float | None = None,
              baselines: bool = False) -> str:
    """An arm's spec: the joint search, then ``after``: 'finetune' (the continuous hybrid), 'retrain' or
    'distill' (both after a discretize stage)."""
    budget = f", budget: {{flops_per_token: {share}x}}" if share is not None else ""
    stages = [f'{{name: search, train: [components, projectors, embeddings, head, alphas], data: "{DATA}", '
              f'search: "{SEARCH}", steps: {steps["search"]}, batch_size: 32, lr: 3e-3, warmup: 20, '
              f'eval_every: {steps["search"]}}}']
    tail = f'steps: {steps["after"]}, batch_size: 32, lr: 1e-3, eval_every: {steps["after"]}'
    if after == "finetune":
        stages.append(f"{{name: finetune, kind: finetune, {tail}}}")
    else:
        stages.append("{name: discretize}")
        stages.append(f'{{name: distill, kind: distill, distill: "kl(temperature=2.0, ce=0.0)", {tail}}}'
                      if after == "distill" else f"{{name: retrain, {tail}}}")
    components = "".join(f"          {c}: {{init: {init}, blocks: split({BLOCKS})}}\n" for c, init in COMPONENTS.items())
    return textwrap.dedent(f"""\
        hybridc: 1
        name: {name}
        tokenizer: attn
        components:
        """) + components + textwrap.dedent(f"""\
        hybrid: {{projector: linear, embeddings: mix, head: mix, mixture: search{budget}}}
        train:
          seed: {seed}
          data_seed: 0
          baselines: {str(baselines).lower()}
          stages:
        """) + "".join(f"    - {s}\n" for s in stages)


def arms(shares: list[float]) -> dict[str, dict]:
    """Arm name -> spec_text's keyword arguments."""
    table: dict[str, dict] = {"continuous": {"after": "finetune", "baselines": True}, "argmax": {"after": "retrain"}}
    for share in shares:
        table[f"budget-{share:g}"] = {"after": "retrain", "share": share}
        table[f"budget-{share:g}-distill"] = {"after": "distill", "share": share}
    return table


class Frontier:
    def __init__(self, out: Path, seeds: list[int], shares: list[float], steps: dict[str, int]):
        self.out, self.seeds, self.shares, self.steps = out, seeds, shares, steps
        self.began = time.perf_counter()
        self.trained = False  # whether this invocation trained anything (else its time is not the study's)

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.began:7.1f} s] {text}", flush=True)

    def train(self, name: str, text: str) -> Path:
        """Run ``name`` (resuming it; a run already finished with this spec is only read)."""
        from hybridc.spec import load_spec
        from hybridc.train.run import TrainOptions, train

        run_dir = self.out / "runs" / name
        path = self.out / f"{name}.yaml"
        if (run_dir / "final" / "config.json").exists() and path.is_file() and path.read_text() == text \
                and _finished_baselines(run_dir, text):
            self.say(f"read (finished) {name}")
            return run_dir
        self.say(f"training {name}")
        self.trained = True
        path.write_text(text)
        train(load_spec(path), TrainOptions(out_dir=run_dir, quiet=True, resume=True), say=lambda _: None)
        return run_dir

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        dirs: dict[str, dict[str, Path]] = {}
        for seed in self.seeds:
            for arm, kwargs in arms(self.shares).items():
                name = f"{arm}-s{seed}"
                dirs.setdefault(str(seed), {})[arm] = self.train(name, spec_text(name, seed, self.steps, **kwargs))
            for component in COMPONENTS:
                dirs[str(seed)][f"{component} alone"] = dirs[str(seed)]["continuous"] / "baselines" / component
        self.say("measuring decode latency")
        latency = measure_latency({(s, arm): d for s, row in dirs.items() for arm, d in row.items()})
        results = {"seeds": self.seeds, "shares": self.shares, "steps": self.steps, "runs": {}}
        for seed, row in dirs.items():
            for arm, run_dir in row.items():
                results["runs"].setdefault(seed, {})[arm] = describe(run_dir, latency[(seed, arm)])
            for component in COMPONENTS:  # a component alone's spec is its own: costs relative to the hybrid's
                results["runs"][seed][f"{component} alone"]["continuous_flops_per_token"] = \
                    results["runs"][seed]["continuous"]["continuous_flops_per_token"]
        earlier = self.out / "results.json"
        results["seconds"] = time.perf_counter() - self.began if self.trained or not earlier.is_file() else \
            json.loads(earlier.read_text())["seconds"]  # every run was read: the time of the run that made them
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        (self.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results


def _finished_baselines(run_dir: Path, text: str) -> bool:
    return "baselines: true" not in text or all(
        (run_dir / "baselines" / c / "final" / "config.json").exists() for c in COMPONENTS)


def describe(run_dir: Path, latency: dict[str, float]) -> dict:
    """A finished run's test results, its selection and its costs (FLOPs/token of its own graph and of the
    continuous hybrid of its spec)."""
    from hybridc.experiments.common import events, final_alphas, last
    from hybridc.graph.budget import cost_of, flops
    from hybridc.graph.build import build_graph
    from hybridc.graph.selection import discretize_graph
    from hybridc.spec import load_spec

    test = last(run_dir, "test")
    cut = last(run_dir, "discretize")
    rs = load_spec(run_dir / "spec.yaml")
    continuous = cost_of(build_graph(rs), flops)
    model_graph = build_graph(rs) if cut is None else discretize_graph(rs, cut["selection"])
    searched = [e["loss"] for e in events(run_dir) if e.get("event") == "eval" and e.get("stage") == "search"]
    return {"loss": test["loss"], "accuracy": test["accuracy"], "selection": cut["selection"] if cut else None,
            "search_valid_loss": searched[-1] if searched else None,  # a distill stage's teacher's
            "alphas": final_alphas(run_dir), "flops_per_token": cost_of(model_graph, flops),
            "continuous_flops_per_token": continuous, **latency}


def measure_latency(dirs: dict) -> dict:
    """{key: {"prefill_ms": ..., "decode_ms": ...}}: every model prefills a PROMPT-token prompt and decodes
    NEW tokens with its cache; models take turns step by step (``ROUNDS`` rounds, the median per model)."""
    import torch

    from hybridc.models.load import load_hybrid

    torch.manual_seed(0)
    models = {key: load_hybrid(d) for key, d in dirs.items()}
    ids = torch.randint(0, 16, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    times = {key: ([], []) for key in models}
    with torch.no_grad():
        for round_ in range(ROUNDS + 1):  # the first round warms up
            caches, tokens = {}, {}
            for key, model in models.items():
                caches[key] = model.new_cache()
                start = time.perf_counter()
                logits = model(ids, past_key_values=caches[key], use_cache=True).logits
                if round_:
                    times[key][0].append(time.perf_counter() - start)
                tokens[key] = logits[:, -1:].argmax(-1)
            for _ in range(NEW):
                for key, model in models.items():
                    start = time.perf_counter()
                    logits = model(tokens[key], past_key_values=caches[key], use_cache=True).logits
                    if round_:
                        times[key][1].append(time.perf_counter() - start)
                    tokens[key] = logits[:, -1:].argmax(-1)
    return {key: {"prefill_ms": 1e3 * statistics.median(p), "decode_ms": 1e3 * statistics.median(d)}
            for key, (p, d) in times.items()}


# ---- the report ------------------------------------------------------------------------------------


def order(results: dict) -> list[str]:
    """Arms in the report's order: the components alone, the continuous hybrid, argmax, the budgets."""
    names = list(results["runs"][str(results["seeds"][0])])
    return [f"{c} alone" for c in COMPONENTS] + [n for n in names if not n.endswith(" alone")]


def per_seed(results: dict, arm: str, key: str) -> list[float]:
    return [results["runs"][str(s)][arm][key] for s in results["seeds"]]


def share(row: dict) -> float:
    """FLOPs per token relative to the continuous hybrid of the same spec (the components alone: of the
    seed's continuous hybrid, whose baselines they are)."""
    return row["flops_per_token"] / row["continuous_flops_per_token"]


def table(results: dict) -> str:
    lines = ["| model | selection per seed | FLOPs/token (x continuous) | decode ms/token | prefill ms (64 tokens) | "
             "test loss: mean (range) | test accuracy |", "|---|---|---:|---:|---:|---:|---:|"]
    for arm in order(results):
        rows = [results["runs"][str(s)][arm] for s in results["seeds"]]
        loss = [r["loss"] for r in rows]
        selections = "; ".join(" ".join(x[:1] for x in r["selection"]) if r["selection"] else "-" for r in rows)
        shares = sorted({round(share(r), 2) for r in rows})
        lines.append(f"| {arm} | {selections} | {', '.join(f'{x:.2f}' for x in shares)} | "
                     f"{statistics.mean(r['decode_ms'] for r in rows):.2f} | "
                     f"{statistics.mean(r['prefill_ms'] for r in rows):.1f} | "
                     f"{statistics.mean(loss):.4f} ({max(loss) - min(loss):.4f}) | "
                     f"{statistics.mean(r['accuracy'] for r in rows):.3f} |")
    return "\n".join(lines)


def pairs(results: dict) -> list[tuple[str, str]]:
    found = [("argmax", "continuous")]
    for s in results["shares"]:
        found += [(f"budget-{s:g}", "argmax"), (f"budget-{s:g}-distill", f"budget-{s:g}"),
                  (f"budget-{s:g}-distill", "argmax")]
    return found + [(f"budget-{results['shares'][0]:g}-distill", f"{c} alone") for c in COMPONENTS]


def paired_table(results: dict) -> str:
    lines = [HEADER]
    for a, b in pairs(results):
        lines.append(paired(per_seed(results, a, "loss"), per_seed(results, b, "loss")).row(f"{a} - {b}"))
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    """Test loss against FLOPs per token (x continuous) and against measured decode latency: every seed's
    run small, each arm's mean large, the Pareto front of the means drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    arms_ = order(results)
    for ax, (xkey, xlabel) in zip(axes, (("share", "FLOPs per token (x the continuous hybrid's), cost model"),
                                         ("decode_ms", "decode latency, ms per token (measured here, batch 1)"))):
        means = []
        for i, arm in enumerate(arms_):
            rows = [results["runs"][str(s)][arm] for s in results["seeds"]]
            xs = [share(r) if xkey == "share" else r[xkey] for r in rows]
            ys = [r["loss"] for r in rows]
            marker = "s" if arm.endswith("alone") else ("D" if "distill" in arm else "o")
            ax.scatter(xs, ys, s=14, color=f"C{i}", alpha=0.45, marker=marker)
            mx, my = statistics.mean(xs), statistics.mean(ys)
            ax.scatter([mx], [my], s=90, color=f"C{i}", marker=marker, edgecolors="k", label=arm, zorder=3)
            means.append((mx, my))
        front, best = [], float("inf")
        for mx, my in sorted(means):
            if my < best:
                front.append((mx, my))
                best = my
        ax.plot(*zip(*front), "k--", lw=1, alpha=0.6, label="Pareto front (means)")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test loss (nats per token, log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("Attention + Mamba on in-context recall, 4 blocks: cost against test loss "
                 f"(seeds {results['seeds']}: small marks; means: large)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def teachers(results: dict) -> str:
    """A sentence on the distill stages' teachers: the continuous hybrids at the end of their searches."""
    rows = [(arm, results["runs"][str(s)][arm].get("search_valid_loss")) for arm in order(results)
            if arm.endswith("-distill") for s in results["seeds"]]
    losses = [loss for _, loss in rows if loss is not None]
    if not losses:
        return "\n"
    return (f"\n\nThe distill stages' teacher is the continuous hybrid at the end of its search: validation loss "
            f"{statistics.mean(losses):.4f} (mean; {min(losses):.4f}-{max(losses):.4f} over the distill runs).\n")


def report(results: dict, command: str) -> str:
    import torch

    steps = results["steps"]
    return textwrap.dedent(f"""\
        Measured with `{command}` ({results['machine']}, torch {torch.__version__}; every run from scratch in
        {results['seconds'] / 60:.0f} minutes). Attention (Llama-style) and Mamba, 4 layers of width 64 each, 4 blocks,
        new, on `{DATA}`; search `{SEARCH}` for {steps['search']} steps, then {steps['after']} steps of fine-tuning
        (continuous), retraining or distillation; the components alone train {steps['search'] + steps['after']} steps.
        Budgets: FLOPs per token at most {', '.join(f'{s:g}x' for s in results['shares'])} the continuous hybrid's.
        Selections read block by block (a = attention, s = Mamba). Latency: the final models loaded from their
        directories, batch 1, a {PROMPT}-token prompt then {NEW} greedy tokens with the cache, all models in lockstep,
        medians over {ROUNDS} rounds (at this size Python's per-call overhead, not FLOPs, sets most of the time).

        """) + table(results) + teachers(results) + ("" if len(results["seeds"]) < 2 else "\n\nPaired by seed (a - b of test loss per seed, mean, 95% Student-t interval, " \
        "t, p, the sign in every seed):\n\n" + paired_table(results)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "frontier")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--budgets", type=float, nargs="+", default=SHARES,
                        help="FLOPs-per-token budgets, as shares of the continuous hybrid's")
    parser.add_argument("--quick", action="store_true", help="smoke-run steps (minutes; the numbers mean nothing)")
    parser.add_argument("--report-only", action="store_true", help="report the results already in --out")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
    else:
        import torch

        torch.set_num_threads(2)
        results = Frontier(args.out, args.seeds, args.budgets, STEPS["quick" if args.quick else "full"]).run()
    command = "python benchmarks/frontier.py" + (" --quick" if results["steps"] == STEPS["quick"] else "") + \
        ("" if results["seeds"] == SEEDS else " --seeds " + " ".join(map(str, results["seeds"]))) + \
        ("" if results["shares"] == SHARES else " --budgets " + " ".join(f"{s:g}" for s in results["shares"]))
    body = report(results, command)
    print(body)
    if args.figure:
        figure(results, args.figure)
    if args.write:
        write_section(args.write, "frontier", "Hybrids under an inference budget: the frontier", body)


if __name__ == "__main__":
    main()
