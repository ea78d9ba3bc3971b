"""The architecture of DESIGN.md: imports point down the layers; the public API is documented."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import masklab

SRC = Path(masklab.__file__).parent
LAYER = {
    "errors": 0,
    "_workers": 0,
    "core": 1,
    "rle": 1,
    "polygon": 1,
    "testing": 1,
    "formats": 2,
    "store": 3,
    "training": 4,
    "metrics": 2,
    "torch": 4,
    "tf": 4,
    "iis": 4,
    "viewer": 4,
    "ray": 4,
    "demo": 5,
    "demo_store": 5,
    "cli": 5,
}
CORE_ALLOWED = {"numpy", "cv2", "masklab", "__future__", "hypothesis"}


def module_layer(rel: Path) -> int:
    return LAYER[rel.parts[0].removesuffix(".py")]


def imported(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


SOURCES = sorted(
    p.relative_to(SRC) for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC
)


@pytest.mark.parametrize("rel", SOURCES, ids=str)
def test_imports_point_down(rel):
    layer = module_layer(rel)
    tree = ast.parse((SRC / rel).read_text())
    for name in imported(tree):
        parts = name.split(".")
        if parts[0] == "masklab" and len(parts) > 1:
            assert LAYER[parts[1]] <= layer, f"{rel} (layer {layer}) imports {name}"
        if layer <= 1:
            stdlib = name.split(".")[0] in __import__("sys").stdlib_module_names
            assert stdlib or parts[0] in CORE_ALLOWED, f"core module {rel} imports {name}"


def test_public_names_exist_and_are_documented():
    for name in masklab.__all__:
        obj = getattr(masklab, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert obj.__doc__, f"masklab.{name} has no docstring"
    for module_name in ("masklab.rle", "masklab.polygon"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            assert (obj.__doc__ or "").strip(), f"{module_name}.{name} has no docstring"


def test_import_masklab_pulls_no_heavy_optional_dependencies():
    import subprocess
    import sys

    code = (
        "import sys, masklab; heavy = {'torch', 'tensorflow', 'fastapi', 'sqlalchemy', "
        "'pycocotools', 'hypothesis'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
