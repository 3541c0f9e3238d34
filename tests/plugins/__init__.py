"""Sample plugin family packages (``sample_family/``, ``broken_family/``) and ``install``, which installs them
for a test the way pip does, without pip or a network: each package's code and its ``*.dist-info`` (metadata
and the entry points its ``pyproject.toml`` declares) in a site directory put on ``sys.path``."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = {"sample": HERE / "sample_family", "broken": HERE / "broken_family"}


def install(site: Path, *projects: Path) -> Path:
    """Install ``projects`` (directories with a pyproject.toml) into ``site``; return ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for project in projects:
        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        for package in project.iterdir():
            if package.is_dir() and (package / "__init__.py").is_file():
                shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
        info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
        entry_points = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) + "\n"
                               for group, points in meta.get("entry-points", {}).items())
        (info / "entry_points.txt").write_text(entry_points)
    return site


def activate(site: Path) -> None:
    """Put ``site`` on ``sys.path`` and make hybridc look for plugin families again."""
    from hybridc.components import registry

    sys.path.insert(0, str(site))
    registry.families.cache_clear()


def deactivate(site: Path) -> None:
    from hybridc.components import registry

    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith(("hybridc_sample_family", "hybridc_broken_family"))]:
        del sys.modules[name]
    registry.families.cache_clear()
