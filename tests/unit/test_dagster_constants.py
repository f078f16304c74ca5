"""Metadata keys have one source of truth: ``ematix_dagster/constants.py``, and all of it is used."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

import ematix_dagster
from ematix_dagster import constants
from ematix_dagster.metadata import EmatixMetadata, TableMetadata

ROOT = Path(ematix_dagster.__file__).resolve().parents[1]
PACKAGE = ROOT / "ematix_dagster"
CONSTANTS = PACKAGE / "constants.py"
KEY_PREFIXES = ("ematix/", "dagster/")


def _sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py") if p != CONSTANTS)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (module, class, function), which may mention keys in prose."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_metadata_key_is_spelled_outside_constants() -> None:
    folders = [PACKAGE]
    if (ROOT / "example_project").is_dir():
        folders.append(ROOT / "example_project")
    offenders = []
    for path in _sources(*folders):
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(KEY_PREFIXES)
                and id(node) not in docstrings
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "use ematix_dagster.constants instead:\n" + "\n".join(offenders)


def test_every_constant_is_used_in_ematix_dagster() -> None:
    used: set[str] = set()
    for path in _sources(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.alias):
                used.add(node.asname or node.name)
    unused = sorted(set(constants.__all__) - used)
    assert not unused, f"constants nothing in ematix_dagster uses (delete them): {unused}"


def test_constants_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(constants) if name.isupper()}
    assert constants.__all__ == sorted(public)


@pytest.mark.parametrize("record", [EmatixMetadata, TableMetadata], ids=lambda r: r.__name__)
def test_metadata_set_keys_are_namespace_slash_field(record) -> None:
    names = [f.name for f in fields(record)]
    assert dict(record.field_keys) == {name: f"{record.namespace}/{name}" for name in names}
