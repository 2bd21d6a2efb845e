"""The gateway's distribution ships every package and data file of the source tree (a
wheel install, as the Docker image does, has nothing else)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "server" / "notigate"


def test_every_package_of_the_tree_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(("notigate", *init.parent.relative_to(SOURCE).parts))
        for init in SOURCE.rglob("__init__.py")
    }
    assert found == listed


def test_every_data_file_is_covered_by_the_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]
    for data in [*SOURCE.rglob("*.lua"), *(SOURCE / "dashboard" / "static").rglob("*")]:
        if data.is_dir():
            continue
        package_dir = next(d for d in [data.parent, *data.parents] if (d / "__init__.py").exists())
        package = ".".join(("notigate", *package_dir.relative_to(SOURCE).parts))
        relative = data.relative_to(package_dir)
        assert any(relative.match(p) for p in patterns.get(package, [])), data
