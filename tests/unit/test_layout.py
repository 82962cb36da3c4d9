"""The tree reads like the flow: each stage imports only the stages below it, and no module or
function grows past the size that makes it hard to read (see bot/__init__.py for the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"

# A package may import only packages of a lower layer (and itself). Top-level modules of `bot` that
# every stage may use are layer 0; the wiring and the command line, which know every stage, are last.
LAYERS = {
    "settings": 0, "logs": 0, "messages": 0, "metrics": 0,
    "store": 1, "backends": 1, "outbound": 1,
    "conversation": 2,
    "work": 3,
    "inbound": 4,
    "wiring": 5, "check": 6, "cli": 7, "__main__": 8,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(path for path in BOT.rglob("*.py"))


def _unit(path: Path) -> str:
    """The stage a module belongs to: its folder under bot/, or its own name at the top."""
    parts = path.relative_to(BOT).with_suffix("").parts
    return parts[0]


def _imported_units(tree: ast.AST) -> set[str]:
    units: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "bot" and len(parts) > 1:
                units.add(parts[1])
            elif node.module == "bot":
                units.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "bot" and len(parts) > 1:
                    units.add(parts[1])
    return units


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(BOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    unit = _unit(path)
    if unit == "__init__":
        return
    assert unit in LAYERS, f"{unit} has no layer: add it to LAYERS and to bot/__init__.py"
    tree = ast.parse(path.read_text())
    wrong = {other for other in _imported_units(tree) - {unit, "__version__"}
             if LAYERS.get(other, 99) >= LAYERS[unit]}
    assert not wrong, f"bot/{path.relative_to(BOT)} ({unit}) imports {sorted(wrong)}, not below it"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(BOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is past {MAX_MODULE_LINES} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions past {MAX_FUNCTION_LINES} lines: {long}"


def test_every_folder_says_what_it_owns() -> None:
    for folder in sorted(p for p in BOT.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = folder / "__init__.py"
        assert init.exists(), f"bot/{folder.name} has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"bot/{folder.name}/__init__.py has no docstring"
