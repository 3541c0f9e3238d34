"""Tokenizer files read defensively (hybridc/spec/tokenizer_identity.py): a damaged, hostile or unsupported
tokenizer file is a located error of ``hybridc validate`` giving the real reason (exit 2, no traceback), and
the runtime loader (hybridc/data/tokenizer.py) refuses the same files for the same reason.

``HOSTILE`` is the corpus: each case is the files of a tokenizer directory and a fragment of the message.
Every case goes through the CLI (the spec's ``tokenizer:`` names the directory) and through
``load_hf_tokenizer``. Then: the files validate accepts (each model kind, SentencePiece-only, tokens named by
tokenizer_config.json) have the vocabulary size transformers gives them; damaged files of components are
reported where the spec uses them; and a small fuzz over tokenizer.json mutations (``HYBRIDC_FUZZ_EXAMPLES``,
default 30) checks that the reader refuses with ``TokenizerFileError`` or accepts what the tokenizers library
accepts, with every id below the size it reports.
"""

from __future__ import annotations

import copy
import json
import os
import re
import struct
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.cli import main
from hybridc.errors import RunError
from hybridc.spec import load_spec
from hybridc.spec.tokenizer_identity import (MAX_TOKENIZER_FILE, MAX_VOCAB, TokenizerFileError, identity_of_directory,
                                             identity_of_file, sentencepiece_pieces)
