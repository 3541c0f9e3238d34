"""The README's command tables are the command line's: generated from it (scripts/gen_command_table.py), and
every option each command's --help lists is in its row."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from click.testing import CliRunner

from hybridc.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _generator():
    spec = importlib.util.spec_from_file_location("gen_command_table", ROOT / "scripts" / "gen_command_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_command_tables_are_generated_from_the_cli():
    assert _generator().render(README) == README, "run: python scripts/gen_command_table.py"


def test_every_option_of_every_help_is_in_the_readme():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `hybridc ([a-z-]+)[^`]*` \|.*$", README, re.M)}
    listed = CliRunner().invoke(main, ["--help"]).output
    names = re.findall(r"^  ([a-z][a-z-]+)\s", listed.split("Commands:", 1)[1], re.M)
    assert set(names) == set(rows), "a command of `hybridc --help` is not in the README's tables, or the other way"
    for name in names:
        helped = CliRunner().invoke(main, [name, "--help"]).output
        missing = []
        for line in re.findall(r"^  (-\S.*?)(?:  |$)", helped.split("Options:", 1)[1], re.M):
            spellings = [w.split(" ")[0] for w in re.split(r", | / ", line)]  # '-o, --out DIR': either will do
            if "--help" not in spellings and not any(
                    re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", rows[name]) for o in spellings):
                missing.append(line)
        assert not missing, f"hybridc {name}: {missing} in --help but not in the README's row"
