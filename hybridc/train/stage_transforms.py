"""What a stage does to the model before it trains: discretize it, rewind the components to their pretrained
weights, or start from another run's weights (``init:``). Mixed into ``Run``."""

from __future__ import annotations

from ..errors import Diagnostic, RunError, SpecError
from ..models.hybrid import HybridModel, lower
from ..models.names import group_of
from ..spec.model import Stage
from ..spec.resolve import PathError, confined_directory, resolve_path

REWOUND_GROUPS = ("components", "embeddings", "head")  # what a rewind stage reloads


class StageTransforms:
    """The model transforms of a run's stages."""

    def discretize(self, model: HybridModel) -> HybridModel:
        from ..models.export import discretize_model

        alphas = model.alphas().detach().cpu().tolist()
        small = discretize_model(model)
        self.say(f"discretized: {' | '.join(small.graph.selection)} (alphas {[[round(a, 3) for a in row] for row in alphas]})")
        return self.place(small)

    def rewind(self, model: HybridModel) -> None:
        """Reload the components' pretrained weights (their initial weights if from scratch); keep
        projectors and alphas."""
        fresh = lower(self.rs, selection=model.graph.selection and list(model.graph.selection), pretrained=True)
        state = {k: v for k, v in fresh.state_dict().items() if group_of(k) in REWOUND_GROUPS}
        model.load_state_dict(state, strict=False)

    def load_stage_init(self, model: HybridModel, stage: Stage) -> None:
        """``init: <dir>``: copy every parameter that matches by name and shape from another run's output."""
        from safetensors.torch import load_file

        directory = resolve_path(self.rs.base_dir, stage.init)
        if (directory / "final").is_dir():
            directory = directory / "final"
        try:  # under --root, every file of the directory read (final/'s too) must resolve inside the root
            confined_directory(directory, self.rs.root, shown=str(directory))
        except PathError as err:
            index = next(i for i, s in enumerate(self.spec.train.stages) if s.name == stage.name)
            raise SpecError([Diagnostic(self.rs.source_map.at("train", "stages", index, "init"),
                                        f"stage '{stage.name}': {err.message}", err.hint)]) from None
        weights = directory / "model.safetensors"
        if not weights.is_file():
            raise RunError(f"stage '{stage.name}': no model.safetensors in {directory}",
                           "point init: at a run directory or its final/ directory")
        source = load_file(str(weights))
        own = model.state_dict()
        matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(matched, strict=False)
        self.say(f"stage '{stage.name}': loaded {len(matched)} of {len(own)} tensors from {directory}")
