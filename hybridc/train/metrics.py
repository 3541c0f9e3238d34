"""metrics.jsonl: one JSON object per event (train step, evaluation, stage boundary), appended and
flushed as the run goes; on resume, events after the checkpoint are dropped so the file reads as if
the run had never stopped."""

from __future__ import annotations

import errno
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PathRefused
from ..io.guarded_dir import GuardedDir, guarded

FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """The metrics file of the run directory ``directory`` (a ``GuardedDir``, or a path opened for each
    access): appended, read and rewritten without following a link. ``enabled=False`` (processes other than
    the main one) writes nothing."""

    def __init__(self, directory: GuardedDir | Path, enabled: bool = True, name: str = FILE):
        self.directory = directory
        self.name = name
        self.enabled = enabled
        self.listener: Callable[[dict[str, Any]], None] | None = None  # also given each event (trackers)

    @property
    def path(self) -> Path:
        """Where the file is (for messages)."""
        where = self.directory.path if isinstance(self.directory, GuardedDir) else Path(self.directory)
        return where / self.name

    def exists(self) -> bool:
        with guarded(self.directory) as d:
            return d.exists(self.name)

    def write(self, **event: Any) -> None:
        if not self.enabled:
            return
        with guarded(self.directory) as d:
            d.append_text(self.name, json.dumps(_clean(event)) + "\n")
        if self.listener is not None:
            self.listener(event)

    def _refused(self, err: OSError) -> PathRefused:
        what = "a symbolic link" if err.errno == errno.ELOOP else (err.strerror or "not a regular file")
        return PathRefused(f"{self.path} is {what}; hybridc writes its metrics only to a file of its own",
                           "move it away (hybridc neither follows nor replaces what it did not write), then run again")

    def records(self) -> list[dict[str, Any]]:
        try:
            with guarded(self.directory) as d:
                text = d.read_text(self.name)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise self._refused(err) from None
        except ValueError:  # not UTF-8: bytes hybridc did not write
            raise PathRefused(f"{self.path} is not UTF-8 text; hybridc did not write it",
                              "move it away, then run again") from None
        out = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:  # a line cut by a crash
                continue
            if isinstance(event, dict):  # hybridc writes only objects; any other value is not an event
                out.append(event)
        return out

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` events (those a checkpoint had seen)."""
        if not self.enabled:
            return
        kept = self.records()[:count]
        with guarded(self.directory) as d:
            d.write_text(self.name, "".join(json.dumps(r) + "\n" for r in kept))
