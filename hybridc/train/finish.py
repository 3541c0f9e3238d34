"""The end of a run: the test split, ``final/`` with its model card, and each component alone on the same test
split (trained with the same budget, or as loaded). Mixed into ``Run``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


from ..data import DataBundle
from ..io.guarded_dir import GuardedDir
from ..models.card import model_card
from ..models.hybrid import HybridModel, lower
from ..spec.derive import fixed_mixture_stages
from ..spec.emit import dump_yaml, spec_to_data
from ..spec.frontend import ResolvedSpec, parse_string, resolve
from ..spec.model import DataSource, Stage
from .loop import evaluate
from .rundir import BASELINES, FINAL, FINAL_OLD, FINAL_STAGING


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    final_dir: Path
    selection: tuple[str, ...] | None
    test: dict[str, float] | None
    comparison: list[dict[str, Any]] = field(default_factory=list)


def last_data_stage(spec) -> Stage | None:
    """The last stage with data: its test split is the one a run's table reports."""
    return next((s for s in reversed(spec.train.stages) if s.data is not None), None)


def eval_batch_size(stage: Stage) -> int:
    """Evaluation needs no gradients: larger batches (fewer, larger ops) than training."""
    return stage.batch_size * 4


TOKENIZED_SOURCES = ("text", "classify")  # the data sources that read the spec's tokenizer


class Finishing:
    """The end of a run: test, final/, baselines."""

    def last_data(self, bundles) -> tuple[Stage, DataBundle] | None:
        stage = last_data_stage(self.spec)
        return (stage, bundles[stage.data]) if stage is not None else None

    def finish(self, model: HybridModel, bundles) -> RunResult:
        final = self.run_dir / FINAL
        test = None
        last = self.last_data(bundles)
        if last is not None:
            stage, data = last
            self.note(f"evaluating on the test split ({len(data.test)} sequences)")
            test = evaluate(model, data.test, eval_batch_size(stage), self.device)
            self.metrics.write(event="test", stage=stage.name, global_step=-1, **test)
        if self.parallel.world > 1 and not model.graph.discretized:
            self.check_replicas(model)
        if self.main:
            self.note(f"saving {final}")
            save_final(model, self.dir, test)
            tok = self.spec.tokenizer
            if model.get_tokenizer() is None and not (tok in self.rs.names and self.spec.component(tok).source.kind == "init"):
                self.say(f"warning: {final} holds no tokenizer: {model.tokenizer_problem}")
        self.accelerator.wait_for_everyone()
        comparison = [{"model": "hybrid" + (f" ({' | '.join(model.graph.selection)})" if model.graph.selection else ""),
                       **(test or {})}]
        if last is not None:
            comparison += self.baselines(last, bundles)
        self.plots()
        return RunResult(self.run_dir, final, model.graph.selection, test, comparison)

    def baselines(self, last: tuple[Stage, DataBundle], bundles: Mapping[DataSource, DataBundle]) -> list[dict[str, Any]]:
        """Each component alone on the same test split (the hybrid's data, not built again): trained with the same
        budget when the spec asks for baselines, else evaluated as it is (pretrained components only)."""
        rows = []
        for name in self.rs.names:
            component = self.spec.component(name)
            if self.spec.train.baselines:
                rs = baseline_spec(self.rs, name)
                options = replace(self.options, out_dir=self.run_dir / BASELINES / name, label=f"{name} alone")
                self.note(f"training {name} alone with the same budget in {options.out_dir}")
                same = {source: bundle for source, bundle in bundles.items()  # tokenized with the same tokenizer
                        if source.name not in TOKENIZED_SOURCES or rs.spec.tokenizer == self.spec.tokenizer}
                with self.dir.child(BASELINES, create=True) as baselines:
                    result = type(self)(rs, options, say=self.say, within=baselines, built=same).execute()
                rows.append({"model": f"{name} alone (same budget)", **(result.test or {})})
            elif component.source.kind != "init":
                rs = baseline_spec(self.rs, name, keep_stages=False)
                alone = self.place(lower(rs))
                stage, data = last
                rows.append({"model": f"{name} alone (as loaded)",
                             **evaluate(alone, data.test, eval_batch_size(stage), self.device)})
            else:
                rows.append({"model": f"{name} alone", "note": "trained from scratch: set train.baselines: true"})
        return rows


def baseline_spec(rs: ResolvedSpec, name: str, keep_stages: bool = True) -> ResolvedSpec:
    """A single-component spec for component ``name``: the component alone through the same pipeline,
    with every training stage of the hybrid turned into a finetune stage of the same budget (as many weight
    steps: half of an alternating search's, ``Stage.weight_budget``). Rewind stages
    stay (they reload the component's pretrained weights), so the component's final weights have had
    exactly the fine-tuning the hybrid's have had since its last rewind; discretization has nothing to do."""
    data = spec_to_data(rs.spec)
    component = data["components"][name]
    component["blocks"] = "split(1)"
    data["name"] = f"{rs.spec.name}-{name}"
    data["components"] = {name: component}
    data["tokenizer"] = rs.spec.tokenizer if rs.spec.tokenizer not in rs.names else name
    data["hybrid"] = {"width": "max", "projector": "linear", "embeddings": "mix", "head": "mix", "mixture": "search"}
    data["train"]["baselines"] = False
    stages = fixed_mixture_stages(data["train"]["stages"], rs.spec.train.stages, kind="finetune",
                                  train=("components", "projectors", "embeddings", "head")) if keep_stages else []
    data["train"]["stages"] = stages
    parsed = parse_string(dump_yaml(data), file=f"<baseline {name}>", base_dir=rs.base_dir)
    return resolve(parsed)


def save_final(model: HybridModel, run: GuardedDir, test: dict | None) -> None:
    """RUN/final/: save_pretrained layout (with the tokenizer) plus a model card, built in RUN/.final-tmp
    (a leftover of a stopped run is removed first; anything else there is refused) and swapped into place
    (an earlier final/ is moved to RUN/.final-old and removed once the new one stands)."""
    from ..components.quiet import transformers_bars_off

    for leftover in (FINAL_STAGING, FINAL_OLD):
        run.remove_tree(leftover)  # (only a directory of ours: a link or a user's file there is refused)
    run.mkdir(FINAL_STAGING)
    with run.child(FINAL_STAGING) as staged:
        with transformers_bars_off():  # no "Writing model shards" bars in a run's output
            model.save_pretrained(staged.library_path())
        staged.write_text("README.md", model_card(model, test))
    if run.exists(FINAL):
        if not run.is_dir(FINAL):
            raise run.refused(FINAL, "a directory")
        run.rename(FINAL, FINAL_OLD)
        run.rename(FINAL_STAGING, FINAL)
        run.remove_tree(FINAL_OLD)
    else:
        run.rename(FINAL_STAGING, FINAL)
    run.fsync()
