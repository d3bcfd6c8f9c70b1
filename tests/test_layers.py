"""The house's arrows point one way: cli -> experiments -> graph -> agents -> tools -> data, training -> data;
LLM plumbing below the roles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# room -> the rooms it may import from (besides itself)
ALLOWED = {
    "data": set(),
    "tools": {"data"},
    "training": {"data"},
    "agents": {"tools", "data"},
    "graph": {"agents", "tools", "training", "data"},
    "experiments": {"graph", "agents", "tools", "training", "data"},
}
# The command line (cli.py, the package's one top-level module) stands above every room.
TOP = "cli"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name for name in names if name.startswith("gaptune.")}


def _modules(room: str) -> list[Path]:
    return sorted(p for p in (ROOT / room).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_a_room() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    rooms = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert top == {"__init__", TOP} and rooms == set(ALLOWED), (top, rooms)


def test_no_room_imports_the_command_line() -> None:
    wrong = [f"{path.relative_to(ROOT)} imports {name}" for room in ALLOWED for path in _modules(room)
             for name in _imports(path) if name == f"gaptune.{TOP}"]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_downwards(room: str) -> None:
    wrong = []
    for path in _modules(room):
        for name in _imports(path):
            target = name.split(".")[1]
            if target != room and target not in ALLOWED[room]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_llm_plumbing_does_not_import_the_roles() -> None:
    plumbing = ("gaptune.agents.llm", "gaptune.agents.teacher_config")
    wrong = [f"{path.relative_to(ROOT)} imports {name}"
             for path in _modules("agents/llm") for name in _imports(path)
             if name.startswith("gaptune.agents.") and not name.startswith(plumbing)]
    assert not wrong, "\n".join(wrong)
