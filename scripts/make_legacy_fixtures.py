"""Write tests/fixtures/legacy/: model directories and a checkpoint saved by this release of hybridc, with the
logits each gives, so that tests/test_legacy_fixtures.py can check that later releases (moved modules included)
still load them to the same model.

    python scripts/make_legacy_fixtures.py          # from the repository root, in its virtualenv

Writes (tiny GPT-Neo + Mamba components, a BPE tokenizer of 80 tokens, a few hundred KB in all):
  continuous/     a continuous hybrid: ``hybridc.compile(spec).model.save_pretrained`` (untrained)
  run-final/      a run's final/ (4 fine-tuning steps, fixed mixture): a continuous hybrid with its tokenizer
  discretized/    ``hybridc discretize RUN -o discretized`` (argmax: assm then zattn, so a hybrid)
  plain/          the same run discretized to zattn in both blocks: a plain GPT-Neo export with hybridc.json
  stopped-run/    the run's spec.lock.yaml and checkpoints/step-2/ (a run stopped after its first checkpoint)
  expected.json   the release that wrote them, the input ids and each directory's logits
Run it only to record a new release's directories (the old ones stay: they are what users have on disk).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hub import HUB_CACHE  # noqa: E402,F401  (offline stand-in for the Hub, as in the suite)

OUT = ROOT / "tests" / "fixtures" / "legacy"
IDS = [[3, 17, 42, 5, 9, 61, 28, 11]]  # (B=1, T=8), below the tokenizer's 80 tokens
TEXT = "the cat sat on the mat; a dog ran"


def bpe_files(where: Path) -> dict[str, Path]:
    """The suite's small BPE tokenizer (tests/conftest.py's ``bpe_tokenizer_files``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer(models.BPE(unk_token="<unk>"))
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>", "<eos>"])
    rust.train_from_iterator([TEXT, "the quick brown fox jumps over the lazy dog"] * 20, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=rust, unk_token="<unk>", eos_token="<eos>")
    hf.save_pretrained(where)
    return {p.name: p for p in where.iterdir()}


def rounded(logits) -> list:
    """(B, T, V) logits as nested lists, to 6 decimals (the test compares within 1e-4)."""
    return [[[round(x, 6) for x in row] for row in seq] for seq in logits.tolist()]


def logits_of(directory: Path) -> list:
    import torch

    from hybridc.models.load import load_saved

    model = load_saved(directory).model
    with torch.no_grad():
        return rounded(model(torch.tensor(IDS)).logits)


def checkpoint_logits(stopped: Path) -> list:
    import torch
    import yaml

    from hybridc.models.hybrid import lower
    from hybridc.spec.frontend import resolve_from_lock
    from hybridc.train.checkpoint import load_checkpoint

    rs = resolve_from_lock(yaml.safe_load((stopped / "spec.lock.yaml").read_text()))
    model = lower(rs, pretrained=False)
    load_checkpoint(stopped / "checkpoints" / "step-2", model)
    with torch.no_grad():
        return rounded(model.eval()(torch.tensor(IDS)).logits)


def main() -> None:
    from click.testing import CliRunner

    import hybridc
    from hybridc.cli import main as cli
    from hybridc.models.export import discretize_model, export
    from hybridc.models.load import load_hybrid
    from hybridc.components.adapters import build_model
    from hybridc.components.registry import get_family
    from hybridc.testing.tiny import tiny_config
    from tests.models.test_saved_models import CORPUS

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bpe").mkdir()
        dirs = {"zattn": root / "sources" / "zattn", "assm": root / "sources" / "assm"}
        small = {"hidden_size": 16, "layers": 2, "heads": 2}  # smaller than the suite's tiny models: kept in git
        build_model(get_family("gpt-neo"), tiny_config("gpt-neo", window_size=4, **small), seed=21
                    ).save_pretrained(dirs["zattn"])
        build_model(get_family("mamba"), tiny_config("mamba", **small), seed=22).save_pretrained(dirs["assm"])
        for name, path in bpe_files(root / "bpe").items():
            shutil.copyfile(path, dirs["zattn"] / name)
        (root / "corpus.txt").write_text(CORPUS)
        spec = root / "spec.yaml"
        spec.write_text(textwrap.dedent(f"""\
            hybridc: 1
            name: legacy
            tokenizer: zattn
            components:
              zattn: {{from: {dirs['zattn']}, blocks: split(2)}}
              assm: {{from: {dirs['assm']}, blocks: split(2)}}
            hybrid: {{mixture: "fixed([[0.3, 0.7], [0.6, 0.4]])"}}
            train:
              seed: 3
              checkpoint_every: 2
              stages:
                - {{name: tune, kind: finetune, data: "text({root / 'corpus.txt'}, block=16)", steps: 4, batch_size: 4}}
            """))
        hybridc.compile(spec).model.save_pretrained(OUT / "continuous")
        result = CliRunner().invoke(cli, ["train", str(spec), "-o", str(root / "run"), "--quiet"])
        assert result.exit_code == 0, result.output
        shutil.copytree(root / "run" / "final", OUT / "run-final")
        result = CliRunner().invoke(cli, ["discretize", str(root / "run"), "-o", str(OUT / "discretized"), "-q"])
        assert result.exit_code == 0, result.output
        export(discretize_model(load_hybrid(root / "run"), ["zattn", "zattn"]), OUT / "plain")
        (OUT / "stopped-run" / "checkpoints").mkdir(parents=True)
        shutil.copyfile(root / "run" / "spec.lock.yaml", OUT / "stopped-run" / "spec.lock.yaml")
        shutil.copytree(root / "run" / "checkpoints" / "step-2", OUT / "stopped-run" / "checkpoints" / "step-2")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    expected = {"written_by": f"hybridc {hybridc.__version__} at commit {commit.strip()}", "ids": IDS,
                "logits": {name: logits_of(OUT / name) for name in ("continuous", "run-final", "discretized", "plain")}}
    expected["logits"]["stopped-run"] = checkpoint_logits(OUT / "stopped-run")
    (OUT / "expected.json").write_text(json.dumps(expected) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
