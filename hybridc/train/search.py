"""Architecture search over the mixture weights: DARTS, DASH and GAEA.

- ``darts``: alpha = softmax(logits); the logits train with their own AdamW (lr from the spec, no
  weight decay).
- ``dash``: as darts, but during the search stage each training forward pass samples alpha by
  Gumbel-softmax at temperature ``tau`` (with ``tau_end``, annealed exponentially from ``tau`` at the stage's
  first step to ``tau_end`` at its last; plain softmax in evaluation and in every other stage): one draw
  per block per forward, which that block's gate and mixture share, and block 0's draw also mixes the
  embeddings and the head, so every mixture of one forward sums to 1. (The authors' code draws anew at each
  ``get_alphas()`` call, so its embedding and head are mixed by other draws than block 0's.) What is
  reported and discretized is always softmax(logits) (``Mix.alpha``), never a draw.
- ``gaea``: alpha lives on the simplex and moves by exponentiated gradient: a <- normalize(max(a * exp(
  clip(-lr * dL/da, -9, 9)), 1e-5)): floored, then normalized, so every row is exactly on the simplex (the
  authors' code normalizes, then floors, which can leave a row's sum above 1 by up to M x 1e-5). The
  logits store log a, so softmax(logits) = a and every other stage reads the same alphas.

``warmup`` (joint mode, any algorithm): the stage's first ``warmup`` steps update the weights only; the
alphas stay where they start (DASH still samples around them), so the weights adapt to the mixture before
the mixture moves.

Alternating mode (DARTS-style): even steps update the weights on training batches, odd steps update the
alphas on the search split, carved from the training data (never the validation split; see
``train.loop.alternating_splits``). Joint mode updates both every step on training batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graph.budget import CostTable
from ..nn.mixture import Mix
from ..spec.model import Search

GAEA_CLIP = 9.0
GAEA_FLOOR = 1e-5


DUAL_LR = 0.5  # the budget multiplier's step per alpha step, per unit of relative excess cost


@dataclass(frozen=True)
class CostBound:
    """A search under a budget: E[cost] under the alphas (``CostTable.expected``) at most ``limit``."""

    table: CostTable
    limit: float


class AlphaSearch:
    """Owns the alphas' optimizer during a search stage.

    With a ``bound`` (the spec's ``hybrid.budget``) the search is cost-aware: the alphas' objective gains
    lambda * E[cost] / limit, and after each alpha step the multiplier moves by dual ascent,
    lambda <- max(0, lambda + DUAL_LR * (E[cost] / limit - 1)), so the search ends where a discretization
    within the budget is likely. While the expected cost stays within the limit lambda stays 0 and the
    search is exactly the plain one."""

    def __init__(self, mixes: list[Mix], search: Search, bound: CostBound | None = None):
        self.mixes = [m for m in mixes if m.learned]
        self.search = search
        self.algorithm = search.algorithm
        self.bound = bound if bound is not None and len(self.mixes) == len(bound.table.segment) else None
        self.multiplier = 0.0
        self.optimizer = None
        if self.algorithm in ("darts", "dash"):
            self.optimizer = torch.optim.AdamW([m.logits for m in self.mixes], lr=search.lr, weight_decay=0.0)

    @property
    def alternate(self) -> bool:
        return self.search.alternate

    def at_step(self, step: int, steps: int) -> None:
        """Before step ``step``: DASH's temperature for it (a pure function of the step, so a resumed stage
        anneals exactly as an uninterrupted one)."""
        if self.algorithm == "dash":
            tau = self.search.tau_at(step, steps)
            for m in self.mixes:
                m.gumbel_tau = tau

    def moves(self, step: int) -> bool:
        """Whether the alphas move at ``step`` (not during the search's ``warmup`` steps)."""
        return step >= self.search.warmup

    def end(self) -> None:
        for m in self.mixes:
            m.gumbel_tau = None
            m.leaf = None

    def prepare_step(self) -> None:
        """GAEA: expose the simplex weights as leaves so backward gives dL/da."""
        if self.algorithm == "gaea":
            for m in self.mixes:
                m.leaf = torch.softmax(m.logits.detach(), dim=-1).requires_grad_(True)

    def zero_grad(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        for m in self.mixes:
            m.leaf = None
            m.logits.grad = None

    def grads(self) -> list[torch.Tensor | None]:
        if self.algorithm == "gaea":
            return [m.leaf.grad if m.leaf is not None else None for m in self.mixes]
        return [m.logits.grad for m in self.mixes]

    @torch.no_grad()
    def reduce_grads(self, parallel) -> None:
        """GAEA's simplex leaves are not parameters, so data parallelism does not average their gradients:
        do it here (the logits of darts/dash are parameters and already are)."""
        if self.algorithm != "gaea" or parallel.world == 1:
            return
        for m in self.mixes:
            if m.leaf is not None and m.leaf.grad is not None:
                m.leaf.grad.copy_(parallel.reduce(m.leaf.grad) / parallel.world)

    def expected_cost(self) -> float:
        """E[cost] / limit at the current alphas (0 without a budget)."""
        if self.bound is None:
            return 0.0
        with torch.no_grad():
            rows = [torch.softmax(m.logits.float(), -1).tolist() for m in self.mixes]
        return float(self.bound.table.expected(rows)) / self.bound.limit

    def _add_cost_gradient(self) -> None:
        """lambda * dE[cost]/d(alphas) / limit into the gradients the update reads (GAEA: its simplex leaves)."""
        if self.bound is None or self.multiplier == 0.0:
            return
        with torch.enable_grad():
            if self.algorithm == "gaea":
                rows = [m.leaf if m.leaf is not None else torch.softmax(m.logits.detach(), -1).requires_grad_(True)
                        for m in self.mixes]
                for m, row in zip(self.mixes, rows):
                    m.leaf = row
            else:
                rows = [torch.softmax(m.logits.float(), -1) for m in self.mixes]
            penalty = self.multiplier * self.bound.table.expected(rows) / self.bound.limit
            penalty.backward()

    @torch.no_grad()
    def step(self) -> None:
        self._add_cost_gradient()
        self._update()
        if self.bound is not None:  # dual ascent on the budget
            self.multiplier = max(0.0, self.multiplier + DUAL_LR * (self.expected_cost() - 1.0))

    def _update(self) -> None:
        if self.algorithm == "gaea":
            for m in self.mixes:
                a = m.leaf.detach() if m.leaf is not None else torch.softmax(m.logits, -1)
                grad = m.leaf.grad if m.leaf is not None and m.leaf.grad is not None else torch.zeros_like(a)
                a = gaea_update(a, grad, self.search.lr)
                m.logits.copy_(torch.log(a))
                m.leaf = None
            return
        self.optimizer.step()

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "multiplier": self.multiplier}

    def load_state_dict(self, state: dict) -> None:
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        multiplier = state.get("multiplier", 0.0)
        self.multiplier = float(multiplier) if isinstance(multiplier, (int, float)) and multiplier >= 0 else 0.0


def gaea_update(a: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One exponentiated-gradient step on the simplex: (M,) -> (M,)."""
    a = a * torch.exp(torch.clamp(-lr * grad, -GAEA_CLIP, GAEA_CLIP))
    a = torch.clamp(a, min=GAEA_FLOOR)
    return a / a.sum()
