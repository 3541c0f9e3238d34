"""Decoding at the machine's limit: milliseconds per decode step against the floor measured in the same run.

    python benchmarks/decode.py [--pairs paper,modern] [--batch 1,8] [--prompt 64] [--new 24] [--rounds 3]
                                [--threads 2] [--write benchmarks/README.md] [--figure docs/decode.png]

A decode step (one new token for every sequence of the batch) reads every weight it uses once, and each sequence's cache (keys/values of the attention
layers, conv + SSM states of the Mamba layers): bytes read per step / the machine's read bandwidth is a floor
no implementation beats on this CPU. Bandwidth is measured by a matrix-vector product over a 256 MiB matrix
(far larger than the caches), best of 3, right before each model's run: the floor is re-measured beside every
measurement, so that another process taking the memory bus moves both alike. Bytes per step: the parameters
of the parts that run (an embedding table only where it is also the head: a token reads one row of it), plus
the cache at the mean context length (prompt + new / 2 tokens), at the batch size.

Models, built from configs with random weights (no download): the paper's pair, GPT-Neo-125M and Mamba-130M
(Mamba with GPT-Neo's vocabulary of 50,257; its own has 50,280), and a modern pair, a Llama at SmolLM2-135M's
shapes and Mamba-130M at its vocabulary of 49,152. For each pair: each component under transformers' own
``generate`` (its ``*ForCausalLM``, dynamic cache), each component alone through hybridc (a hybrid of it alone
without projectors, discretized onto it in both blocks: its embedding, all its layers, its head, the same
weights as the transformers model of the row above), the discretized hybrid (attention in block 0,
Mamba in block 1, the paper's 2-block cut), and the continuous hybrid (both in both blocks, alphas 0.5), the
hybridc ones on the fast decode path and, for comparison, the eager one (``set_decode_path``). Greedy, a
random prompt; the time per step (one new token for every sequence of the batch) is the median gap between
consecutive steps' tokens handed to a streamer (the first, which includes the prefill, dropped). Each round runs every model once, in turn; the table gives medians over
the rounds, and the ratio to the floor is the median of the per-run ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from report import write_section

import torch
from torch import nn

MIB = 1 << 20
PAIRS = {
    # name: (the attention component's init, Mamba's init, label)
    "paper": ("{family: gpt-neo, hidden_size: 768, layers: 12, heads: 12, vocab_size: 50257, max_length: 2048, "
              "attention_types: [[[global, local], 6]], window_size: 256}",
              "{family: mamba, hidden_size: 768, layers: 24, vocab_size: 50257}", "GPT-Neo-125M + Mamba-130M"),
    "modern": ("{family: llama, hidden_size: 576, layers: 30, heads: 9, num_key_value_heads: 3, "
               "intermediate_size: 1536, vocab_size: 49152, max_length: 8192}",
               "{family: mamba, hidden_size: 768, layers: 24, vocab_size: 49152}",
               "Llama at SmolLM2-135M's shapes + Mamba-130M"),
}


def build(pair: str, tmp: Path) -> tuple[dict[str, tuple[nn.Module, str | None]], str]:
    """{row name: (model, decode path or None for transformers' own)} and the pair's label."""
    from hybridc.models.export import discretize_model
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    attn, ssm, label = PAIRS[pair]

    def spec(name: str, components: str, hybrid: str) -> Path:
        path = tmp / f"{pair}-{name}.yaml"
        path.write_text(f"hybridc: 1\nname: decode-{pair}-{name}\ncomponents:\n{components}hybrid: {hybrid}\n")
        return path

    attn_entry, ssm_entry = f"  attn: {{init: {attn}, blocks: split(2)}}\n", f"  ssm: {{init: {ssm}, blocks: split(2)}}\n"
    hybrid = lower(load_spec(spec("hybrid", attn_entry + ssm_entry, "{projector: linear, embeddings: attn, head: attn, "
                                  "mixture: 'fixed([[0.5, 0.5], [0.5, 0.5]])'}"))).eval()
    models: dict[str, tuple[nn.Module, str | None]] = {}
    for name, kind, entry in (("attn", "attention", attn_entry), ("ssm", "Mamba", ssm_entry)):
        # the component alone through hybridc: a hybrid of it alone, no projectors, discretized onto it
        alone = lower(load_spec(spec(name, entry, f"{{projector: none, embeddings: {name}, head: {name}}}"))).eval()
        alone = discretize_model(alone, [name, name]).eval()
        models[f"{kind} alone, transformers' generate"] = (alone._adapters[name].model.eval(), None)
        models[f"{kind} alone through hybridc"] = (alone, "fast")
        models[f"{kind} alone through hybridc, eager path"] = (alone, "eager")
    discrete = discretize_model(hybrid, ["attn", "ssm"]).eval()
    models["discretized hybrid (attention, Mamba)"] = (discrete, "fast")
    models["discretized hybrid, eager path"] = (discrete, "eager")
    models["continuous hybrid (both in both blocks)"] = (hybrid, "fast")
    models["continuous hybrid, eager path"] = (hybrid, "eager")
    return models, label


def bytes_per_step(model: nn.Module, batch: int, context: int) -> int:
    """Bytes a decode step reads (see the module doc): parameters that run, the head's weight, the caches."""
    head = model.get_output_embeddings()
    head_weight = head.weight if isinstance(head, nn.Linear) else None
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (id(p) in tables and p is not head_weight):
            continue
        seen.add(id(p))
        total += p.numel() * p.element_size()
    if head_weight is not None and id(head_weight) not in seen:
        total += head_weight.numel() * head_weight.element_size()
    state = 0
    for module in model.modules():
        k_proj = getattr(module, "k_proj", None)
        if isinstance(k_proj, nn.Linear) and isinstance(getattr(module, "v_proj", None), nn.Linear):
            state += (k_proj.out_features + module.v_proj.out_features) * context * 4
        if type(module).__name__ == "MambaMixer":
            state += module.intermediate_size * (module.ssm_state_size + module.conv_kernel_size) * 4
    return total + state * batch


def read_bandwidth(matrix: torch.Tensor, vector: torch.Tensor) -> float:
    """Bytes per second of a matrix-vector product over ``matrix`` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        torch.mv(matrix, vector)
        best = min(best, time.perf_counter() - start)
    return matrix.numel() * matrix.element_size() / best


def sum_bandwidth(matrix: torch.Tensor) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        matrix.sum()
        best = min(best, time.perf_counter() - start)
    return matrix.numel() * matrix.element_size() / best


class Stamps:
    """A ``generate`` streamer that keeps the time each new token arrives."""

    def __init__(self):
        self.times: list[float] = []
        self.prompt = True

    def put(self, value) -> None:
        if self.prompt:
            self.prompt = False
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


@torch.no_grad()
def ms_per_step(model: nn.Module, path: str | None, ids: torch.Tensor, new: int) -> float:
    if path is not None:
        model.set_decode_path(path)
    stamps = Stamps()
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                   do_sample=False, pad_token_id=0, streamer=stamps)
    gaps = [b - a for a, b in zip(stamps.times, stamps.times[1:])]
    return statistics.median(gaps) * 1000


def measure(pair: str, args, tmp: Path, matrix: torch.Tensor, vector: torch.Tensor) -> tuple[str, list[dict]]:
    models, label = build(pair, tmp)
    rows = []
    for batch in args.batch:
        ids = torch.randint(0, 32000, (batch, args.prompt), generator=torch.Generator().manual_seed(batch))
        context = args.prompt + args.new // 2
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in models}
        for name, (model, path) in models.items():  # warm-up (kernels built, first-call costs paid)
            ms_per_step(model, path, ids, 3)
        for round_ in range(args.rounds):
            for name, (model, path) in models.items():
                bandwidth = read_bandwidth(matrix, vector)
                ms = ms_per_step(model, path, ids, args.new)
                floor = bytes_per_step(model, batch, context) / bandwidth * 1000
                runs[name].append((ms, floor, bandwidth))
                print(f"  {pair} batch {batch} round {round_ + 1}: {name}: {ms:.1f} ms/token, floor {floor:.1f} ms "
                      f"({bandwidth / 1e9:.1f} GB/s), load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for name, (model, path) in models.items():
            ms = statistics.median(r[0] for r in runs[name])
            rows.append({"pair": pair, "label": label, "batch": batch, "name": name, "ms": ms,
                         "floor": statistics.median(r[1] for r in runs[name]),
                         "ratio": statistics.median(r[0] / r[1] for r in runs[name]),
                         "mb": bytes_per_step(model, batch, context) / MIB,
                         "bandwidth": statistics.median(r[2] for r in runs[name]) / 1e9})
    del models
    return label, rows


def table(rows: list[dict]) -> str:
    lines = []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        mine = [r for r in rows if r["pair"] == pair]
        lines += [f"**{mine[0]['label']}**", "",
                  "| model | batch | MiB read per step | ms per step | floor (ms) | / floor |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in mine:
            lines.append(f"| {r['name']} | {r['batch']} | {r['mb']:.0f} | {r['ms']:.1f} | {r['floor']:.1f} | "
                         f"**{r['ratio']:.2f}** |")
        lines.append("")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    batches = list(dict.fromkeys(r["batch"] for r in rows))
    fig, axes = plt.subplots(len(pairs), len(batches), figsize=(6.2 * len(batches), 4.4 * len(pairs)), squeeze=False)
    for i, pair in enumerate(pairs):
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            mine = [r for r in rows if r["pair"] == pair and r["batch"] == batch]
            colors = ["C1" if "transformers" in r["name"] else "C7" if "eager" in r["name"] else "C0" for r in mine]
            ax.barh(range(len(mine)), [r["ratio"] for r in mine], color=colors)
            ax.set_yticks(range(len(mine)), [r["name"] for r in mine], fontsize=7)
            ax.invert_yaxis()
            ax.axvline(1.0, color="k", lw=1)
            ax.axvline(1.5, color="C3", lw=1, ls="--", label="1.5 x floor")
            for k, r in enumerate(mine):
                ax.text(r["ratio"], k, f" {r['ms']:.0f} ms", va="center", fontsize=7)
            ax.set_xlabel("ms per step / floor (bytes read per step / read bandwidth)")
            ax.set_title(f"{mine[0]['label']}, batch {batch}", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
            ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Decoding against the memory-bandwidth floor (orange: transformers' generate; blue: hybridc's fast "
                 "path; grey: hybridc's eager path)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="paper,modern")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch's threads (and the kernels')")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    args.batch = [int(b) for b in args.batch.split(",")]
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    load_start = os.getloadavg()
    matrix = torch.randn(256 * MIB // 4 // 8192, 8192)
    vector = torch.randn(8192)
    sums = [sum_bandwidth(matrix) for _ in range(3)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.pairs.split(","):
            rows += measure(pair, args, Path(tmp), matrix, vector)[1]
    load_end = os.getloadavg()
    bandwidth = statistics.median(r["bandwidth"] for r in rows)
    text = table(rows) + (
        f"\nFloor: bytes read per step / read bandwidth measured by a matrix-vector product over a 256 MiB matrix "
        f"right before each run (median {bandwidth:.1f} GB/s over the runs; a plain sum reads "
        f"{statistics.median(sums) / 1e9:.1f} GB/s at the start). Bytes per step: the parameters that run (the "
        f"head's weight, not the embedding tables a token reads one row of), plus the caches at {args.prompt} + "
        f"{args.new // 2} tokens of context, for the whole batch. Prompt {args.prompt} random tokens, {args.new} new "
        f"tokens, greedy; ms per step (a token for every sequence of the batch; at batch 1, per token): median gap "
        f"between consecutive steps; medians over {args.rounds} rounds "
        f"(each: every model once, in turn, after a warm-up).\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}, {args.threads} threads, float32. Load average (1, 5, 15 min) at start "
        f"{', '.join(f'{x:.2f}' for x in load_start)}, at end {', '.join(f'{x:.2f}' for x in load_end)} (the machine "
        f"is shared: a load above ~1 means other processes took cores and memory bandwidth during the run).\n\n"
        f"Command: `python benchmarks/decode.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, "decode", "Decoding against the floor", text)
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
