"""The rich ``Console`` hybridc prints with (a closed output pipe is left to the command line to handle), and what
every live display shares: whether to draw one, which steps get a line, elapsed time as a clock."""

from __future__ import annotations

import errno

from rich.console import Console


class PipeConsole(Console):
    """A rich ``Console`` that raises ``BrokenPipeError`` when its reader goes away (``hybridc ... | head``).

    rich's own ends the process there (exit status 1); this one lets the command line end as Unix tools do
    (``hybridc.cli.reader_went_away``) and the git diff driver still exit 0 (git stops at a driver that fails)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more reaches that reader
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def interactive(console: Console) -> bool:
    """A live bar only on a real terminal: rich must see one (``TTY_COMPATIBLE=0`` says no) and the stream
    must be a TTY (``FORCE_COLOR``, which makes rich treat a CI log as a terminal, is not enough)."""
    isatty = getattr(console.file, "isatty", None)
    try:
        return console.is_terminal and isatty is not None and bool(isatty())
    except ValueError:  # a closed stream
        return False


def logs_step(done: int, start: int, total: int, every: int) -> bool:
    """Step ``done`` gets a line: the first step taken here, every ``every``-th step, the last step."""
    return done == start + 1 or done % every == 0 or done == total


def clock(seconds: float) -> str:
    """``1:51`` or ``2:03:07``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
