"""The ematix example: a small shop in SQLite loaded into a DuckDB warehouse and a Delta lake.

Data files go to ``EMATIX_DATA_DIR`` (default ``<repo>/.data``): ``shop.db`` (the source the
generator writes), ``warehouse.duckdb`` and ``lake/`` (Delta tables). ``make dev`` serves it.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_VAR = "EMATIX_DATA_DIR"

# The connections read ${EMATIX_DATA_DIR} when they are used; give it a default for `make dev`.
os.environ.setdefault(DATA_DIR_VAR, str(REPO_ROOT / ".data"))


def data_dir() -> Path:
    """The folder of the example's data files (created if needed)."""
    path = Path(os.environ.get(DATA_DIR_VAR) or REPO_ROOT / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path
