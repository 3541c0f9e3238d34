"""transformers' Auto classes load saved hybrids after `import hybridc`, which itself stays torch-free."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hybridc.errors import CompileError
from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec

FRONT = SMALL.split("train:")[0]
TASKS = {"causal-lm": ("AutoModelForCausalLM", ""), "classify": ("AutoModelForSequenceClassification", "task: classify(3)\n"),
         "tag": ("AutoModelForTokenClassification", "task: tag(5)\n")}


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_loads_through_its_auto_class_and_refuses_the_others(tmp_path, task):
    import transformers

    auto_name, line = TASKS[task]
    model = lower(load_spec(write_spec(tmp_path, FRONT + line))).eval()
    model.save_pretrained(tmp_path / "saved")
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    loaded = getattr(transformers, auto_name).from_pretrained(tmp_path / "saved").eval()
    assert isinstance(loaded, HybridModel)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert isinstance(transformers.AutoModel.from_pretrained(tmp_path / "saved"), HybridModel)
    assert transformers.AutoConfig.from_pretrained(tmp_path / "saved").model_type == "hybridc"
    for other, _ in (v for k, v in TASKS.items() if k != task):
        with pytest.raises(CompileError, match=f"task is {task}") as refused:
            getattr(transformers, other).from_pretrained(tmp_path / "saved")
        assert f"load it with {auto_name}" in refused.value.hint


def _fresh_python(script: str) -> str:
    """What a script prints in a new interpreter (it must succeed)."""
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_hybridc_is_torch_free_and_registers_once_transformers_loads(tmp_path):
    """In fresh processes: `import hybridc` imports neither torch nor transformers; importing transformers'
    Auto classes afterwards (or before, or after hybridc's own models) is enough for them to know hybridc."""
    lower(load_spec(write_spec(tmp_path, FRONT))).save_pretrained(tmp_path / "saved")
    saved = repr(str(tmp_path / "saved"))
    assert _fresh_python("import sys, hybridc\n"
                         "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
                         "from transformers import AutoModelForCausalLM\n"
                         f"print(type(AutoModelForCausalLM.from_pretrained({saved})).__name__)") == "HybridForCausalLM"
    assert _fresh_python("import hybridc\nfrom transformers import AutoConfig\n"
                         f"print(AutoConfig.from_pretrained({saved}).model_type)") == "hybridc"
    for first in ("import hybridc.models.hybrid\nfrom transformers import AutoModel",
                  "from transformers import AutoModel\nimport hybridc"):
        assert _fresh_python(f"{first}\nprint(type(AutoModel.from_pretrained({saved})).__name__)") == "HybridModel"
