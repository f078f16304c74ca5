"""Run the examples of docs/dagster.md top to bottom in one namespace; check its YAML."""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from ematix_dagster import EmatixPipelinesComponent

DOC = Path(__file__).resolve().parents[2] / "docs" / "dagster.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(DOC.read_text()) if m.group(1) == language]


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_dagster")  # a real module: annotations resolve against it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    codes = blocks("python")
    assert len(codes) >= 6
    for code in codes:
        exec(compile(code, str(DOC), "exec", dont_inherit=True), module.__dict__)
    assert (tmp_path / "warehouse.duckdb").exists()


def test_yaml_example_names_real_component_fields() -> None:
    (text,) = blocks("yaml")
    document = yaml.safe_load(text)
    assert document["type"] == "ematix_dagster.EmatixPipelinesComponent"
    fields = {f.name for f in dataclasses.fields(EmatixPipelinesComponent)}
    assert set(document["attributes"]) <= fields


def test_the_screenshot_is_there() -> None:
    assert (DOC.parent / "img" / "asset-graph.png").stat().st_size > 10_000
