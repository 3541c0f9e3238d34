"""The hybrid's own layers: embeddings, blocks and heads (DESIGN section 1).

Shapes: B batch, T tokens, d shared width, d_m component width, V vocabulary, M components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..components.logits import apply_logit_ops
from .mixture import Mix
from .projectors import Projector, fit


class _GatedSum(torch.autograd.Function):
    """out + a * ((1 - a) * y + a * z) in one fused pass, with a hand-written backward that needs two
    scalings of the incoming gradient and one dot product (autograd's chain of lerp + addcmul takes twice
    the memory passes). out, y, z: (B, T, d); a: () scalar tensor."""

    @staticmethod
    def forward(ctx, out, y, z, a):
        mixed = torch.lerp(y, z, a.to(y.dtype))
        ctx.save_for_backward(y, z, a)
        a = a.to(y.dtype)
        return torch.addcmul(out, mixed, a) if out is not None else mixed * a

    @staticmethod
    def backward(ctx, grad):
        y, z, weight = ctx.saved_tensors
        a = weight.to(grad.dtype)
        grad_out = grad if ctx.needs_input_grad[0] else None
        grad_y = grad * (a * (1 - a)) if ctx.needs_input_grad[1] else None
        grad_z = grad * (a * a) if ctx.needs_input_grad[2] else None
        grad_a = None
        if ctx.needs_input_grad[3]:  # d/da [a(1-a) y + a^2 z] = (1 - 2a) y + 2a z, summed in float32 at least
            wide = torch.promote_types(grad.dtype, torch.float32)
            grad_a = torch.dot(grad.reshape(-1).to(wide), torch.lerp(y, z, 2 * a).reshape(-1).to(wide))
            grad_a = grad_a.reshape(weight.shape).to(weight.dtype)
        return grad_out, grad_y, grad_z, grad_a


def gated_sum(out: torch.Tensor | None, y: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """out + a((1 - a) y + a z): the gated mixture's output term of one component (DESIGN section 1).
    y, z (and out) share one dtype; the weight a (a float32 scalar tensor) is used in it."""
    return _GatedSum.apply(out, y, z, a)


def run_segment(segment: nn.Module, u: torch.Tensor, attention_mask, position_ids, contexts, name: str) -> torch.Tensor:
    """A component segment on u (B, T, d_m), with its cached-decoding context when there is one."""
    if contexts is not None:
        return segment(u, attention_mask=attention_mask, position_ids=position_ids, context=contexts[name])
    if position_ids is not None:
        return segment(u, attention_mask=attention_mask, position_ids=position_ids)
    return segment(u, attention_mask=attention_mask)


class MixedEmbedding(nn.Module):
    """h0 = sum_m a0_m * pad(E_m[ids]): ids (B, T) -> (B, T, d). One source: pad(E_m[ids])."""

    def __init__(self, embeddings: dict[str, nn.Module], width: int):
        super().__init__()
        self.sources = nn.ModuleDict(embeddings)
        self.width = width

    def forward(self, ids: torch.Tensor, alphas: torch.Tensor | None, skip: Sequence[bool] = ()) -> torch.Tensor:
        if len(self.sources) == 1:
            (embedding,) = self.sources.values()
            return fit(embedding(ids), self.width)
        h = None
        for j, embedding in enumerate(self.sources.values()):
            if skip and skip[j]:
                continue
            e = fit(embedding(ids), self.width)
            a = alphas[j].to(e.dtype)
            h = a * e if h is None else torch.addcmul(h, a, e.to(h.dtype))
        return h


class MixedBlock(nn.Module):
    """One continuous hybrid block: (B, T, d) -> (B, T, d).

        u_m = (1 - a_m) P_in[m](h) + a_m trunc_m(h)
        z_m = F[m](u_m)
        h'  = sum_m a_m ((1 - a_m) P_out[m](z_m) + a_m pad(z_m))

    Branches whose weight is a constant zero (fixed mixtures) are skipped: they add exactly nothing.

    Precision: the block's output keeps its input's dtype (the hybrid's stream: float32 under autocast,
    bfloat16 when the weights are); what projectors and segments return is brought to it (Mamba keeps its
    residual in float32; autocast computes projectors in bfloat16).
    """

    def __init__(self, segments: dict[str, nn.Module], in_proj: dict[str, Projector], out_proj: dict[str, Projector],
                 mix: Mix, width: int):
        super().__init__()
        # (not "in_proj"/"out_proj": those are Mamba's own layer names, which PEFT users target)
        self.projector_in = nn.ModuleDict(in_proj)
        self.segments = nn.ModuleDict(segments)
        self.projector_out = nn.ModuleDict(out_proj)
        self.mix = mix
        self.width = width

    def forward(self, h: torch.Tensor, alphas: torch.Tensor, skip: Sequence[bool],
                attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                contexts: Mapping[str, Any] | None = None) -> torch.Tensor:
        """h (B, T, d), alphas (M,) from ``self.mix()``, skip: constant-zero branches; ``contexts``: each
        component's cached-decoding state (see ``ComponentAdapter.prepare``), None without a cache."""
        out = None
        for j, name in enumerate(self.segments):
            if skip[j]:
                continue
            a = alphas[j]
            p_in, segment, p_out = self.projector_in[name], self.segments[name], self.projector_out[name]
            dtype = h.dtype
            u = torch.lerp(p_in(h).to(dtype), fit(h, p_in.d_out), a.to(dtype))  # (1 - a) P_in(h) + a trunc(h): (B, T, d_m)
            z = run_segment(segment, u, attention_mask, position_ids, contexts, name).to(dtype)  # (B, T, d_m)
            out = gated_sum(out, p_out(z).to(dtype), fit(z, self.width), a)  # out + a((1 - a) P_out(z) + a pad(z)): (B, T, d)
        return out


