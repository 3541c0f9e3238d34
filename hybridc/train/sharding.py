"""Fully sharded data parallelism (PyTorch FSDP2, ``fully_shard``) for a training stage.

Wrapping policy (``shard_model``):

- every layer of every component segment is its own FSDP unit (its parameters are gathered just
  before the layer runs and freed after), except Mamba segments that run the fast scan: their blocks'
  parameters are read directly rather than through the layer's forward, so the whole segment is the
  unit (``Segment.shard_units``);
- the root unit holds the rest: embeddings, projectors, final norms and heads, and the layers whose
  parameters another layer uses too (Zamba2's shared blocks);
- the alphas are not sharded (``ignored_params``): they stay plain tensors on every process, so the
  search, logging and checkpoints read them as usual, and ``average_replicated_grads`` averages their
  gradients over the processes after each backward, as data parallelism would.

A sharded model lives only inside a stage: checkpoints and stage boundaries gather the full weights
(``full_model``), so every checkpoint has the layout of a single-process one and resumes under any
process count, sharded or not. Optimizer state goes through the same single-process layout
(``full_optimizer_state`` / ``load_sharded_optimizer_state``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..models.hybrid import HybridModel


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def reshard(model: nn.Module) -> None:
    """Free every unit's gathered weights. The root unit keeps its parameters gathered after a forward (for
    the backward that frees them); after a forward without one (an evaluation) they would stay gathered, and
    ``named_parameters`` would give the gathered tensors instead of the shards the optimizer holds."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def replicated_params(model: HybridModel) -> list[nn.Parameter]:
    """The parameters every process keeps whole: the alphas."""
    return [p for _, p in model.param_groups()["alphas"]]


def shard_model(model: HybridModel) -> HybridModel:
    """Apply FSDP2 in place with the policy of the module doc; returns the same object."""
    from torch.distributed.fsdp import fully_shard

    ignored = set(replicated_params(model))
    for unit in own_units(model):
        fully_shard(unit, ignored_params=ignored)
    fully_shard(model, ignored_params=ignored)
    return model


def own_units(model: HybridModel) -> list[nn.Module]:
    """The segments' shard units that share no parameter with another unit (a parameter lives in one
    unit: Zamba2's shared blocks, used by several layers, stay with the root unit)."""
    units = [unit for block in model.blocks for segment in block.segments.values() for unit in segment.shard_units()]
    owners: dict[int, int] = {}
    for unit in units:
        for p in set(unit.parameters()):
            owners[id(p)] = owners.get(id(p), 0) + 1
    return [unit for unit in units if all(owners[id(p)] == 1 for p in unit.parameters())]


def average_replicated_grads(model: HybridModel, reduce: Callable[[torch.Tensor], torch.Tensor], world: int) -> None:
    """Average the alphas' gradients over the processes (FSDP leaves ignored parameters alone)."""
    with torch.no_grad():
        for p in replicated_params(model):
            if p.grad is not None:
                p.grad.copy_(reduce(p.grad) / world)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=False)


def full_state_dict(model: HybridModel) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, whole, on every process (a collective: all processes call it)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options())


def full_model(model: HybridModel, build: Callable[[], HybridModel], *, here: bool = True) -> HybridModel | None:
    """A plain (unsharded) copy of a sharded model: ``build()`` makes the structure, the weights are
    gathered from every process (a collective). ``here=False``: this process only takes part in the
    gather and builds nothing (returns None)."""
    state = full_state_dict(model)
    if not here:
        return None
    plain = build()
    missing, unexpected = plain.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("inv_freq")]
    if missing or unexpected:  # the policy never renames parameters; this guards that promise
        raise RuntimeError(f"gathered weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return plain


def _fqn_order(optimizer: torch.optim.Optimizer, names: dict[nn.Parameter, str]) -> list[str]:
    return [names[p] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(model: HybridModel, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state as a single-process ``optimizer.state_dict()`` would hold it (indices in
    parameter order, whole tensors): a collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    reshard(model)  # (the parameters are the optimizer's shards again, whatever ran last)
    names = {p: n for n, p in model.named_parameters()}
    order = _fqn_order(optimizer, names)
    index = {n: i for i, n in enumerate(order)}
    full = get_optimizer_state_dict(model, optimizer, options=_full_options())
    groups = []
    for group in full["param_groups"]:
        groups.append({**group, "params": [index[n] for n in group["params"]]})
    return {"state": {index[n]: s for n, s in full["state"].items()}, "param_groups": groups}


def load_sharded_optimizer_state(model: HybridModel, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a single-process optimizer state (``full_optimizer_state``'s layout) into the optimizer of a
    sharded model: each process keeps its shard."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    reshard(model)
    names = {p: n for n, p in model.named_parameters()}
    order = _fqn_order(optimizer, names)
    groups = [{**group, "params": [order[i] for i in group["params"]]} for group in state["param_groups"]]
    keyed = {"state": {order[int(i)]: s for i, s in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, keyed, options=_full_options())