from tests.specs import write_spec
from tests.tiny_models import tiny_config

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning): (?P<message>.*?)"
                        r"(?: \(hint: (?P<hint>.*)\))?$")

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: tok
    tokenizer: {tokenizer}
    components:
      attn:
        init: {{family: gpt-neox, hidden_size: 32, layers: 4, heads: 4, vocab_size: 64, max_length: 64}}
        blocks: split(2)
      ssm:
        init: {{family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}}
        blocks: 0..1, 1..3
    hybrid:
      projector: {{attn: linear, ssm: mlp}}
      mixture: fixed([[0.5, 0.5], [0.25, 0.75]])
    """)
TOKENIZER_AT = (3, 12)

FLAGS = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


def fast(model: dict, added: list | None = None, **top: Any) -> dict:
    """A tokenizer.json document around ``model``."""
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added or [], "normalizer": None,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None, "model": model, **top}


def bpe(vocab: dict | None = None, merges: Any = ("a b",), **more: Any) -> dict:
    vocab = {"<unk>": 0, "a": 1, "b": 2, "ab": 3} if vocab is None else vocab
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
             "vocab": vocab, **more}
    if merges is not None:
        model["merges"] = list(merges)
    return model


def wordlevel(vocab: dict | None = None, **more: Any) -> dict:
    return {"type": "WordLevel", "vocab": {"<unk>": 0, "the": 1, "cat": 2} if vocab is None else vocab,
            "unk_token": "<unk>", **more}


def wordpiece(vocab: dict | None = None, **more: Any) -> dict:
    return {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "the": 1, "##s": 2} if vocab is None else vocab,
            **more}


def unigram(vocab: Any = None, **more: Any) -> dict:
    return {"type": "Unigram", "unk_id": 0, "byte_fallback": False,
            "vocab": [["<unk>", 0.0], ["▁the", -1.0], ["▁cat", -2.0]] if vocab is None else vocab, **more}


def as_json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def sentencepiece_model(pieces: list[str]) -> bytes:
    """A SentencePiece ModelProto (protobuf wire format) with these pieces (unigram, piece 0 unknown)."""
    out = b""
    for i, piece in enumerate(pieces):
        kind = 2 if i == 0 else 1
        out += _field(1, 2, _field(1, 2, piece.encode()) + _field(2, 5, struct.pack("<f", -float(i)))
                      + _field(3, 0, _varint(kind)))
    return out + _field(2, 2, _field(3, 0, _varint(1)) + _field(4, 0, _varint(len(pieces))))


def deep(levels: int) -> str:
    return '{"model": ' + "[" * levels + "]" * levels + "}"


SP_PIECES = ["<unk>", "<s>", "</s>", "▁", "a", "b", "c", "▁ab", "▁abc"]

# name -> (files of the tokenizer directory, fragment of the error message)
HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "top-level-list": ({"tokenizer.json": "[]"}, "tokenizer.json is a list, not an object"),
    "top-level-number": ({"tokenizer.json": "3"}, "tokenizer.json is the number 3, not an object"),
    "null-id": ({"tokenizer.json": as_json(fast(bpe({"<unk>": 0, "a": None}, merges=[])))},
                'model.vocab["a"] is null, not a token id'),
    "string-id": ({"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": "1"})))},
                  'model.vocab["the"] is the string "1", not a token id'),
    "float-id": ({"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": 1.0})))},
                 'model.vocab["the"] is the number 1.0, not a token id'),
    "bool-id": ({"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": True})))},
                'model.vocab["the"] is the boolean true, not a token id'),
    "id-1e9": ({"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": 10**9})))},
               'model.vocab["the"] is 1000000000, outside 0 <= id < 16,777,216'),
    "id-1e12": ({"tokenizer.json": as_json(fast(bpe({"<unk>": 0, "a": 10**12}, merges=[])))},
                "is 1000000000000, outside 0 <= id < 16,777,216"),
    "id-negative": ({"tokenizer.json": as_json(fast(bpe({"<unk>": 0, "a": -5}, merges=[])))},
                    'model.vocab["a"] is -5, outside 0 <= id'),
    "id-huge-literal": ({"tokenizer.json": '{"model": {"type": "WordLevel", "unk_token": "a", "vocab": {"a": '
                                           + "9" * 5000 + "}}}"}, "tokenizer.json is not valid JSON"),
    "shared-id": ({"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": 1, "cat": 1})))},
                  '"the" and "cat" both have id 1'),
    "wordlevel-without-unk": ({"tokenizer.json": as_json(fast({"type": "WordLevel", "vocab": {"a": 0}}))},
                              'model has no "unk_token"'),
    "wordlevel-vocab-list": ({"tokenizer.json": as_json(fast(wordlevel([["a", 0]])))},
                             "model.vocab is a list, not an object"),
    "wordpiece-missing-prefix": ({"tokenizer.json": as_json(fast({"type": "WordPiece", "unk_token": "[UNK]",
                                                                  "vocab": {"[UNK]": 0}}))},
                                 'model has no "continuing_subword_prefix"'),
    "wordpiece-negative-length": ({"tokenizer.json": as_json(fast(wordpiece(max_input_chars_per_word=-1)))},
                                  "max_input_chars_per_word is the number -1, not a whole number >= 0"),
    "unigram-short-entry": ({"tokenizer.json": as_json(fast(unigram([["<unk>", 0.0], ["a"]])))},
                            "model.vocab[1] is a list of 1 items, not a [piece, score] pair"),
    "unigram-string-entry": ({"tokenizer.json": as_json(fast(unigram(["<unk>", "a"])))},
                             'model.vocab[0] is the string "<unk>", not a [piece, score] pair'),
    "unigram-score-string": ({"tokenizer.json": as_json(fast(unigram([["<unk>", "x"]])))},
                             "model.vocab[0][1] is the string \"x\", not a score"),
    "unigram-unk-outside": ({"tokenizer.json": as_json(fast(unigram(unk_id=7)))},
                            "model.unk_id is the number 7, not the position of a piece (0..2)"),
    "unigram-vocab-object": ({"tokenizer.json": as_json(fast(unigram({"a": 0})))},
                             "model.vocab is an object, not a list"),
    "bpe-without-merges": ({"tokenizer.json": as_json(fast(bpe(merges=None)))}, 'BPE model without "merges"'),
    "bpe-null-merges": ({"tokenizer.json": as_json(fast(bpe(merges=None) | {"merges": None}))},
                        "model.merges is null, not a list"),
    "bpe-merge-one-token": ({"tokenizer.json": as_json(fast(bpe(merges=["ab"])))},
                            'merge 1 ("ab") is not two tokens separated by one space'),
    "bpe-merge-unknown-token": ({"tokenizer.json": as_json(fast(bpe(merges=["a c"])))},
                                'uses "c", which is not in the vocabulary'),
    "bpe-merge-result-missing": ({"tokenizer.json": as_json(fast(bpe({"<unk>": 0, "a": 1, "b": 2})))},
                                 'merge 1 ("a b") makes "ab", which is not in the vocabulary'),
    "bpe-merge-prefix-cut": ({"tokenizer.json": as_json(fast(bpe({"<unk>": 0, "a": 1, "é": 2, "aé": 3}, ["a é"],
                                                                 continuing_subword_prefix="#")))},
                             'does not start with the continuing_subword_prefix "#"'),
    "bpe-merges-mixed": ({"tokenizer.json": as_json(fast(bpe(merges=["a b", ["a", "b"]])))},
                         'merges are all "a b" strings or all [a, b] pairs'),
    "bpe-dropout": ({"tokenizer.json": as_json(fast(bpe(dropout=2)))}, "not a probability between 0 and 1"),
    "bpe-unk-number": ({"tokenizer.json": as_json(fast(bpe(unk_token=3)))},
                       "model.unk_token is the number 3, not a string"),
    "empty-vocabulary": ({"tokenizer.json": as_json(fast(bpe({}, merges=[])))}, "tokenizer.json: model defines no tokens"),
    "only-added-tokens": ({"tokenizer.json": as_json(fast(wordlevel({}), [{"id": 0, "content": "<x>", **FLAGS}]))},
                          "tokenizer.json: model defines no tokens"),
    "unigram-empty": ({"tokenizer.json": as_json(fast(unigram([], unk_id=None)))},
                      "tokenizer.json: model defines no tokens"),
    "model-lowercase-type": ({"tokenizer.json": as_json(fast(bpe() | {"type": "bpe"}))},
                             "model.type is the string \"bpe\", not one of the tokenizers library's models"),
    "model-unknown-type": ({"tokenizer.json": as_json(fast({"type": "Tiktoken", "vocab": {"a": 0}}))},
                           "not one of the tokenizers library's models (BPE, WordPiece, WordLevel, Unigram)"),
    "model-untyped": ({"tokenizer.json": as_json(fast({"vocab": {"a": 0}}))},
                      'model has no "type" and is none of BPE, WordPiece, WordLevel, Unigram'),
    "model-missing": ({"tokenizer.json": '{"version": "1.0", "added_tokens": []}'},
                      'tokenizer.json has no "model"'),
    "model-list": ({"tokenizer.json": '{"model": []}'}, "model is a list, not an object"),
    "version-2": ({"tokenizer.json": as_json(fast(wordlevel(), version="2.0"))}, 'version is the string "2.0"'),
    "normalizer-number": ({"tokenizer.json": as_json(fast(wordlevel(), normalizer=5))},
                          "normalizer is the number 5, not an object"),
    "added-null": ({"tokenizer.json": as_json(fast(wordlevel())).replace('"added_tokens": []', '"added_tokens": null')},
                   "added_tokens is null, not a list"),
    "added-string-id": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": "q", "content": "<x>", **FLAGS}]))},
                        'added_tokens[0].id is the string "q", not a token id'),
    "added-float-id": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 3.0, "content": "<x>", **FLAGS}]))},
                       "added_tokens[0].id is the number 3.0, not a token id"),
    "added-huge-id": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 10**9, "content": "<x>", **FLAGS}]))},
                      "added_tokens[0].id is 1000000000, outside"),
    "added-without-flags": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 3, "content": "<x>"}]))},
                            'added_tokens[0] has no "single_word"'),
    "added-content-number": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 3, "content": 7, **FLAGS}]))},
                             "added_tokens[0].content is the number 7, not a string"),
    "added-id-taken": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 1, "content": "<x>", **FLAGS}]))},
                       'added_tokens[0]: "<x>" has id 1, which is already "the"'),
    "added-two-ids": ({"tokenizer.json": as_json(fast(wordlevel(), [{"id": 3, "content": "<x>", **FLAGS},
                                                                   {"id": 4, "content": "<x>", **FLAGS}]))},
                      'added_tokens[1]: "<x>" has id 4 here but id 3 in an earlier added token'),
    "deep-nesting": ({"tokenizer.json": deep(100_000)}, "tokenizer.json nests arrays or objects too deeply"),
    "not-json": ({"tokenizer.json": "{not json"}, "tokenizer.json is not valid JSON"),
    "nan": ({"tokenizer.json": as_json(fast(unigram([["<unk>", 0.0]]))).replace("0.0", "NaN")},
            "tokenizer.json is not valid JSON: NaN is not a JSON number"),
    "not-utf8": ({"tokenizer.json": b'{"model": {"type": "WordLevel", "vocab": {"\xff": 0}}}'},
                 "tokenizer.json is not UTF-8 text (byte 0xff at offset 43)"),
    "utf16": ({"tokenizer.json": as_json(fast(wordlevel())).encode("utf-16")}, "tokenizer.json is not UTF-8 text"),
    "larger-than-64-mib": ({"tokenizer.json": "BIG"}, "tokenizer.json is larger than 64 MiB"),
    "fifo": ({"tokenizer.json": "FIFO", "tokenizer_config.json": "{}"}, "tokenizer.json is not a regular file"),
    # the other files hybridc reads
    "slow-vocab-not-object": ({"vocab.json": "[1, 2]", "merges.txt": "#version: 0.2\n"},
                              "vocab.json is a list, not an object"),
    "slow-vocab-null-id": ({"vocab.json": '{"a": 0, "b": null}', "merges.txt": ""}, 'vocab.json["b"] is null'),
    "slow-merges-bad-line": ({"vocab.json": '{"a": 0, "b": 1, "ab": 2}', "merges.txt": "#version: 0.2\na b c\n"},
                             'merges.txt: line 2 ("a b c") is not two tokens'),
    "slow-merges-not-utf8": ({"vocab.json": '{"a": 0}', "merges.txt": b"a \xfe\n"}, "merges.txt is not UTF-8 text"),
    "slow-without-merges": ({"vocab.json": '{"a": 0}'}, "holds vocab.json but no merges.txt"),
    "wordpiece-empty": ({"vocab.txt": ""}, "vocab.txt defines no tokens"),
    "wordpiece-not-utf8": ({"vocab.txt": b"[UNK]\n\xc3(\n"}, "vocab.txt is not UTF-8 text (byte 0xc3 at offset 6)"),
    "sentencepiece-garbage": ({"tokenizer.model": b"\xff" * 64}, "tokenizer.model is not a SentencePiece model"),
    "sentencepiece-text": ({"tokenizer.model": "IQ== 0\nIg== 1\n"}, "tokenizer.model"),
    "sentencepiece-truncated": ({"tokenizer.model": sentencepiece_model(SP_PIECES)[:-20]},
                                "tokenizer.model is not a SentencePiece model"),
    "spiece-empty": ({"spiece.model": b""}, "spiece.model holds no pieces"),
    "config-only": ({"tokenizer_config.json": '{"tokenizer_class": "PreTrainedTokenizerFast"}'},
                    "holds tokenizer_config.json but no vocabulary file"),
    "config-list": ({"tokenizer.json": as_json(fast(wordlevel())), "tokenizer_config.json": "[]"},
                    "tokenizer_config.json is a list, not an object"),
    "config-not-json": ({"tokenizer.json": as_json(fast(wordlevel())), "tokenizer_config.json": "{bad"},
                        "tokenizer_config.json is not valid JSON"),
    "config-eos-number": ({"tokenizer.json": as_json(fast(wordlevel())), "tokenizer_config.json": '{"eos_token": 5}'},
                          "tokenizer_config.json: eos_token is the number 5, not a token"),
    "config-decoder-key": ({"tokenizer.json": as_json(fast(wordlevel())),
                            "tokenizer_config.json": '{"added_tokens_decoder": {"zz": {"content": "<x>"}}}'},
                           'added_tokens_decoder["zz"]: the key is not a token id'),
    "config-decoder-string": ({"tokenizer.json": as_json(fast(wordlevel())),
                               "tokenizer_config.json": '{"added_tokens_decoder": {"5": "<x>"}}'},
                              'added_tokens_decoder["5"] is the string "<x>", not an object'),
    "config-extra-tokens-string": ({"tokenizer.json": as_json(fast(wordlevel())),
                                    "tokenizer_config.json": '{"additional_special_tokens": "<p>"}'},
                                   "additional_special_tokens is the string \"<p>\", not a list of tokens"),
    "config-class-number": ({"tokenizer.json": as_json(fast(wordlevel())),
                             "tokenizer_config.json": '{"tokenizer_class": 5}'},
                            "tokenizer_class is the number 5, not a string"),
    "special-map-list": ({"tokenizer.json": as_json(fast(wordlevel())), "special_tokens_map.json": "[]"},
                         "special_tokens_map.json is a list, not an object"),
}


def write_files(directory: Path, files: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        if content == "BIG":
            with open(path, "wb") as f:
                f.write(b'{"model": ')
                f.truncate(MAX_TOKENIZER_FILE + 16)  # sparse: no 64 MiB written to disk
        elif content == "FIFO":
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


def validate(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


def located(output: str, path: str, severity: str = "error") -> list[dict]:
    found = []
    for line in output.splitlines():
        m = ERROR_LINE.match(line)
        if m and m["file"] == path and m["severity"] == severity:
            found.append(m.groupdict())
    return found


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_gives_the_real_reason(name: str, tmp_path: Path) -> None:
    files, fragment = HOSTILE[name]
    if "FIFO" in files.values() and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    write_files(tmp_path / "tok", files)
    spec = str(write_spec(tmp_path, SPEC.format(tokenizer="tok")))
    result = validate(spec)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = located(result.output, spec)
    assert len(errors) == 1, result.output  # one error, where the tokenizer is named
    (error,) = errors
    assert (int(error["line"]), int(error["col"])) == TOKENIZER_AT
    assert fragment in error["message"], result.output
    assert "has no tokenizer files" not in result.output and "holds no tokenizer files" not in result.output
    assert error["hint"]
    if re.search(r"(^|-)id(-|$)", name) and "literal" not in name:
        assert "0 <= id < 16,777,216 (2**24)" in error["hint"], error["hint"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_runtime_refuses_the_same_files(name: str, tmp_path: Path) -> None:
    from hybridc.data.tokenizer import load_hf_tokenizer

    files, fragment = HOSTILE[name]
    if "FIFO" in files.values() and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    directory = write_files(tmp_path / "tok", files)
    with pytest.raises(RunError) as info:
        load_hf_tokenizer(str(directory), None, name="tok", what="tokenizer 'tok'")
    assert fragment in str(info.value) and "tokenizer 'tok'" in str(info.value)
    assert info.value.hint


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    write_files(tmp_path / "tok", {"tokenizer.json": deep(100_000)})
    spec = str(write_spec(tmp_path, SPEC.format(tokenizer="tok")))
    done = subprocess.run([sys.executable, "-m", "hybridc", "validate", spec], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (error,) = located(done.stderr, spec)
    assert "nests arrays or objects too deeply" in error["message"]


# ---- what validate accepts, transformers reads alike ----------------------------------------------------

def trained(kind: str, directory: Path) -> Path:
    """A real tokenizer of each model kind, trained and saved by the tokenizers library and transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = ["the cat sat on the mat", "a dog ran after the cat", "zebras yodel quietly"] * 10
    model, trainer = {
        "bpe": (models.BPE(unk_token="<unk>"), trainers.BpeTrainer),
        "wordpiece": (models.WordPiece(unk_token="<unk>"), trainers.WordPieceTrainer),
        "wordlevel": (models.WordLevel(unk_token="<unk>"), trainers.WordLevelTrainer),
        "unigram": (models.Unigram(), trainers.UnigramTrainer),
    }[kind]
    rust = Tokenizer(model)
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"unk_token": "<unk>"} if kind == "unigram" else {}
    rust.train_from_iterator(texts, trainer(vocab_size=40, special_tokens=["<unk>", "<eos>"], **extra))
    PreTrainedTokenizerFast(tokenizer_object=rust, unk_token="<unk>", eos_token="<eos>").save_pretrained(directory)
    return directory


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "wordlevel", "unigram"])
def test_each_model_kind_is_read_with_the_size_transformers_gives_it(kind: str, tmp_path: Path) -> None:
    from hybridc.data.tokenizer import load_hf_tokenizer

    directory = trained(kind, tmp_path / "tok")
    identity = identity_of_directory(directory)
    assert identity.kind == kind
    hf = load_hf_tokenizer(str(directory), None, name="tok")
    ids = hf.tokenizer.get_vocab().values()
    assert identity.size == max(ids) + 1 == hf.vocab_size
    rs = load_spec(write_spec(tmp_path, SPEC.format(tokenizer="tok")))
    assert rs.vocab_size == identity.size
    # a tokenizer.json named directly is read (validate) and loaded (train) as that file
    rs = load_spec(write_spec(tmp_path, SPEC.format(tokenizer="tok/tokenizer.json"), name="file.yaml"))
    assert rs.vocab_size == identity_of_file(directory / "tokenizer.json").size
    from hybridc.data import load_tokenizer

    tok = load_tokenizer(rs)
    assert tok.vocab_size <= rs.vocab_size and max(tok.encode("the cat sat")) < rs.vocab_size


