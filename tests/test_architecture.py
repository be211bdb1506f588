"""The layering rules of docs/architecture.md, checked by reading the imports."""

import ast
from pathlib import Path

import pytest

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
    "train": {"train", "run", "errors", "config", "lazy"},
    # generation: validity trials (bfcl); errors: HumanEval sets and limits named in one line
    "evaluate": {"evaluate", "run", "data", "lazy", "generation", "errors"},
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
        "image_watermark",
    },
    "tune": {
        "chat",
        "config",
        "data",
        "errors",
        "evaluate",
        "generation",
        "hf",
        "models",
        "run",
        "tokenizers",
        "train",
    },
    "chat": {"errors"},
    "masked_lm": {"data", "errors", "models", "tokenizers"},
    "cli": {"errors", "__init__", "serve"},
    "serve": {"__init__", "errors", "generation", "chat"},
    "__init__": {"agents", "api", "documents", "errors", "evaluate", "generation", "masked_lm", "train", "tune"},
    "documents": {"__init__", "endpoint", "errors", "lazy", "run"},  # run: atomic writes
    "agents": {
        "__init__",
        "chat",
        "endpoint",
        "errors",
        "generation",
    },  # the agent loop opens runs through the public API
    "lazy": set(),
    "endpoint": {"errors"},  # a client for OpenAI-compatible endpoints the user names
    "hf": {"errors", "config", "models", "tokenizers", "chat"},  # chat: an export's template as Jinja
    "gguf": {"errors", "models", "tokenizers", "chat", "hf"},
    "__main__": {"cli"},
    "image_watermark": {"errors"},  # the image watermark: numpy/scipy only, used by the API's image runs
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


CONTRACT_CALLERS = ["api/__init__.py", "cli.py", "serve/app.py"]  # they go through the modality contract
HANDLE_CLASSES = {"LanguageModel", "MaskedLanguageModel", "Translator", "ImageModel"}


def dispatch_names(path: Path) -> list[str]:
    """What in `path` would dispatch on what a run is: a string equal to a family or modality name (not
    in a docstring), a handle class named, or a comparison with a family's `modality` or `family`."""
    from genloom.api.modalities import MODALITIES

    names = set(FAMILIES) | set(MODALITIES) | {m.kind for m in MODALITIES.values()}
    tree = ast.parse(path.read_text())
    arguments = {  # a CLI argument named "text" names an argument, not a kind of run
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
        for arg in [*node.args, *(k.value for k in node.keywords)]
    }
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | arguments:
            if node.value.lower() in names:
                found.append(f"line {node.lineno}: the string {node.value!r}")
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in HANDLE_CLASSES:
                found.append(f"line {node.lineno}: {name}")
        elif isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Attribute) and side.attr in ("modality", "family", "objective"):
                    found.append(f"line {node.lineno}: a comparison with .{side.attr}")
    return sorted(found, key=lambda f: int(f.split(":")[0].removeprefix("line ")))


@pytest.mark.parametrize("module", CONTRACT_CALLERS)
def test_api_cli_and_server_name_no_family_or_modality(module):
    assert dispatch_names(PACKAGE / module) == []


def test_the_dispatch_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Docstrings may say gpt."""\n'
        "def f(fam, handle):\n"
        '    """Nor here: image."""\n'
        '    if fam.modality == "image":\n'
        "        return isinstance(handle, Translator)\n"
        '    return fam.name == "gpt"\n'
    )
    assert dispatch_names(bad) == [
        "line 4: a comparison with .modality",
        "line 4: the string 'image'",
        "line 5: Translator",
        "line 6: the string 'gpt'",
    ]


def test_the_cli_answers_help_without_torch_and_tune_is_the_function():
    """`genloom --help` imports neither torch nor the API; `genloom.tune` is the public function even when
    a module of the subpackage genloom.tune was imported first."""
    import subprocess
    import sys

    code = "import sys, genloom.cli; genloom.cli.build_parser(); print('torch' in sys.modules, 'genloom.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    code = (
        "import genloom.tune.lora, genloom.train.loop, genloom.evaluate.report, genloom as gl; "
        "print(*(f.__module__ for f in (gl.train, gl.evaluate, gl.tune)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["genloom.api"] * 3  # the functions, not the subpackages imported first
