"""Shared isolation for the connection tests (no tests here).

`isolate_connections` gives a test an empty chain: no EMATIX_DSN* variables, a fresh working
directory and HOME (so no `.ematix.toml` or `~/.ematix` leaks in), and an empty Python registry
that is restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ematix_engine.connections import registry


@dataclass
class Sandbox:
    """Where an isolated test runs: its working directory and home directory."""

    cwd: Path
    home: Path

    def project_toml(self, text: str, name: str = ".ematix.toml") -> Path:
        path = self.cwd / name
        path.write_text(text)
        return path

    def user_toml(self, text: str, folder: str = ".ematix") -> Path:
        path = self.home / folder / "connections.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def isolate_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    for key in list(os.environ):
        if key.startswith(("EMATIX_DSN", "EMATIX_FLOW_DSN")):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    cwd = tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    saved = dict(registry._registered)
    registry._registered.clear()
    try:
        yield Sandbox(cwd=cwd, home=home)
    finally:
        registry._registered.clear()
        registry._registered.update(saved)
