"""metrics.jsonl: one JSON object per event (train step, evaluation, stage boundary), appended and
flushed as the run goes; on resume, events after the checkpoint are dropped so the file reads as if
the run had never stopped."""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import PathRefused, atomic_write_text, read_regular_text


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
        self.listener: Callable[[dict[str, Any]], None] | None = None  # also given each event (trackers)

    def write(self, **event: Any) -> None:
        if not self.enabled:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags | getattr(os, "O_NONBLOCK", 0), 0o666)
        except OSError as err:
            raise self._refused(err) from None
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(event)) + "\n")
            f.flush()
        if self.listener is not None:
            self.listener(event)

    def _refused(self, err: OSError) -> OSError:
        if err.errno in (errno.ELOOP, errno.EINVAL, errno.EISDIR, errno.ENXIO):
            what = "a symbolic link" if err.errno == errno.ELOOP else (err.strerror or "not a regular file")
            return PathRefused(f"{self.path} is {what}; hybridc writes its metrics only to a file of its own",
                               "move it away (hybridc neither follows nor replaces what it did not write), "
                               "then run again")
        return err

    def records(self) -> list[dict[str, Any]]:
        try:
            text = read_regular_text(self.path, follow_links=False)
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
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