class SingleBlock(nn.Module):
    """A discretized block: one component, projectors only where the component changes.

    u = P_in(h) or trunc(h); z = F(u); h' = P_out(z) or pad(z).
    """

    def __init__(self, name: str, segment: nn.Module, in_proj: Projector | None, out_proj: Projector | None,
                 d_m: int, width: int):
        super().__init__()
        self.name = name
        self.segments = nn.ModuleDict({name: segment})
        self.projector_in = nn.ModuleDict({name: in_proj} if in_proj is not None else {})
        self.projector_out = nn.ModuleDict({name: out_proj} if out_proj is not None else {})
        self.d_m, self.width = d_m, width

    def forward(self, h: torch.Tensor, alphas: torch.Tensor | None = None, skip: Sequence[bool] = (),
                attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                contexts: Mapping[str, Any] | None = None) -> torch.Tensor:
        p_in = self.projector_in[self.name] if self.name in self.projector_in else None
        p_out = self.projector_out[self.name] if self.name in self.projector_out else None
        u = p_in(h).to(h.dtype) if p_in is not None else fit(h, self.d_m)
        z = run_segment(self.segments[self.name], u, attention_mask, position_ids, contexts, self.name).to(h.dtype)
        return p_out(z).to(h.dtype) if p_out is not None else fit(z, self.width)


class MixedLMHead(nn.Module):
    """logits = sum_m a0_m f_m(head_m(trunc_m(h)))[..., :V]: (B, T, d) -> (B, T, V), where f_m is what
    component m's family does to its logits (soft-capping, scaling; ``ops``, default none)."""

    def __init__(self, heads: dict[str, nn.Module], widths: dict[str, int], vocab_size: int,
                 ops: Mapping[str, Sequence[tuple[str, float]]] | None = None):
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.widths = dict(widths)
        self.vocab_size = vocab_size
        self.ops = {name: tuple((ops or {}).get(name, ())) for name in heads}

    def forward(self, h: torch.Tensor, alphas: torch.Tensor | None, skip: Sequence[bool] = ()) -> torch.Tensor:
        single = len(self.heads) == 1
        plain = not any(self.ops.values())
        if not single and plain and all(type(head) is nn.Linear for head in self.heads.values()):
            return self._mixed_linear(h, alphas, skip)
        logits = None
        for j, (name, head) in enumerate(self.heads.items()):
            if not single and skip and skip[j]:
                continue
            term = head(fit(h, self.widths[name]))
            if self.ops[name]:
                term = apply_logit_ops(term, self.ops[name])
            term = term[..., : self.vocab_size]
            if single:
                logits = term
            else:
                logits = alphas[j] * term if logits is None else torch.addcmul(logits, alphas[j], term)
        return logits

    def _mixed_linear(self, h: torch.Tensor, alphas: torch.Tensor, skip: Sequence[bool]) -> torch.Tensor:
        """The same sum for linear heads, as sum_m (a0_m trunc_m(h)) W_m[:V]^T (+ a0_m b_m[:V]): the weights
        scale the (B, T, d_m) inputs instead of the (B, T, V) logits, and every head after the first adds
        its product into the first's output in place (one (B, T, V) tensor instead of three, no pass over
        the logits per head). Equal to the general path up to rounding."""
        terms = [(j, name, head) for j, (name, head) in enumerate(self.heads.items()) if not (skip and skip[j])]
        terms.sort(key=lambda t: t[2].out_features != self.vocab_size)  # a head with no rows to cut goes first
        logits = None
        for j, name, head in terms:
            x = fit(h, self.widths[name]) * alphas[j].to(h.dtype)  # (B, T, d_m)
            x = x.reshape(-1, x.shape[-1])  # (B*T, d_m)
            weight = head.weight[: self.vocab_size]  # (V, d_m)
            if logits is None:
                logits = x @ weight.t()  # (B*T, V) (in bfloat16 under autocast)
            else:  # (in place: autocast does not cast the operands of in-place ops, so they take the logits' dtype)
                logits = logits.addmm_(x.to(logits.dtype), weight.t().to(logits.dtype))
            if head.bias is not None:
                logits = logits.add_((head.bias[: self.vocab_size] * alphas[j]).to(logits.dtype))
        return logits.view(*h.shape[:-1], self.vocab_size)


