"""``build_data``: one data source -> a ``DataBundle`` of disjoint train/valid/test splits.

``BUILDERS`` maps each data-source name (see ``hybridc.spec.signatures.DATA_SOURCES``) to a function
``(SourceContext) -> Examples`` that makes every example; ``build_data`` then shuffles the examples
with a generator seeded from (seed, the data's identity: ``data_identity``) and cuts them into test,
valid and train by the source's ``valid``/``test`` fractions. Everything depends only on the source's
arguments, the content of the files it reads and the seed: never on how a path is spelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import Location
from ..spec.model import DataSource, Task
from ..spec.signatures import DATA_SOURCES
from .bytetext import build_bytetext
from .classify import build_classify
from .context import Examples, SourceContext, canonical_source
from .dataset import DataBundle
from .listops import build_listops
from .mad import build_mad
from .pathfinder import build_pathfinder
from .pixels import build_pixels
from .retrieval import build_retrieval
from .sampling import generator, split_indices
from .synthetic import build_recall
from .text import build_text
from .tokenizer import Tokenizer

Builder = Callable[[SourceContext], "Examples | DataBundle"]
MIN_EXAMPLES = 3


BUILDERS: dict[str, Builder] = {
    "text": build_text,
    "recall": build_recall,
    "classify": build_classify,
    "mad": build_mad,
    "listops": build_listops,
    "pathfinder": build_pathfinder,
    "pixels": build_pixels,
    "bytetext": build_bytetext,
    "retrieval": build_retrieval,
}


def build_data(source: DataSource, *, task: Task, tokenizer: Tokenizer | None, seed: int, base_dir: Path,
               location: Location) -> DataBundle:
    """Every example of ``source`` split into train/valid/test (see the module docstring).

    ``location`` is where the data expression is written; problems with the data (a missing file, too
    little text, a bad label) are ``SpecError``s located there. Reading failures (unreadable files, a
    Hub dataset offline) are ``RunError``s.
    """
    sig = DATA_SOURCES.get(source.name)
    assert sig is not None and source.name in BUILDERS, f"unknown data source {source.name}()"
    assert task.kind in sig.tasks, f"{source.name}() data is for {'/'.join(sig.tasks)}, not {task}"
    ctx = SourceContext(canonical_source(source), task, tokenizer, int(seed), Path(base_dir), location)
    examples = BUILDERS[source.name](ctx)
    if isinstance(examples, DataBundle):  # the source makes its own splits (MAD: train/test differ)
        return replace(examples, source=str(ctx.source))
    full = examples.data
    if len(full) < MIN_EXAMPLES:
        raise ctx.error(f"{ctx.short} gives only {len(full)} {examples.unit}, fewer than {MIN_EXAMPLES}",
                        "the data needs at least one example for each of train, valid and test")
    identity = data_identity(ctx.source, examples.files)
    idx = split_indices(len(full), float(ctx.arg("valid")), float(ctx.arg("test")),
                        generator(ctx.seed, "split", identity))
    train, valid, test = full.select(idx.train), full.select(idx.valid), full.select(idx.test)
    description = (f"{ctx.short}: {len(train)} train / {len(valid)} valid / {len(test)} test {examples.unit}")
    return DataBundle(train, valid, test, full.max_token_id(), description, identity)


def data_identity(source: DataSource, files: tuple[Path, ...]) -> str:
    """What a source's splits are keyed by (with the seed): its canonical text, with the local file or
    directory it names replaced by ``sha256:<digest>`` of what was read, each file's kind (its suffix: a
    ``.txt`` file is one document, a ``.jsonl`` file one per line) and bytes, in reading order.

    So a path spelled relative, absolute, with ``./`` or through a link, or a copy of the data elsewhere,
    splits the same way, and an example is in the same split wherever the data is named from (the spec,
    ``hybridc eval --data``). Synthetic and ``hf:`` sources keep their text: it is their identity."""
    if not files:
        return str(source)
    digest = hashlib.sha256()
    for path in files:
        content = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                content.update(chunk)
        digest.update(f"{path.suffix.lower()}\x1f{content.hexdigest()}\n".encode())
    args = tuple((k, f"sha256:{digest.hexdigest()}" if k == "source" else v) for k, v in source.args)
    return str(DataSource(source.name, args))
