"""metrics.jsonl: one JSON object per event (train step, evaluation, stage boundary), appended and
flushed as the run goes; on resume, events after the checkpoint are dropped so the file reads as if
the run had never stopped."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..io import atomic_write_text


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """``enabled=False`` (processes other than the main one) writes nothing."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, **event: Any) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(event)) + "\n")
            f.flush()

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a crash
                continue
        return out

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` events (those a checkpoint had seen)."""
        if not self.enabled:
            return
        kept = self.records()[:count]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