def test_bpe_with_empty_merges_is_accepted_like_the_library_does(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    text = as_json(fast(bpe(merges=[])))
    Tokenizer.from_str(text)  # the library accepts it ...
    write_files(tmp_path / "tok", {"tokenizer.json": text})
    assert load_spec(write_spec(tmp_path, SPEC.format(tokenizer="tok"))).vocab_size == 4  # ... and so does validate
    with pytest.raises(Exception, match="Missing vocab/merges|missing field"):
        Tokenizer.from_str(as_json(fast(bpe(merges=None))))  # without merges, neither does


def test_a_sentencepiece_only_tokenizer_has_its_true_vocabulary(tmp_path: Path) -> None:
    from hybridc.data.tokenizer import load_hf_tokenizer
    from hybridc.spec.tokenizer_identity import sentencepiece_available

    write_files(tmp_path / "tok", {"tokenizer.model": sentencepiece_model(SP_PIECES),
                                   "tokenizer_config.json": json.dumps({"tokenizer_class": "LlamaTokenizer",
                                                                        "unk_token": "<unk>", "bos_token": "<s>",
                                                                        "eos_token": "</s>"})})
    assert sentencepiece_pieces((tmp_path / "tok" / "tokenizer.model").read_bytes()) == SP_PIECES
    spec = write_spec(tmp_path, SPEC.format(tokenizer="tok"))
    rs = load_spec(spec)
    assert rs.vocab_size == len(SP_PIECES)  # never 0
    result = validate(str(spec))
    assert result.exit_code == 0, result.output
    if sentencepiece_available():
        hf = load_hf_tokenizer(str(tmp_path / "tok"), None, name="tok")
        assert hf.vocab_size == len(SP_PIECES)
    else:  # validate warns, train says what is missing
        (warning,) = located(result.output, str(spec), "warning")
        assert "without the sentencepiece package" in warning["message"] and "9 ids" in warning["message"]
        with pytest.raises(RunError, match="without the sentencepiece package") as info:
            load_hf_tokenizer(str(tmp_path / "tok"), None, name="tok")
        assert "pip install sentencepiece" in info.value.hint


def test_tokens_named_by_the_config_count_in_the_vocabulary(tmp_path: Path) -> None:
    """transformers adds the special tokens tokenizer_config.json names but the vocabulary lacks: they take
    the next ids, and the hybrid's vocabulary must cover them."""
    from hybridc.data.tokenizer import load_hf_tokenizer

    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "eos_token": "<eos>",
              "pad_token": "<pad>", "added_tokens_decoder": {"40": {"content": "<extra>", "special": True}}}
    write_files(tmp_path / "tok", {"tokenizer.json": as_json(fast(wordlevel())),
                                   "tokenizer_config.json": json.dumps(config),
                                   "special_tokens_map.json": json.dumps({"bos_token": "<eos>"})})
    identity = identity_of_directory(tmp_path / "tok")
    assert identity.size == 3 + 3  # <eos>, <pad>, <extra>: new; <unk> is in the vocabulary
    hf = load_hf_tokenizer(str(tmp_path / "tok"), None, name="tok")
    assert max(hf.tokenizer.get_vocab().values()) + 1 == hf.vocab_size == identity.size
    assert load_spec(write_spec(tmp_path, SPEC.format(tokenizer="tok"))).vocab_size == 6


