"""The doctests written in module docstrings run with the test suite (they are documentation: keep them true)."""

from __future__ import annotations

import doctest
import importlib

import pytest

# Modules whose docstrings hold examples (grep -rl ">>>" src/srpsa).
MODULES = ["srpsa.inference.scale", "srpsa.inference.refine", "srpsa.synth", "srpsa.inference.analyzer"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def test_every_module_with_examples_is_listed():
    from pathlib import Path

    import srpsa

    root = Path(srpsa.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        if ">>>" in path.read_text(encoding="utf-8"):
            rel = path.relative_to(root.parent).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found.add(".".join(parts))
    assert found == set(MODULES)
