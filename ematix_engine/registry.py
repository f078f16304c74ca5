"""Every declared pipeline's spec, by name, plus the dependency graph between them.

The registry holds :class:`~ematix_engine.specs.PipelineSpec` records; :func:`pipelines` and
:func:`get_pipeline` hand out the user-facing :class:`~ematix_engine.api.pipeline.Pipeline`
handle of each (one handle per spec). The Dagster layer and the CLI read them from here.
Cycles in ``depends_on`` are caught when the pipeline that closes the ring is declared
(``CycleError`` naming the ring).

Streaming pipelines (``@ematix.streaming_pipeline``) are kept next to them, apart:
:func:`streaming_specs` and :func:`get_streaming_spec` read them, so code that walks batch
pipelines never meets a streaming one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ematix_engine.errors import ConfigError, CycleError, UnknownNameError

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline
    from ematix_engine.specs import PipelineSpec
    from ematix_engine.streaming.config import StreamingPipelineSpec

__all__ = [
    "clear",
    "find_cycle",
    "get_pipeline",
    "get_spec",
    "get_streaming_spec",
    "load_module",
    "load_streaming_module",
    "pipelines",
    "register",
    "register_streaming",
    "specs",
    "streaming_specs",
    "topological_order",
    "unregister",
]

_SPECS: dict[str, PipelineSpec] = {}
_STREAMING: dict[str, StreamingPipelineSpec] = {}


def register(spec: PipelineSpec) -> None:
    """Add ``spec``; a pipeline of the same name from the same module replaces the old one.

    Raises:
        ConfigError: a different module already declared a pipeline with this name.
        CycleError: the new pipeline closes a ring of ``depends_on`` links.
    """
    name = spec.name
    existing = _SPECS.get(name)
    if existing is not None and existing.module != spec.module:
        raise ConfigError(
            f"pipeline {name!r} is declared twice: in {existing.module} and "
            f"{spec.module}; give one of them another name"
        )
    _SPECS[name] = spec
    ring = find_cycle({n: s.depends_on for n, s in _SPECS.items()}, start=name)
    if ring:
        del _SPECS[name]
        if existing is not None:
            _SPECS[name] = existing
        raise CycleError(ring)


def unregister(name: str) -> None:
    """Remove a pipeline (tests and reloads)."""
    _SPECS.pop(name, None)


def clear() -> None:
    """Forget every pipeline, batch and streaming (tests)."""
    _SPECS.clear()
    _STREAMING.clear()


def register_streaming(spec: StreamingPipelineSpec) -> None:
    """Add a streaming pipeline; one of the same name from the same module replaces it.

    Raises:
        ConfigError: a different module already declared a streaming pipeline with this name.
    """
    existing = _STREAMING.get(spec.name)
    if existing is not None and existing.module != spec.module:
        raise ConfigError(
            f"streaming pipeline {spec.name!r} is declared twice: in {existing.module} and "
            f"{spec.module}; give one of them another name"
        )
    _STREAMING[spec.name] = spec


def streaming_specs() -> list[StreamingPipelineSpec]:
    """Declared streaming pipelines, in declaration order."""
    return list(_STREAMING.values())


def get_streaming_spec(name: str) -> StreamingPipelineSpec:
    """Return the streaming pipeline ``name``.

    Raises:
        UnknownNameError: with the closest declared name.
    """
    try:
        return _STREAMING[name]
    except KeyError:
        raise UnknownNameError("streaming pipeline", name, list(_STREAMING)) from None


def load_streaming_module(module: str) -> list[StreamingPipelineSpec]:
    """Import ``module`` (firing its decorators); return the streaming pipelines it declared."""
    imported = _import(module)
    declared = [s for s in _STREAMING.values() if s.module == imported.__name__]
    if not declared:  # imported before the registry was cleared: fire its decorators again
        imported = importlib.reload(imported)
        declared = [s for s in _STREAMING.values() if s.module == imported.__name__]
    return declared


def _import(module: str):
    import os
    import sys

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(module)


def specs(names: Iterable[str] | None = None) -> list[PipelineSpec]:
    """Declared pipeline specs, in declaration order (all of them, or those named)."""
    if names is None:
        return list(_SPECS.values())
    return [get_spec(n) for n in names]


def get_spec(name: str) -> PipelineSpec:
    """Return the spec of pipeline ``name``.

    Raises:
        UnknownNameError: with the closest declared name.
    """
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownNameError("pipeline", name, list(_SPECS)) from None


def pipelines(names: Iterable[str] | None = None) -> list[Pipeline]:
    """Handles of the declared pipelines, in declaration order (all of them, or those named)."""
    from ematix_engine.api.pipeline import Pipeline

    return [Pipeline.of(spec) for spec in specs(names)]


def get_pipeline(name: str) -> Pipeline:
    """Return the handle of pipeline ``name``.

    Raises:
        UnknownNameError: with the closest declared name.
    """
    from ematix_engine.api.pipeline import Pipeline

    return Pipeline.of(get_spec(name))


def load_module(module: str) -> list[Pipeline]:
    """Import ``module`` (firing its decorators) and return the pipelines it declared.

    The working directory is importable, as with ``python -m``.
    """
    import os
    import sys

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    imported = importlib.import_module(module)
    declared = [p for p in pipelines() if p.spec.module == imported.__name__]
    if not declared:  # imported before the registry was cleared: fire its decorators again
        imported = importlib.reload(imported)
        declared = [p for p in pipelines() if p.spec.module == imported.__name__]
    return declared


def find_cycle(graph: dict[str, Iterable[str]], start: str | None = None) -> list[str] | None:
    """Return a ring ``[a, b, …, a]`` in ``graph`` (node → upstreams), or None.

    Args:
        graph: each node's upstream names; names missing from the graph are leaves.
        start: only look for a ring through this node.
    """
    starts = [start] if start is not None else list(graph)
    for origin in starts:
        stack: list[tuple[str, list[str]]] = [(origin, [origin])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for upstream in graph.get(node, ()):
                if upstream == origin:
                    return [*path, origin]
                if upstream not in seen and upstream in graph:
                    seen.add(upstream)
                    stack.append((upstream, [*path, upstream]))
    return None


def topological_order(selected: Iterable[Pipeline]) -> list[Pipeline]:
    """Order pipelines so that upstreams come first (stable by declaration order).

    Raises:
        UnknownNameError: a ``depends_on`` names a pipeline that was never declared.
    """
    chosen = list(selected)
    names = {p.name for p in chosen}
    for p in chosen:
        for upstream in p.spec.depends_on:
            if upstream not in _SPECS:
                raise UnknownNameError("pipeline", upstream, list(_SPECS))
    ordered: list[Pipeline] = []
    placed: set[str] = set()
    remaining = chosen[:]
    while remaining:
        progressed = False
        for p in remaining[:]:
            if all(u in placed or u not in names for u in p.spec.depends_on):
                ordered.append(p)
                placed.add(p.name)
                remaining.remove(p)
                progressed = True
        if not progressed:  # pragma: no cover - register() rejects cycles
            raise CycleError([p.name for p in remaining])
    return ordered
