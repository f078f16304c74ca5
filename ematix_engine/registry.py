"""Every declared batch pipeline, by name, plus the dependency graph between them.

The Dagster layer and the CLI read pipelines from here. Cycles in ``depends_on`` are caught
when the pipeline that closes the ring is declared (``CycleError`` naming the ring).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ematix_engine.errors import ConfigError, CycleError, UnknownNameError

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline

__all__ = [
    "clear",
    "find_cycle",
    "get_pipeline",
    "load_module",
    "pipelines",
    "register",
    "topological_order",
    "unregister",
]

_PIPELINES: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> None:
    """Add ``pipeline``; a pipeline of the same name from the same module replaces the old one.

    Raises:
        ConfigError: a different module already declared a pipeline with this name.
        CycleError: the new pipeline closes a ring of ``depends_on`` links.
    """
    name = pipeline.name
    existing = _PIPELINES.get(name)
    if existing is not None and existing.spec.module != pipeline.spec.module:
        raise ConfigError(
            f"pipeline {name!r} is declared twice: in {existing.spec.module} and "
            f"{pipeline.spec.module}; give one of them another name"
        )
    _PIPELINES[name] = pipeline
    ring = find_cycle({n: p.spec.depends_on for n, p in _PIPELINES.items()}, start=name)
    if ring:
        del _PIPELINES[name]
        if existing is not None:
            _PIPELINES[name] = existing
        raise CycleError(ring)


def unregister(name: str) -> None:
    """Remove a pipeline (tests and reloads)."""
    _PIPELINES.pop(name, None)


def clear() -> None:
    """Forget every pipeline (tests)."""
    _PIPELINES.clear()


def pipelines(names: Iterable[str] | None = None) -> list[Pipeline]:
    """Declared pipelines, in declaration order (all of them, or those named)."""
    if names is None:
        return list(_PIPELINES.values())
    return [get_pipeline(n) for n in names]


def get_pipeline(name: str) -> Pipeline:
    """Return the pipeline ``name``.

    Raises:
        UnknownNameError: with the closest declared name.
    """
    try:
        return _PIPELINES[name]
    except KeyError:
        raise UnknownNameError("pipeline", name, list(_PIPELINES)) from None


def load_module(module: str) -> list[Pipeline]:
    """Import ``module`` (firing its decorators) and return the pipelines it declared.

    The working directory is importable, as with ``python -m``.
    """
    import os
    import sys

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    imported = importlib.import_module(module)
    declared = [p for p in _PIPELINES.values() if p.spec.module == imported.__name__]
    if not declared:  # imported before the registry was cleared: fire its decorators again
        imported = importlib.reload(imported)
        declared = [p for p in _PIPELINES.values() if p.spec.module == imported.__name__]
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
            if upstream not in _PIPELINES:
                raise UnknownNameError("pipeline", upstream, list(_PIPELINES))
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
