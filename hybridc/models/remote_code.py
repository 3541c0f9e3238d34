"""The files that let transformers load a saved hybrid without ``import hybridc``: the ``auto_map`` of its
``config.json`` and the two modules it names (``configuration_hybridc.py``, ``modeling_hybridc.py``), which
subclass hybridc's classes from the module paths in ``ENTRY_POINTS``; and the Auto class and model class of
each task. Torch-free: written by the config (``HybridConfig.save_pretrained``) and read by the Auto
registration (``hybridc.models.auto``) and the model card."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text

AUTO_CLASS_OF_TASK = {"causal-lm": "AutoModelForCausalLM", "classify": "AutoModelForSequenceClassification",
                      "tag": "AutoModelForTokenClassification", "match": "AutoModelForSequenceClassification"}
TASK_CLASS_NAMES = {"causal-lm": "HybridForCausalLM", "classify": "HybridForSequenceClassification",
                    "tag": "HybridForTokenClassification", "match": "HybridForSequenceClassification"}


# ---- loading without ``import hybridc``: transformers' remote-code convention -----------------------------

# ``config.json``'s ``auto_map``: transformers clients given ``trust_remote_code=True`` (lm-eval, TRL, ``pipeline``,
# a plain ``AutoModelForCausalLM.from_pretrained``) import these modules from the model directory.
AUTO_MAP = {
    "AutoConfig": "configuration_hybridc.HybridConfig",
    "AutoModel": "modeling_hybridc.HybridModel",
    **{auto_name: f"modeling_hybridc.{TASK_CLASS_NAMES[task]}" for task, auto_name in AUTO_CLASS_OF_TASK.items()},
}
# The modules subclass hybridc's classes, each in the file transformers will copy. transformers marks the class it
# loads from a model directory as remote code (``register_for_auto_class``) and, when that model or config is saved
# again, copies the file that defines the class and the files it imports relatively (``custom_object_save``). A
# re-exported hybridc class would be defined in hybridc's own source, whose package-relative imports the copier
# cannot follow; a subclass defined here is copied as this file, whose only relative import is the other file. The
# code is still hybridc's, installed (transformers checks the imports of a remote-code file and says
# "pip install hybridc" when the package is missing). hybridc's own save_pretrained writes these files itself.
#
# Entry points: these files, and the files of directories saved by earlier releases (which import
# ``hybridc.models.config.HybridConfig`` and ``hybridc.models.hybrid.HybridModel``/``HybridForCausalLM``/
# ``HybridForSequenceClassification``/``HybridForTokenClassification`` directly), import the module paths in
# ``ENTRY_POINTS``: moving those classes breaks every saved directory (tests/test_ecosystem.py loads both forms).
ENTRY_POINTS = {"config": "hybridc.models.config", "models": "hybridc.models.hybrid"}
MODEL_CLASSES = ("HybridModel", *TASK_CLASS_NAMES.values())
_PACKAGE, _MODULE = ENTRY_POINTS["models"].rsplit(".", 1)
REMOTE_CODE = {
    "configuration_hybridc.py": (
        '"""A hybrid saved by hybridc: its config class is hybridc\'s own (`pip install hybridc`), subclassed in this\n'
        'file so that transformers copies this file when the model is saved again."""\n\n'
        f"from {ENTRY_POINTS['config']} import HybridConfig as _HybridConfig\n\n\n"
        "class HybridConfig(_HybridConfig):\n"
        '    """hybridc\'s HybridConfig."""\n'),
    "modeling_hybridc.py": (
        '"""A hybrid saved by hybridc: its model classes are hybridc\'s own (`pip install hybridc`), subclassed in\n'
        "this file so that transformers copies this file (and configuration_hybridc.py) when the model is saved "
        'again."""\n\n'
        f"from {_PACKAGE} import {_MODULE} as _hybrid\n\n"
        "from .configuration_hybridc import HybridConfig\n"
        + "".join(f"\n\nclass {name}(_hybrid.{name}):\n"
                  f'    """hybridc\'s {name}."""\n\n'
                  "    config_class = HybridConfig\n" for name in MODEL_CLASSES)),
}


def write_remote_code(directory) -> None:
    """Write the modules ``AUTO_MAP`` names into a model directory (atomically, each)."""
    for name, text in REMOTE_CODE.items():
        atomic_write_text(Path(directory) / name, text)

