"""The engine core's one-way rules: backends as data, modes as data, immutable specs."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Annotated

import pytest

import ematix_engine
from ematix_engine import ematix, pk
from ematix_engine.modes import MODES, all_managed_names
from ematix_engine.specs import FrozenMapping, LoadMode, PipelineSpec, SqlSource
from ematix_engine.types import BigInt, Text

ENGINE = Path(ematix_engine.__file__).parent
SYSTEMS = {"postgres", "duckdb", "sqlite", "delta", "delta_local", "mysql"}
#: Folders that may name systems: the backends themselves, connection kinds (URLs, typed
#: connections), and the RunLog's own storage schemes.
ALLOWED = ("backends", "connections", "runlog")


def _system_checks(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = {
            o.value for o in operands if isinstance(o, ast.Constant) and isinstance(o.value, str)
        }
        for o in operands:
            if isinstance(o, ast.Tuple | ast.Set | ast.List):
                names |= {e.value for e in o.elts if isinstance(e, ast.Constant)}
        asks = any(
            (isinstance(o, ast.Attribute) and o.attr in {"name", "dialect", "kind"})
            or (isinstance(o, ast.Name) and o.id in {"dialect", "kind", "backend"})
            for o in operands
        )
        if asks and names & SYSTEMS:
            found.append(f"{path.relative_to(ENGINE)}:{node.lineno}")
    return found


def test_nothing_outside_backends_asks_which_backend_it_is() -> None:
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if path.relative_to(ENGINE).parts[0] in ALLOWED:
            continue
        offenders += _system_checks(path)
    assert offenders == []


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    return modules + [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]


@pytest.mark.parametrize("layer", ["backends", "write"])
def test_backends_and_the_write_core_never_import_the_batch_layer(layer: str) -> None:
    for path in (ENGINE / layer).rglob("*.py"):
        assert not [m for m in _imports(path) if m.startswith("ematix_engine.batch")], path.name


def test_every_mode_is_one_entry_of_the_table() -> None:
    assert set(MODES) == set(LoadMode)
    for mode, description in MODES.items():
        assert description.mode is mode
        names = description.managed_names
        assert len(names) == len(set(names))
        assert callable(description.plan_function())
    assert {"row_hash", "valid_from", "_loaded_at", "_batch_id"} <= all_managed_names()


def _declare() -> ematix_engine.Pipeline:
    @ematix.table(schema="s", name="t")
    class T:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=T, mode="merge", tags={"team": "data"}, owners=["a@b.c"])
    def frozen_pipe(conn):
        return "SELECT 1 AS id, 'x' AS name"

    return frozen_pipe


def test_specs_are_deeply_immutable_and_hashable() -> None:
    spec = _declare().spec
    assert isinstance(spec.source, SqlSource)
    assert isinstance(spec.tags, FrozenMapping)
    assert hash(spec) == hash(dataclasses.replace(spec))
    assert spec in {spec}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.tags["team"] = "other"  # type: ignore[index]
    for value in (spec.targets, spec.depends_on, spec.owners, spec.checks):
        assert isinstance(value, tuple)


def test_the_registry_holds_specs_and_hands_out_one_handle_per_spec() -> None:
    from ematix_engine import registry

    handle = _declare()
    assert registry.get_spec("frozen_pipe") is handle.spec
    assert registry.get_pipeline("frozen_pipe") is handle
    assert isinstance(registry.specs()[0], PipelineSpec)
