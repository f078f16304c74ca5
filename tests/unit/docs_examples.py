"""Run the Python blocks of a docs page top to bottom in one namespace (used by test_docs_*)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def run_page(page: str, *, min_blocks: int) -> None:
    """Execute every ```python block of ``docs/<page>``; fail naming the block that broke."""
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem}"}
    blocks = BLOCK.findall((DOCS / page).read_text())
    assert len(blocks) >= min_blocks
    for index, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/{page}[block {index}]", "exec", dont_inherit=True), namespace)
        except Exception as error:  # pragma: no cover - the message says which block failed
            raise AssertionError(f"docs/{page} block {index} failed: {error!r}") from error
