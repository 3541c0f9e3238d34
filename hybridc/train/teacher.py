"""The teacher of distill stages: the continuous hybrid kept (and saved under RUN/teacher) at the discretize stage,
read back by a resumed run, released with its files after the last distill stage. Mixed into ``Run``."""

from __future__ import annotations

from ..errors import PathRefused, RunError
from ..models.hybrid import HybridModel, lower
from .checkpoint import RunPosition, checkpoint_spec_digest, save_checkpoint
from .rundir import CHECKPOINTS, TEACHER


class TeacherKeeping:
    """The teacher a run's distill stages learn from."""

    def keep_teacher(self, model: HybridModel, k: int, global_step: int) -> None:
        """Before discretize stage ``k``: when a distill stage follows, keep the continuous hybrid as the
        teacher (frozen, in inference mode) and save it as a verified checkpoint under RUN/teacher, which
        a run resumed after the discretization loads (``distill_teacher``)."""
        if not any(s.kind == "distill" for s in self.spec.train.stages[k + 1:]):
            return
        if self.main:
            with self.dir.child(TEACHER, create=True) as teacher:
                save_checkpoint(teacher, model, {}, RunPosition(k, 0, global_step), keep=1,
                                spec_digest=self.spec_digest)
        self.accelerator.wait_for_everyone()
        self.teacher = frozen_teacher(model)

    def distill_teacher(self) -> HybridModel:
        """The teacher: the one kept at the discretize stage, or, in a resumed run, its checkpoint (the
        newest under RUN/teacher that passes every check and was written for this spec)."""
        if self.teacher is not None:
            return self.teacher
        from .checkpoint import latest_checkpoint, load_checkpoint

        missing = RunError(f"{self.run_dir / TEACHER} holds no teacher this run saved (the continuous hybrid its "
                           "distill stages learn from, written at the discretize stage)",
                           "restore the directory from a copy, or train the run again from the beginning in a "
                           "new -o directory")
        try:
            teacher = self.dir.child(TEACHER)
        except FileNotFoundError:
            raise missing from None
        with teacher:
            found = latest_checkpoint(teacher, warn=self.say)
            if found is None:
                raise missing
            with teacher.child(f"{CHECKPOINTS}/{found[0].name}") as checkpoint:
                if checkpoint_spec_digest(checkpoint) != self.spec_digest:
                    raise missing
                model = lower(self.rs, pretrained=False)
                load_checkpoint(checkpoint, model)
        self.teacher = frozen_teacher(self.place(model))
        return self.teacher

    def needs_teacher(self, position: RunPosition) -> bool:
        """A run resumed at ``position`` has a distill stage to run after its discretization: it needs the
        teacher saved then."""
        stages = self.spec.train.stages
        discretized = any(s.kind == "discretize" for s in stages[:position.stage_index])
        return discretized and any(s.kind == "distill" for s in stages[position.stage_index:])

    def release_teacher(self, k: int) -> None:
        """After stage ``k``: with no distill stage left, free the teacher's memory and its files."""
        if any(s.kind == "distill" for s in self.spec.train.stages[k + 1:]):
            return
        self.teacher = None
        if self.main:
            try:
                self.dir.remove_tree(TEACHER)
            except PathRefused as err:  # (only what hybridc wrote is removed)
                self.say(f"warning: {TEACHER}/ left as it is: {err}")


def frozen_teacher(model: HybridModel) -> HybridModel:
    """``model`` as a teacher: inference mode, no parameter takes gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
