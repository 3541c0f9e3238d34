"""Reaching the Hugging Face Hub, failing at once when it does not answer.

With the network down and HF_HUB_OFFLINE unset, huggingface_hub (and transformers and datasets through
it) retries every file missing from its cache five times with backoff, about 23 s a file, printing
``Retrying in 8s``. hybridc asks the endpoint once instead (one HEAD with a short timeout, through
huggingface_hub's own HTTP client, so its proxies and certificates apply): when it does not answer, every
fetch uses the cache only, and a file the cache lacks is reported at once with what to do.

The answer is remembered for the process, per endpoint: ``hybridc.spec.frontend.resolve`` fetches
configs and tokenizer files in separate calls that share no context to keep it in, and a run that started
without the Hub would not find it later either. With HF_HUB_OFFLINE set nothing is asked.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PROBE_TIMEOUT = 5.0  # seconds for the one HEAD request: connect, TLS and answer


class HubUnreachable(Exception):
    """The Hub did not answer and the cache holds no copy of what was asked for."""

    def __init__(self, endpoint: str, reason: str):
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"the Hub ({endpoint}) is unreachable ({reason}) and the cache has no copy")


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: huggingface_hub uses its cache only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def unreachable() -> HubUnreachable | None:
    """Why the Hub cannot be asked (as the error a missing file is reported with), or None when it answers
    or HF_HUB_OFFLINE is set (huggingface_hub then never tries the network)."""
    if offline():
        return None
    url = endpoint()
    reason = _probe(url)
    return HubUnreachable(url, reason) if reason is not None else None


@functools.lru_cache(maxsize=8)
def _probe(url: str) -> str | None:
    """None when ``url`` answers anything (any status: the Hub is there); else the error, briefly."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(url, timeout=PROBE_TIMEOUT, follow_redirects=False)
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeout, proxy, TLS: no file can be fetched either
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return None


def hint(what: str = "the model", local: str = "a local directory (written by save_pretrained)") -> str:
    """What to do when the Hub cannot be reached; ``what`` names the thing that was asked for, ``local``
    what to name instead of hf:<id>."""
    return (f"set HF_HUB_OFFLINE=1 to use only the cache (no network tries); download {what} once while online, "
            f"or use {local}")


def local_only(location: str | Path) -> bool:
    """Whether ``from_pretrained(location)`` must stay in the cache: a Hub id (not a local directory) while
    the Hub does not answer."""
    return not Path(location).exists() and unreachable() is not None


def shadowing_directory(repo: str) -> Path | None:
    """The local path that transformers' ``from_pretrained(repo)`` would read instead of the Hub repository
    ``repo``: it looks for a directory of that name relative to the working directory first. None when
    there is none (``hf_hub_download``, used for configs, never looks there)."""
    path = Path(repo)
    try:
        return path if os.path.lexists(path) else None
    except (OSError, ValueError):
        return None


def download(repo: str, filename: str, revision: str | None = None) -> Path:
    """``hf_hub_download`` of one file; when the Hub does not answer, from the cache only, raising
    ``HubUnreachable`` when the cache lacks it."""
    from huggingface_hub import hf_hub_download

    down = unreachable()
    if down is None:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision, local_files_only=True))
    except OSError:  # LocalEntryNotFoundError: not in the cache
        raise down from None