def test_the_id_bound_is_two_to_the_24(tmp_path: Path) -> None:
    top = MAX_VOCAB - 1
    write_files(tmp_path / "ok", {"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "far": top})))})
    assert identity_of_directory(tmp_path / "ok").size == MAX_VOCAB
    write_files(tmp_path / "no", {"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "far": top + 1})))})
    with pytest.raises(TokenizerFileError, match="outside 0 <= id < 16,777,216"):
        identity_of_directory(tmp_path / "no")


# ---- components' tokenizer files --------------------------------------------------------------------

def component(directory: Path, family: str, files: dict[str, Any] | None, vocab: int = 64) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(tiny_config(family, vocab_size=vocab)))
    if files:
        write_files(directory, files)
    return directory


GOOD = {"tokenizer.json": as_json(fast(wordlevel()))}
BROKEN = {"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": None})))}


def two_components(tmp_path: Path, a_files, b_files, *, tokenizer: str = "a", b_vocab: str = "pretrained",
                   a_size: int = 64) -> str:
    a = component(tmp_path / "a", "gpt-neo", a_files, vocab=a_size)
    b = component(tmp_path / "b", "mamba", b_files)
    return str(write_spec(tmp_path, textwrap.dedent(f"""\
        hybridc: 1
        name: tok
        tokenizer: {tokenizer}
        components:
          a:
            from: {a}
            blocks: split(1)
          b:
            from: {b}
            blocks: split(1)
            vocab: {b_vocab}
        hybrid:
          embeddings: mix
          head: mix
        """)))


