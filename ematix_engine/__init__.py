"""ematix_engine: declarative batch and streaming pipelines on Arrow, importable without Dagster.

The names below are the public surface; everything else is internal and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