class CompressionHead(MixedLMHead):
    """MAD's encoder-decoder read-out for the compress task: position i is decoded from the last
    position's state plus a sinusoidal position code, then through the LM heads. (B, T, d) -> (B, T, V)."""

    def __init__(self, heads: dict[str, nn.Module], widths: dict[str, int], vocab_size: int, width: int,
                 ops: Mapping[str, Sequence[tuple[str, float]]] | None = None):
        super().__init__(heads, widths, vocab_size, ops)
        self.readout = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
                                     nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))

    def forward(self, h: torch.Tensor, alphas: torch.Tensor | None, skip: Sequence[bool] = ()) -> torch.Tensor:
        length, width = h.shape[1], h.shape[2]
        x = h[:, -1:] + sinusoidal_positions(length, width, h.device, h.dtype)  # (B, T, d)
        return super().forward(self.readout(x), alphas, skip)


def sinusoidal_positions(length: int, width: int, device, dtype) -> torch.Tensor:
    """(T, d) fixed sine/cosine position codes."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-torch.log(torch.tensor(1e4)) / width))
    codes = torch.zeros(length, width, device=device)
    codes[:, 0::2] = torch.sin(position * rate)
    codes[:, 1::2] = torch.cos(position * rate[: width // 2])
    return codes.to(dtype)


def last_real(h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, d) -> (B, d): each row's state at its last real token (the last position without a mask)."""
    if attention_mask is None:
        return h[:, -1]
    last = attention_mask.long().cumsum(-1).argmax(-1)  # index of each row's last real token
    return h[torch.arange(h.shape[0], device=h.device), last]


class MatchHead(nn.Module):
    """LRA's dual-encoder classifier (``task: match(n)``): the two documents of a pair, each pooled at its last
    real token (the components are causal: only it has read the whole document; LRA's bidirectional encoders
    pool their first), u, v (B, d) -> [u, v, u * v, u - v] (B, 4d) -> two ReLU layers (d, d // 2) -> (B, n),
    the shape of LRA's ``classifier_head_dual`` with the NLI interaction."""

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        hidden = match_hidden(width)
        self.mlp = nn.Sequential(nn.Linear(4 * width, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
                                 nn.Linear(hidden[1], num_classes))
        self.pool = True

    @staticmethod
    def features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, d), (B, d) -> (B, 4d): [u, v, u * v, u - v]."""
        return torch.cat([u, v, u * v, u - v], dim=-1)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """h (2B, T, d): rows 2b and 2b + 1 are the documents of pair b; mask (2B, T) -> logits (B, n)."""
        pooled = last_real(h, attention_mask).reshape(-1, 2, h.shape[-1])  # (B, 2, d)
        return self.mlp(self.features(pooled[:, 0], pooled[:, 1]))


def match_hidden(width: int) -> tuple[int, int]:
    """The widths of the match head's two hidden layers."""
    return width, max(1, width // 2)


class ClassifierHead(nn.Module):
    """A new linear head. ``pool=True``: (B, T, d) -> (B, n) at each row's last real token;
    ``pool=False`` (tagging): (B, T, d) -> (B, T, n)."""

    def __init__(self, width: int, num_classes: int, pool: bool):
        super().__init__()
        self.proj = nn.Linear(width, num_classes)
        self.pool = pool

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pool:
            h = last_real(h, attention_mask)
        return self.proj(h)
