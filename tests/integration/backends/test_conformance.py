"""Every backend passes the table-store conformance suite (ematix_engine.backends.conformance)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ematix_engine.backends.conformance import CHECKS
from tests.integration.stores import KINDS, make_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    return make_store(request.param, "conf", request, tmp_path)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_store_conformance(check: Callable[[Any, str], None], store: tuple[Any, str]) -> None:
    connection, schema = store
    check(connection, schema)
