"""The public surface of ematix_engine.causal: exports import, are documented, modules are small."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import ematix_engine.causal as causal


def test_every_exported_name_exists_and_has_a_docstring() -> None:
    assert causal.__all__ == sorted(causal.__all__)
    undocumented = []
    for name in causal.__all__:
        value = getattr(causal, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            undocumented.append(name)
    assert not undocumented


def test_every_module_has_a_docstring_and_stays_small() -> None:
    for info in pkgutil.iter_modules(causal.__path__):
        module = importlib.import_module(f"ematix_engine.causal.{info.name}")
        assert inspect.getdoc(module), info.name
        lines = inspect.getsource(module).count("\n")
        assert lines <= 550, f"{info.name} has {lines} lines; split it"


def test_pyrapide_names_used_by_the_streaming_guide_exist() -> None:
    for name in ("StreamProcessor", "InMemoryEventSource", "must_match", "never", "watch"):
        assert hasattr(causal, name)
