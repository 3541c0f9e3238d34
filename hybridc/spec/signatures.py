"""Signatures of the call-style expressions: data sources and search algorithms.

This table is the front end's contract with the data and training stages: the front end checks names,
argument names, types and ranges here (torch-free); the run stage implements the sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()
from .mad_presets import TASKS as MAD_TASKS


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # int | float | bool | str | path | choice
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]
    doc: str
    tasks: tuple[str, ...] = ()  # task kinds this data source serves (data sources only)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def usage(self) -> str:
        parts = []
        for p in self.params:
            parts.append(p.name if p.required else f"{p.name}={_show_default(p.default)}")
        return f"{self.name}({', '.join(parts)})"


def _show_default(value: Any) -> str:
    from .expr import render_value

    return render_value(value)


_SPLITS = (
    Param("valid", "float", 0.05, minimum=0.0, maximum=0.5, doc="fraction held out for validation"),
    Param("test", "float", 0.05, minimum=0.0, maximum=0.5, doc="fraction held out for testing"),
)

_LRA_SPLITS = (
    Param("valid", "float", 0.1, minimum=0.0, maximum=0.5,
          doc="fraction held out for validation (of the training part, when the source has its own test split)"),
    Param("test", "float", 0.1, minimum=0.0, maximum=0.5,
          doc="fraction held out for testing, when the source has no test split of its own"),
)
PATHFINDER_DIFFICULTIES = ("easy", "intermediate", "hard")
PATHFINDER_RESOLUTIONS = (32, 64, 128)

DATA_SOURCES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature("text", (
            Param("source", "path", doc="a local .txt/.jsonl file or directory, or hf:<dataset>"),
            Param("block", "int", 512, minimum=2, doc="tokens per training sequence"),
            Param("field", "str", "text", doc="the text field of jsonl records"),
            *_SPLITS,
        ), "causal-LM text, tokenized with the spec's tokenizer and cut into blocks", ("causal-lm",)),
        Signature("recall", (
            Param("vocab", "int", 16, minimum=4, doc="vocabulary size (keys: first half, values: second half)"),
            Param("length", "int", 32, minimum=4, doc="sequence length"),
            Param("examples", "int", 2048, minimum=8, doc="sequences generated"),
            *_SPLITS,
        ), "synthetic associative recall (a small quick task)", ("causal-lm",)),
        Signature("mad", (
            Param("task", "choice", choices=MAD_TASKS, doc="the MAD proxy task"),
            Param("preset", "str", "cpu", doc="cpu (minutes on 2 cores), mad (the benchmark's baseline) or a grid "
                  "point such as mad-length256"),
            Param("vocab", "int", None, minimum=4, doc="override the preset's vocabulary size"),
            Param("length", "int", None, minimum=4, doc="override the preset's sequence length"),
            Param("examples", "int", None, minimum=8, doc="override the preset's training examples"),
            Param("noise", "float", None, minimum=0.0, maximum=0.95, doc="override the preset's noise fraction"),
            Param("copy", "int", None, minimum=1, doc="override the tokens to copy (selective copying)"),
            Param("motif", "int", None, minimum=1, maximum=4, doc="override the largest motif (fuzzy recall)"),
        ), "a MAD mechanistic proxy task (Poli et al. 2024)", ("causal-lm", "compress")),
        Signature("listops", (
            Param("length", "int", 512, minimum=8, doc="maximum sequence length"),
            Param("depth", "int", 10, minimum=1, doc="maximum nesting depth"),
            Param("examples", "int", 4096, minimum=8, doc="sequences generated"),
            *_SPLITS,
        ), "Long Range Arena ListOps (10 classes)", ("classify",)),
        Signature("pathfinder", (
            Param("resolution", "int", 32, minimum=32, maximum=128, doc="image side: 32, 64 or 128 (Path-X)"),
            Param("difficulty", "choice", "hard", choices=PATHFINDER_DIFFICULTIES,
                  doc="path length: easy (6 dashes), intermediate (9) or hard (14, LRA's)"),
            Param("examples", "int", 4096, minimum=8, doc="images generated (half of each label)"),
            *_LRA_SPLITS,
        ), "Long Range Arena Pathfinder: generated images as pixel sequences (2 classes)", ("classify",)),
        Signature("pixels", (
            Param("source", "path", doc="CIFAR-10's binary batches (a directory), a folder of images per class, "
                  "or an .npz of arrays"),
            Param("mode", "choice", "gray", choices=("gray", "rgb"),
                  doc="gray: one token per pixel (LRA Image); rgb: three, red green blue"),
            Param("limit", "int", None, minimum=1, doc="at most this many images of each split the source has"),
            *_LRA_SPLITS,
        ), "image classification as a sequence of pixel values 0-255 (LRA Image)", ("classify",)),
        Signature("bytetext", (
            Param("source", "path", doc="the IMDb archive's folder (train/ and test/, a folder per class), "
                  "a .jsonl or .csv file, or hf:<dataset>"),
            Param("text", "str", "text", doc="the text field of records"),
            Param("label", "str", "label", doc="the integer label field of records"),
            Param("length", "int", 4000, minimum=2, doc="bytes kept of each text (its first; LRA Text: 4000)"),
            Param("limit", "int", None, minimum=1, doc="at most this many texts of each split the source has"),
            *_LRA_SPLITS,
        ), "byte-level text classification (LRA Text)", ("classify",)),
        Signature("retrieval", (
            Param("source", "path", doc="a directory of LRA's AAN files (*.train.tsv, *.eval.tsv, *.test.tsv) or one "
                  ".tsv file: label, id1, id2, text1, text2 per line"),
            Param("length", "int", 4000, minimum=2, doc="bytes kept of each document (its first; LRA: 4000)"),
            Param("limit", "int", None, minimum=1, doc="at most this many pairs of each split the source has"),
            *_LRA_SPLITS,
        ), "document matching: pairs of byte-level documents, for task match(n) (LRA Retrieval)", ("match",)),
        Signature("classify", (
            Param("source", "path", doc="a local .jsonl or .csv file, or hf:<dataset>"),
            Param("text", "str", "text", doc="the text field"),
            Param("label", "str", "label", doc="the integer label field"),
            Param("block", "int", 512, minimum=2, doc="maximum tokens per sequence"),
            *_SPLITS,
        ), "sequence classification from labelled records", ("classify",)),
    )
}

# Temperatures divide logits (and kl's T^2 multiplies its loss) in float32: outside this range a softmax of
# logits / T, or T^2 x KL, overflows or underflows there; inside it no logit a model produces comes near either.
TEMPERATURES = (1e-4, 1e4)
MAX_LOSS_WEIGHT = 1e4  # kl's ce weight: ce x cross-entropy summed over a batch stays well inside float32

_WARMUP = Param("warmup", "int", 0, minimum=0,
                doc="the stage's first steps in which only the weights move (a joint search; the alphas stay where "
                    "they start, DASH still samples around them)")

SEARCH_ALGORITHMS: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature("darts", (
            Param("lr", "float", 0.05, minimum=0.0, doc="learning rate of the alphas"),
            Param("alternate", "bool", False, doc="alternate weight steps (training split) and alpha steps (search split)"),
            Param("heldout", "float", 0.1, minimum=0.0, maximum=0.5,
                  doc="with alternate=true: the fraction of the training split held out as the search split, which "
                      "the alpha steps read (0: they read the training stream itself)"),
            _WARMUP,
        ), "DARTS: alphas are the softmax of learned logits"),
        Signature("dash", (
            Param("lr", "float", 0.05, minimum=0.0),
            Param("alternate", "bool", False),
            Param("heldout", "float", 0.1, minimum=0.0, maximum=0.5,
                  doc="as darts"),
            Param("tau", "float", 1.0, minimum=TEMPERATURES[0], maximum=TEMPERATURES[1],
                  doc="Gumbel-softmax temperature during search (1e-4 .. 1e4: float32 divides the logits by it)"),
            Param("tau_end", "float", None, minimum=TEMPERATURES[0], maximum=TEMPERATURES[1],
                  doc="the temperature at the stage's last step, reached by an exponential anneal from tau "
                      "(null: tau throughout; 1e-4 .. 1e4 as tau)"),
            _WARMUP,
        ), "DASH-style: Gumbel-softmax of the logits during search, softmax outside"),
        Signature("gaea", (
            Param("lr", "float", 0.01, minimum=0.0),
            Param("alternate", "bool", False),
            Param("heldout", "float", 0.1, minimum=0.0, maximum=0.5,
                  doc="as darts"),
            _WARMUP,
        ), "GAEA: alphas on the simplex, exponentiated-gradient updates"),
    )
}


DISTILL_LOSSES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature("kl", (
            Param("temperature", "float", 2.0, minimum=TEMPERATURES[0], maximum=TEMPERATURES[1],
                  doc="softmax temperature of teacher and student (1e-4 .. 1e4: float32 divides the logits by it and "
                      "multiplies the KL by its square)"),
            Param("ce", "float", 0.0, minimum=0.0, maximum=MAX_LOSS_WEIGHT,
                  doc="weight of the ordinary cross-entropy on the labels (at most 1e4)"),
        ), "temperature^2 x KL(teacher || student) per scored target, + ce x cross-entropy"),
    )
}
