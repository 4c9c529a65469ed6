"""The package as installed: what it imports is what it declares, and its shipped files exist."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

from coldchain.shipped import SHIPPED_CONFIGS

PACKAGE = Path(__file__).resolve().parents[1] / "coldchain"


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "coldchain"}


def _declared_distributions() -> set[str]:
    declared = set()
    for req in md.requires("coldchain") or []:
        if "extra ==" in req:
            continue  # dev tools are not run-time dependencies
        declared.add(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return declared


def test_packaging_every_imported_module_is_a_declared_dependency() -> None:
    providers = md.packages_distributions()
    declared = _declared_distributions()
    undeclared = {}
    for module in sorted(_imported_top_level_modules()):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        assert dists, f"no installed distribution provides {module!r}"
        if not dists & declared:
            undeclared[module] = sorted(dists)
    assert not undeclared, f"imported by coldchain but not in [project] dependencies: {undeclared}"


def test_packaging_shipped_configs_are_found_from_the_package() -> None:
    assert (SHIPPED_CONFIGS / "products" / "vaccine-2-8.toml").is_file()
    assert (SHIPPED_CONFIGS / "customs" / "default.toml").is_file()
    assert (SHIPPED_CONFIGS / "alerts.toml").is_file()
