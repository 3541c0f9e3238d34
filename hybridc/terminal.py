"""The rich ``Console`` hybridc prints with: a closed output pipe is left to the command line to handle."""

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
