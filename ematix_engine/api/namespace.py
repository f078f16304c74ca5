"""The ``ematix`` namespace object users decorate with (``@ematix.table``, …)."""

from __future__ import annotations

from typing import Any

__all__ = ["ematix"]


class _EmatixNamespace:
    """Holds the declarative decorators under one name, as the reference guide spells them.

    Attributes are resolved lazily so that importing one surface does not import the others.
    """

    _targets = {
        "connection": ("ematix_engine.connections.decorator", "connection"),
        "table": ("ematix_engine.api.table", "table"),
        "pipeline": ("ematix_engine.api.pipeline", "pipeline"),
        "target": ("ematix_engine.api.pipeline", "target"),
        "streaming_pipeline": ("ematix_engine.streaming.api", "streaming_pipeline"),
        "daily": ("ematix_engine.partitions", "daily"),
        "hourly": ("ematix_engine.partitions", "hourly"),
        "monthly": ("ematix_engine.partitions", "monthly"),
        "static": ("ematix_engine.partitions", "static"),
    }

    def __getattr__(self, attribute: str) -> Any:
        try:
            module_name, name = self._targets[attribute]
        except KeyError:
            raise AttributeError(f"ematix has no attribute {attribute!r}") from None
        import importlib

        return getattr(importlib.import_module(module_name), name)

    def __dir__(self) -> list[str]:
        return sorted(self._targets)

    def __repr__(self) -> str:
        return "<ematix declarative namespace>"


ematix = _EmatixNamespace()
