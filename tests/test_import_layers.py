"""Imports go one way: views and consumers -> forms -> actions -> tasks -> pipelines -> domain
(servers, stacks, llm, logs, knowledge) -> clients and models. No module imports inside a
function to dodge a cycle (the app's ready(), which registers things once Django is set up,
aside)."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "deployments"

# Higher may import lower, never the other way. Modules not named here (errors, waiting,
# choices, crypto, ...) are the floor.
LAYERS = {
    "clients": 0,
    "models": 0,
    "servers": 1,
    "stacks": 1,
    "llm": 1,
    "logs": 1,
    "knowledge": 1,
    "pipelines": 2,
    "tasks": 3,
    "actions": 4,
    "forms": 5,
    "views": 6,
    "consumers": 6,
    # The app's wiring: url and websocket routes, and what ready() registers.
    "urls": 7,
    "routing": 7,
    "apps": 7,
}
# Where importing inside a function is the framework's way, not a dodge.
LOCAL_IMPORTS_ALLOWED = {"apps.py"}


def modules() -> list[Path]:
    return sorted(path for path in APP.rglob("*.py") if "migrations" not in path.parts)


def layer_of(parts: tuple[str, ...]) -> int:
    top = parts[0].removesuffix(".py") if parts else ""
    return LAYERS.get(top, 0)


def imported_parts(path: Path, node: ast.ImportFrom) -> tuple[str, ...] | None:
    """The app-relative parts of what `node` imports, or None for imports from outside."""
    if node.level == 0:
        if not (node.module or "").startswith("deployments."):
            return None
        return tuple(node.module.split(".")[1:])
    package = path.parent.relative_to(APP).parts
    base = package[: len(package) - (node.level - 1)]
    return base + tuple((node.module or "").split(".")) if node.module else base


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(APP)))
def test_a_module_imports_only_its_own_layer_and_those_below(path):
    own = layer_of(path.relative_to(APP).parts)
    tree = ast.parse(path.read_text())
    upward = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = imported_parts(path, node)
            if parts is None:
                continue
            targets = [parts] if parts else [(alias.name,) for alias in node.names]
            for target in targets:
                if layer_of(target) > own:
                    upward.append(f"line {node.lineno}: {'.'.join(target)}")
    assert upward == []


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(APP)))
def test_no_module_imports_inside_a_function(path):
    if path.name in LOCAL_IMPORTS_ALLOWED:
        return
    tree = ast.parse(path.read_text())
    local = [
        f"line {inner.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]
    assert local == []


def test_the_layer_check_sees_an_upward_import():
    """The check itself can fail: a domain module importing a pipeline is caught."""
    path = APP / "stacks" / "files.py"
    node = ast.parse("from ..pipelines.steps import StepFailed").body[0]
    parts = imported_parts(path, node)
    assert parts == ("pipelines", "steps")
    assert layer_of(parts) > layer_of(path.relative_to(APP).parts)
