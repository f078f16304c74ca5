"""Fixtures of the batch-engine suite: ``h`` is one backend of :data:`harness.BACKENDS`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.batch.harness import BACKENDS, Harness, make_harness


@pytest.fixture(params=BACKENDS)
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A harness whose connection is registered as ``default`` (one per :data:`BACKENDS` id).

    Pipelines a test declares pass ``**h.pipeline_options`` (delta, postgres_x: the source
    connection, a DuckDB file).
    """
    return make_harness(request.param, request, tmp_path)
