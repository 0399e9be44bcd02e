"""The package's layers import only downward (README, "Layout").

Every ``import`` in ``clockprop/`` (module level and inside functions) is resolved to the
sub-package it reaches; a module may import its own layer or one below it, never one above.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clockprop"

# Bottom to top. A layer may import the layers before it in this list, never after.
LAYERS = ["core", "models", "hw", "boards", "sim", "sw"]


def _imports(path):
    """(line, absolute module name) of every clockprop import in ``path``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            for target in targets:
                yield node.lineno, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _layer(module):
    parts = module.split(".")
    if parts[0] != "clockprop" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def upward_imports():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None:
            continue
        for line, target in _imports(path):
            other = _layer(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) "
                             f"imports {target} ({other})")
    return found


def test_every_module_is_in_a_layer():
    strays = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
              if len(p.relative_to(PACKAGE).parts) > 1
              and p.relative_to(PACKAGE).parts[0] not in LAYERS]
    assert strays == []


def test_no_upward_import():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a core module importing the CLI is reported."""
    fake = tmp_path / "clockprop"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("def f():\n    from ..sw.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert upward_imports() == ["clockprop/core/bad.py:2 (core) imports clockprop.sw.cli (sw)"]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_is_a_package(layer):
    assert (PACKAGE / layer / "__init__.py").exists()
