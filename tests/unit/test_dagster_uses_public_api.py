"""ematix_dagster reaches the engine only through names the engine exports publicly."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import ematix_dagster

#: The engine's public modules: the package itself and its documented subpackages. Within each,
#: only the names in ``__all__`` are public.
PUBLIC_MODULES = (
    "ematix_engine",
    "ematix_engine.checks",
    "ematix_engine.connections",
    "ematix_engine.ops",
    "ematix_engine.runlog",
    "ematix_engine.types",
)

SOURCES = sorted(Path(ematix_dagster.__file__).parent.rglob("*.py"))


def _engine_imports(path: Path) -> list[tuple[int, str, str | None]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ematix_engine"):
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name, None)
                for alias in node.names
                if alias.name.startswith("ematix_engine")
            ]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_only_public_engine_names_are_imported(path: Path) -> None:
    for line, module, name in _engine_imports(path):
        where = f"{path.name}:{line}"
        assert module in PUBLIC_MODULES, f"{where} imports from internal module {module}"
        if name is not None:
            exported = importlib.import_module(module).__all__
            assert name in exported, f"{where}: {module}.{name} is not in {module}.__all__"


def test_the_resource_runs_pipelines_through_the_public_run_iterator() -> None:
    source = (Path(ematix_dagster.__file__).parent / "resource.py").read_text()
    assert "iter_run" in source
    assert "record_start" not in source and "record_finish" not in source
