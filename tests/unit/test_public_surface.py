"""Guard the public surface: every exported name imports and documents itself."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

PACKAGES = [
    "ematix_engine",
    "ematix_engine.connections",
    "ematix_engine.runlog",
    "ematix_engine.ops",
    "ematix_engine.types",
    "ematix_engine.normalize",
    "ematix_engine.transform",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists_and_has_a_docstring(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    undocumented = []
    for name in exported:
        value = getattr(module, name)  # AttributeError = a broken export
        if name.startswith("__") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not inspect.getdoc(value):
            undocumented.append(name)
    assert not undocumented, f"{package}: no docstring on {undocumented}"


def test_the_engine_never_imports_dagster() -> None:
    code = (
        "import sys, ematix_engine, ematix_engine.cli, ematix_engine.batch.runner, "
        "ematix_engine.backends.delta, ematix_engine.batch.orchestrate; "
        "print('dagster' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reference_names_are_top_level() -> None:
    from ematix_engine import (  # noqa: F401 - the import is the assertion
        DeltaS3Connection,
        KafkaConnection,
        ObjectStoreLocalConnection,
        PostgresConnection,
        SchemaRegistryConnection,
        ematix,
        pk,
        register_connection,
    )

    assert callable(ematix.table) and callable(ematix.pipeline) and callable(ematix.connection)
