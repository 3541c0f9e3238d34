"""Runners for the families whose model forward threads a state through its layer loop (RWKV, xLSTM).

Their layers take no masks or positions (neither family reads a padding mask), so there is nothing to
record: a segment calls each layer with the component's state, the way the family's forward does, and
the state lives in a ``StateCache`` whose layers transformers' ``generate`` can reorder, repeat and
select like any cache's.

RWKV in inference mode rescales its own weights in place (``rescale_every``) and halves the hidden
state to match; a hybrid never does either (the two are the same function, up to rounding, and a
hybrid's weights must not change when it is evaluated).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache

from .base import StepContext
from .decoder import DecoderAdapter, DecoderSegment


class StateLayer:
    """Named state tensors with the batch first; what ``generate`` asks of a cache layer."""

    is_sliding = False
    is_compileable = False
    is_croppable = False
    supports_early_init = False
    is_initialized = False

    def __init__(self) -> None:
        self.states: dict[str, torch.Tensor] = {}

    def _map(self, fn) -> None:
        self.states = {k: fn(v) for k, v in self.states.items()}

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda t: t[indices])

    def reset(self) -> None:
        self.states = {}

    forgets_tokens = False

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove != 0:  # (transformers' convention: a negative count of tokens to forget)
            raise ValueError("a recurrent state cannot forget tokens (crop)")

    def offload(self) -> None:
        pass

    def prefetch(self) -> None:
        pass

    def get_seq_length(self) -> int:
        return 0

    def get_max_length(self) -> int:
        return -1


class StateCache(Cache):
    """A cache of per-layer states (one ``StateLayer`` per model layer) that counts the tokens seen."""

    def __init__(self, num_layers: int):
        super().__init__(layers=[StateLayer() for _ in range(num_layers)])
        self.seen = 0

    def advance(self, tokens: int) -> None:
        self.seen += tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def has_previous_state(self, layer_idx: int | None = None, state_idx: int | None = None) -> bool:
        layers = self.layers if layer_idx is None else [self.layers[layer_idx]]
        return any(layer.states for layer in layers)

    def reset(self) -> None:
        super().reset()
        self.seen = 0

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)

    @property
    def is_compileable(self) -> bool:
        return False


class StatefulSegment(DecoderSegment):
    """Layers [start, stop) of RWKV or xLSTM; the runner is the adapter's ``run_layer``."""

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # ignored: neither family reads one
        position_ids: torch.Tensor | None = None,  # ignored
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d)
        cache = context.cache if context is not None else None
        for index, layer in zip(range(self.start, self.stop), self.layers):
            h = self._adapter.run_layer(layer, index, h, cache)
        if self.final_norm_name is not None:
            h = self._modules[self.final_norm_name](h)
        return h


class StatefulAdapter(DecoderAdapter):
    """Common ground of the RWKV and xLSTM adapters."""

    def segment(self, start: int, stop: int) -> StatefulSegment:
        self.check_range(start, stop)
        return StatefulSegment(self, start, stop)

    def context_modules(self) -> list[str]:
        return []

    def new_cache(self) -> StateCache:
        return StateCache(self.num_layers)

    def prepare(self, h, attention_mask=None, position_ids=None, cache=None) -> StepContext:
        if cache is not None and not isinstance(cache, StateCache):
            raise ValueError(f"a {self.family_name} component needs its own cache: use the adapter's new_cache()")
        if cache is not None:
            cache.advance(h.shape[1])
        return StepContext(cache=cache, position_ids=None, mask=None, attention_mask=attention_mask)

    def run_layer(self, layer: nn.Module, index: int, h: torch.Tensor, cache: StateCache | None) -> torch.Tensor:
        raise NotImplementedError


class RwkvAdapter(StatefulAdapter):
    """RWKV: every block reads and writes its column of five (B, d, L) state tensors in place."""

    NAMES = ("ffn_shift", "attn_shift", "num", "den", "max")

    def run_layer(self, layer, index, h, cache):
        if cache is None:
            return layer(h, state=None, use_cache=False)[0]
        states = cache.layers[0].states  # the whole model's state lives in the first layer
        if not states:
            shape = (h.shape[0], self.config.hidden_size, self.num_layers)
            for i, name in enumerate(self.NAMES):
                states[name] = torch.zeros(shape, dtype=h.dtype if i <= 1 else torch.float32, device=h.device)
            states["max"] -= 1e30
        if h.shape[1] > 1 or h.shape[0] == 1:
            return layer(h, state=[states[name] for name in self.NAMES], use_cache=True)[0]
        # RWKV's one-token step broadcasts a (B, d) state against (B, 1, d) inputs, which is right for one
        # row only: run the rows one by one (their state columns are views, which the block updates in place)
        return torch.cat([layer(h[i : i + 1], state=[states[name][i : i + 1] for name in self.NAMES],
                                use_cache=True)[0] for i in range(h.shape[0])])


class XlstmAdapter(StatefulAdapter):
    """xLSTM: block i maps (h, its state) to (h, its new state)."""

    def run_layer(self, layer, index, h, cache):
        if cache is None:
            return layer(h, None)[0]
        states = cache.layers[index].states
        if not states:
            cfg, batch = self.config, h.shape[0]
            dtype = h.dtype
            states["c"] = torch.zeros(batch, cfg.num_heads, cfg.qk_head_dim, cfg.v_head_dim, dtype=dtype, device=h.device)
            states["n"] = torch.zeros(batch, cfg.num_heads, cfg.qk_head_dim, dtype=dtype, device=h.device)
            states["m"] = torch.zeros(batch, cfg.num_heads, 1, dtype=dtype, device=h.device)
        h, state = layer(h, (states["c"], states["n"], states["m"]))
        states["c"], states["n"], states["m"] = state
        return h
