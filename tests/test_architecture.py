"""The layering rules of docs/architecture.md, checked by reading the imports."""

import ast
from pathlib import Path

import genloom
from genloom.models import FAMILIES

PACKAGE = Path(genloom.__file__).parent

# Which genloom modules each floor may import (nothing imports upward).
ALLOWED = {
    "errors": set(),
    "config": {"errors"},
    "nn": {"nn"},
    "tokenizers": {"errors", "run"},
    "run": {"errors"},
    "data": {"data", "errors", "tokenizers", "config"},
    "models": {"models", "nn", "errors", "data", "config"},
    "generation": {"generation", "errors"},
    "train": {"train", "run", "errors", "config"},
    "evaluate": {"evaluate", "run", "data"},
    "api": {
        "run",
        "config",
        "data",
        "errors",
        "evaluate",
        "generation",
        "models",
        "tokenizers",
        "train",
        "hf",
        "gguf",
        "masked_lm",
        "chat",
        "tune",
    },
    "tune": {"chat", "config", "data", "errors", "evaluate", "generation", "models", "run", "tokenizers", "train"},
    "chat": {"errors"},
    "masked_lm": {"data", "errors", "models", "tokenizers"},
    "cli": {"errors", "__init__", "serve"},
    "serve": {"__init__", "errors", "generation", "chat"},
    "__init__": {"api", "errors", "generation", "masked_lm"},
    "hf": {"errors", "models", "tokenizers"},
    "gguf": {"errors", "models", "tokenizers", "chat", "hf"},
    "__main__": {"cli"},
}


def genloom_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "genloom":  # from genloom import run
            found.update(a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genloom."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("genloom"):
                    parts = alias.name.split(".")
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def test_imports_follow_the_floors():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        floor = rel.parts[0].removesuffix(".py")
        assert floor in ALLOWED, f"{rel}: a new top-level module needs a row in ALLOWED"
        bad = genloom_imports(path) - ALLOWED[floor] - {floor}
        assert not bad, f"{rel} imports {sorted(bad)}, which its floor may not"


def test_registry_matches_family_folders():
    folders = {p.name for p in (PACKAGE / "models").iterdir() if p.is_dir() and (p / "model.py").exists()}
    assert folders == set(FAMILIES)
    for name, family in FAMILIES.items():
        assert family.name == name
        assert family.model.__module__ == f"genloom.models.{name}.model"
        assert "debug" in family.presets


def test_import_genloom_does_not_load_heavy_optional_modules():
    import subprocess
    import sys

    code = "import sys, genloom; print(any(m.startswith(('matplotlib', 'transformers')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
