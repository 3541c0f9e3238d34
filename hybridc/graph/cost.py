"""Parameter counts and FLOPs per token of the hybrid's own parts (projectors, mixers, heads).

Component parts are counted by their family descriptors (``Family.param_counts``); everything here
is torch-free and exact for the modules ``hybridc.nn`` builds (a test compares with the real model).
"""

from __future__ import annotations


def linear_params(d_in: int, d_out: int, bias: bool = True) -> int:
    return d_in * d_out + (d_out if bias else 0)


def projector_params(kind: str, d_in: int, d_out: int) -> int:
    """Parameters of a projector d_in -> d_out (see ``hybridc.nn.projectors``)."""
    if kind == "none":
        return 0
    if kind in ("linear", "linear-skip"):
        return linear_params(d_in, d_out)
    if kind in ("mlp", "mlp-skip"):
        hidden = mlp_hidden(d_in, d_out)
        return linear_params(d_in, hidden) + linear_params(hidden, d_out)
    raise ValueError(f"unknown projector kind {kind!r}")


def mlp_hidden(d_in: int, d_out: int) -> int:
    """Hidden width of an ``mlp`` projector: the larger of its two widths."""
    return max(d_in, d_out)


def projector_flops(kind: str, d_in: int, d_out: int) -> int:
    """Forward FLOPs per token: 2 per weight of each matmul (biases and GELU ignored)."""
    if kind == "none":
        return 0
    if kind in ("linear", "linear-skip"):
        return 2 * d_in * d_out
    hidden = mlp_hidden(d_in, d_out)
    return 2 * (d_in * hidden + hidden * d_out)


def match_head_params(d: int, n: int) -> int:
    """The match task's head (see ``hybridc.nn.blocks.MatchHead``): 4d -> d -> d // 2 -> n."""
    half = max(1, d // 2)
    return linear_params(4 * d, d) + linear_params(d, half) + linear_params(half, n)


def match_head_biases(d: int, n: int) -> int:
    return d + max(1, d // 2) + n


def readout_params(d: int) -> int:
    """The compress task's read-out (see ``hybridc.nn.blocks.CompressionHead``): 3 LayerNorms, 2 Linears."""
    return 3 * 2 * d + 2 * linear_params(d, d)