def test_a_component_named_as_the_tokenizer_with_damaged_files(tmp_path: Path) -> None:
    spec = two_components(tmp_path, BROKEN, GOOD)
    result = validate(spec)
    assert result.exit_code == 2 and "Traceback" not in result.output
    (error,) = located(result.output, spec)
    assert (int(error["line"]), int(error["col"])) == TOKENIZER_AT
    assert "the tokenizer of 'a': tokenizer.json: model.vocab[\"the\"] is null" in error["message"]


def test_a_component_tokenizer_beyond_its_vocabulary(tmp_path: Path) -> None:
    ids = {"tokenizer.json": as_json(fast(wordlevel({"<unk>": 0, "the": 500})))}
    spec = two_components(tmp_path, ids, ids)
    result = validate(spec)
    assert result.exit_code == 2, result.output
    (error,) = located(result.output, spec)
    assert (int(error["line"]), int(error["col"])) == TOKENIZER_AT
    assert "the tokenizer of 'a' uses ids up to 500, beyond its vocabulary of 64 rows" in error["message"]
    assert "vocab_size to at least 501" in error["hint"]


def test_a_transplanted_component_with_damaged_files_says_why(tmp_path: Path) -> None:
    spec = two_components(tmp_path, GOOD, BROKEN, b_vocab="transplant")
    result = validate(spec)
    assert result.exit_code == 2 and "Traceback" not in result.output
    (error,) = located(result.output, spec)
    assert (int(error["line"]), int(error["col"])) == (11, 12)  # components.b.vocab
    assert "cannot read the tokenizer files of 'b'" in error["message"] and "is null" in error["message"]
    assert "has no tokenizer files" not in result.output


