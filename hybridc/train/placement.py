"""Where a run's model lives: its device and scan backend, the data-parallel wrapper of a stage (DDP, or FSDP
sharding in place), the full weights of a sharded model, the replicas' agreement. Mixed into ``Run``."""

from __future__ import annotations

import os


from ..errors import RunError
from ..models.hybrid import HybridModel, lower
from .sharding import full_model, is_sharded, shard_model


class Placement:
    """The device, process group and sharding of a run's model."""

    def place(self, model: HybridModel) -> HybridModel:
        """Move to the run's device, with the chosen Mamba scan backend."""
        model.set_scan_backend(self.options.scan)
        return model.to(self.device)

    @property
    def fsdp(self) -> bool:
        """Shard with FSDP: ``--sharding fsdp``, or ``accelerate launch --use_fsdp`` (its environment)."""
        asked = self.options.sharding == "fsdp" or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        return asked and self.parallel.world > 1

    def wrap(self, model: HybridModel):
        """The forward used for training: with several processes (the process group Accelerate set up), a
        DistributedDataParallel wrapper over the parameters that train in this stage, made per stage; or,
        with FSDP, the model itself sharded in place (``sharding.shard_model``) until the stage ends."""
        if self.parallel.world == 1:
            return model
        if self.fsdp:
            shard_model(model)
            units = sum(1 for m in model.modules() if is_sharded(m))
            self.say(f"FSDP: {units} units sharded over {self.parallel.world} processes")
            return model
        from torch.nn.parallel import DistributedDataParallel

        from ..components.quiet import DDP_UNUSED, until_seen

        # (a step may leave parameters without gradients: a branch of constant weight 0, experts no token chose;
        # DDP's C++ warning when a stage leaves none says nothing a user can act on: hybridc.components.quiet)
        return until_seen(DistributedDataParallel(model, find_unused_parameters=True), DDP_UNUSED)

    def unshard(self, model: HybridModel, *, here: bool = True) -> HybridModel | None:
        """A plain model with a sharded model's full weights (a collective: every process calls it;
        ``here=False``: this process takes part but builds nothing)."""
        selection = list(model.graph.selection) if model.graph.selection else None
        return full_model(model, lambda: self.place(lower(self.rs, selection=selection, pretrained=False)), here=here)

    def check_replicas(self, model: HybridModel) -> None:
        """Every process must end with the same alphas (they are data-parallel parameters like any other)."""
        alphas = model.alphas().detach().to(self.device)
        gathered = self.accelerator.gather(alphas.unsqueeze(0))  # (world, N, M)
        spread = float((gathered - gathered[0:1]).abs().max())
        self.metrics.write(event="replicas", global_step=-1, processes=self.parallel.world, alphas_max_difference=spread)
        if spread != 0.0:
            raise RunError(f"the processes disagree on the alphas (max difference {spread:g})",
                           "this is a bug in hybridc's data parallelism; please report it")


def end_process_group() -> None:
    """Tear the data-parallel process group down while the interpreter still runs: left to the process's
    own teardown, gloo's threads could abort the exit ("terminate called without an active exception")
    after a run that had finished and written everything."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
