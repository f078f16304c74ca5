"""Run the Python examples of docs/causal.md top to bottom, in one namespace.

A block preceded by ``<!-- test: feed the sources ... -->`` is the streaming guide's full example:
its sources are created inside it, so the test plays the producers by filling the sources it
creates (by name) and closing them. Blocks with a top-level ``await`` run under ``asyncio.run``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import re
from pathlib import Path

import pytest

from ematix_engine.causal import Event, InMemoryEventSource

DOC = Path(__file__).resolve().parents[2] / "docs" / "causal.md"
BLOCK = re.compile(r"^(<!-- test: feed[^\n]*-->\n)?```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

SCRIPT = {
    "sensors": [
        Event("Sensor.reading", {"temperature": 120}, id="s1"),
        Event("Sensor.reading", {"temperature": 80}, id="s2"),
        Event("Sensor.critical_reading", {"temperature": 140}, id="c1"),
        Event("Sensor.critical_reading", {"temperature": 150}, id="c2"),
    ],
    "alerts": [
        Event("Alerter.alert", caused_by=["c1"], id="a1"),
        Event("Alerter.alert", caused_by=["c1"], id="a2"),
    ],
}


def test_causal_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_causal"}
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 12
    assert sum(1 for fed, _ in blocks if fed) == 1
    original_init = InMemoryEventSource.__init__
    printed: list[str] = []
    for index, (fed, code) in enumerate(blocks):
        out = io.StringIO()
        with monkeypatch.context() as patch:
            if fed:

                def scripted(self: InMemoryEventSource, name: str = "memory") -> None:
                    original_init(self, name)
                    self.extend(SCRIPT.get(name, []))
                    self.close()

                patch.setattr(InMemoryEventSource, "__init__", scripted)
            compiled = compile(
                code,
                f"docs/causal.md[block {index}]",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
            try:
                with contextlib.redirect_stdout(out):
                    if compiled.co_flags & inspect.CO_COROUTINE:
                        asyncio.run(eval(compiled, namespace))
                    else:
                        exec(compiled, namespace)
            except Exception as error:  # pragma: no cover - the message says which block failed
                raise AssertionError(f"docs/causal.md block {index} failed: {error!r}") from error
        printed += out.getvalue().splitlines()
    assert printed == [
        "Got reading: Event(id='r1', name='Sensor.reading', data={'temperature': 21})",
        "Got reading: Event(id='r2', name='Sensor.reading', data={'temperature': 35})",
        "High temp detected: Event(id='s1', name='Sensor.reading', data={'temperature': 120})",
    ]