def test_a_pretrained_component_with_damaged_files_is_one_warning_with_the_reason(tmp_path: Path) -> None:
    spec = two_components(tmp_path, GOOD, BROKEN)
    result = validate(spec)
    assert result.exit_code == 0, result.output
    (warning,) = located(result.output, spec, "warning")
    assert (int(warning["line"]), int(warning["col"])) == (9, 11)  # components.b.from
    assert "cannot read the tokenizer files of 'b'" in warning["message"] and "is null" in warning["message"]
    assert "has no tokenizer files" not in result.output


def test_a_hybrid_tokenizer_directory_read_for_the_agreement_check_is_reported_once(tmp_path: Path) -> None:
    write_files(tmp_path / "tok", {"tokenizer.json": deep(50_000)})
    spec = two_components(tmp_path, GOOD, GOOD, tokenizer="tok", b_vocab="new")
    result = validate(spec)
    assert result.exit_code == 2, result.output
    (error,) = located(result.output, spec)
    assert "nests arrays or objects too deeply" in error["message"]
    assert not located(result.output, spec, "warning"), result.output


# ---- fuzz: mutations of valid tokenizer.json files ----------------------------------------------------

EXAMPLES = int(os.environ.get("HYBRIDC_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BASES = [
    fast(bpe({"<unk>": 0, "a": 1, "b": 2, "ab": 3, "c": 4, "abc": 5}, ["a b", "ab c"]),
         [{"id": 6, "content": "<eos>", **FLAGS}]),
    fast(wordpiece(), [{"id": 0, "content": "[UNK]", **FLAGS}, {"id": 3, "content": "[SEP]", **FLAGS}]),
    fast(wordlevel(), [{"id": 3, "content": "<eos>", **FLAGS}]),
    fast(unigram(), [{"id": 0, "content": "<unk>", **FLAGS}]),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**40, max_value=2**40) | st.sampled_from([0, 1, 2, 3, 6])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6) | st.sampled_from(["a", "ab", "a b", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into the model and added tokens of a tokenizer.json (what hybridc reads)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            if prefix or key in ("model", "added_tokens"):
                out.extend(paths(value, prefix + (key,)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(paths(value, prefix + (i,)))
    return out


@st.composite
def mutated(draw) -> dict:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        last = where[-1]
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "delete":
            del parent[last]
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "merges", "vocab", "unk_id", "type", "id", "ab"]))] = draw(json_values)
        elif action == "insert":
            parent.insert(last, draw(json_values))
        else:
            parent[last] = draw(json_values)
        if not paths(doc):
            break
    return doc


@FUZZ
@given(doc=mutated())
def test_fuzz_refused_cleanly_or_accepted_by_the_library(doc: dict, tmp_path_factory) -> None:
    from tokenizers import Tokenizer

    directory = tmp_path_factory.mktemp("fuzz")
    text = as_json(doc)
    (directory / "tokenizer.json").write_text(text, encoding="utf-8")
    try:
        identity = identity_of_directory(directory)
    except TokenizerFileError as err:
        assert err.message and err.hint
        return
    # accepted: the library builds it, and every id it hands out is below the size validate reports
    rust = Tokenizer.from_str(text)
    assert max(rust.get_vocab(with_added_tokens=True).values(), default=-1) < identity.size
    assert 0 < identity.size <= MAX_VOCAB
