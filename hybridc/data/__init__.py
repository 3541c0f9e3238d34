"""Training data: data sources (``text``, ``recall``, ``classify``, ``mad``, ``listops`` and the other Long Range
Arena tasks: ``pathfinder``, ``pixels``, ``bytetext``, ``retrieval``),
tokenizers, deterministic disjoint splits and resumable batch order. Uses torch; the front end never
imports this package.

    tok = load_tokenizer(rs)
    bundle = build_data(stage.data, task=rs.spec.task, tokenizer=tok, seed=rs.spec.train.data_seed_or_seed,
                        base_dir=rs.base_dir, location=rs.source_map.at("train", "stages", i, "data"))
    batch = bundle.train.batch(batch_indices(len(bundle.train), 8, step, seed=seed, stream="train"))
"""

from .bundle import BUILDERS, build_data
from .context import SourceContext, canonical_source, short_form
from .dataset import IGNORE_INDEX, DataBundle, Split
from .sampling import batch_indices, derive_seed, generator, split_indices, split_sizes
from .tokenizer import ByteTokenizer, HFTokenizer, Tokenizer, load_hf_tokenizer, load_tokenizer

__all__ = [
    "BUILDERS", "IGNORE_INDEX", "ByteTokenizer", "DataBundle", "HFTokenizer", "SourceContext", "Split",
    "Tokenizer", "batch_indices", "build_data", "canonical_source", "derive_seed", "generator",
    "load_hf_tokenizer", "load_tokenizer", "short_form", "split_indices", "split_sizes",
]
