"""The declarative surface: ``@ematix.table``, ``@ematix.pipeline``, ``@ematix.connection``.

These are thin: each turns a declaration into a frozen spec (``ematix_engine.specs``) and
registers it. Nothing here talks to a database.
"""

from __future__ import annotations

from ematix_engine.api.namespace import ematix

__all__ = ["ematix"]
