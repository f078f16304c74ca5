"""Experiment: compile the causal hot modules with mypyc, to measure what compiling would give.

Not part of the package or its install. It copies the committed tree (``git archive HEAD``) to
a scratch directory, makes the few changes mypyc needs there (the constraint and parking mixins
become traits, summary annotations become ``Any``, ``Plan`` declares its attributes, the inlined
``Node`` construction goes back to ``Node(...)``, and the batch counter no longer relies on the
value a ``for`` loop variable keeps after the loop, which mypyc does not preserve), then runs
``mypyc`` on ``graph``, ``engine``, ``checks``, ``parking`` and ``plans``. The pure-Python
sources in the repository are not touched.

Needs ``mypy`` (tested with 1.15.0; mypyc 2.4.1 built modules that abort on Python 3.11) and a
C compiler; the compiled modules import ``mypy_extensions`` (installed with mypy) at run time. Then run the benchmark on the copy::

    python -m benchmarks.causal_mypyc /tmp/ematix-mypyc
    cd /tmp/ematix-mypyc && PYTHONPATH=$PWD python -m benchmarks.causal --skip-pyrapide

The causal tests pass on the copy except the two that read docstrings off compiled modules.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("graph.py", "engine.py", "checks.py", "parking.py", "plans.py")


def _sub(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"causal_mypyc: the source changed, cannot find {old.strip()!r}")
    return text.replace(old, new)


def _with_any(text: str) -> str:
    line = text.split("from typing import", 1)[1].split("\n", 1)[0]
    if "Any" in line:
        return text
    return re.sub(r"from typing import (.*)", r"from typing import Any, \1", text, count=1)


def prepare(dst: Path) -> None:
    """Copy the committed tree to ``dst`` and adapt the hot modules for mypyc."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    causal = dst / "ematix_engine" / "causal"

    plans = (causal / "plans.py").read_text()
    slots = re.search(r'class Plan:\n    """[^"]*"""\n\n    __slots__ = \((.*?)\)\n', plans, re.S)
    assert slots is not None
    names = re.findall(r'"(\w+)"', slots.group(1))
    declared = "".join(f"    {n}: Any\n" for n in names)
    (causal / "plans.py").write_text(
        plans.replace(slots.group(0), slots.group(0) + "\n" + declared)
    )

    for name, cls in (("checks.py", "class ConstraintChecks:"), ("parking.py", "class Parking:")):
        text = (causal / name).read_text()
        text = _sub(text, cls, "@trait\n" + cls)
        text = _sub(
            text,
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom mypy_extensions import trait\n",
        )
        text = re.sub(r"^(    \w+): (int|float|bool)$", r"\1: Any", text, flags=re.M)
        (causal / name).write_text(_with_any(text))

    engine = (causal / "engine.py").read_text()
    engine = re.sub(
        r"            node = new_node\(Node\)\n(            node\.\w+ = .*\n)+",
        "            node = Node(event, seq, plan, sets, None if plan.contrib else sets)\n"
        "            node.pins = plan.pins\n",
        engine,
    )
    engine = _sub(engine, "            cause = None  #", "            cause: Any = None  #")
    engine = _sub(engine, "causes: list[Node] | None = None", "causes: Any = None")
    engine = _sub(engine, "            pairs = None\n", "            pairs: Any = None\n")
    locals_any = "".join(
        f"        {v}: Any\n" for v in ("sets", "alive", "found", "node", "victim", "result")
    )
    engine = _sub(engine, "        taken = 0\n", "        taken = 0\n" + locals_any)
    engine = _sub(
        engine,
        "        for taken in range(1, count + 1):  # noqa: B007 - taken is the result\n",
        "        for _ in range(count):\n            taken += 1\n",
    )
    (causal / "engine.py").write_text(engine)

    for name in MODULES:
        text = (causal / name).read_text()
        # summaries are frozensets, Cons cells or nodes: mypyc treats them as plain objects
        text = re.sub(r"tuple\[(frozenset(\[[^\]]*\])?|Summary), \.\.\.\]( \| None)?", "Any", text)
        text = re.sub(
            r"(: |-> |\[)(Summary|frozenset(\[Node\])?|Cons \| frozenset\[Node\])(?=[,)\]:= ])",
            r"\1Any",
            text,
        )
        (causal / name).write_text("# mypy: ignore-errors\n" + _with_any(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dst", type=Path, help="scratch directory for the compiled copy")
    args = parser.parse_args(argv)
    prepare(args.dst)
    mypyc = Path(sys.executable).with_name("mypyc")
    modules = [f"ematix_engine/causal/{m}" for m in MODULES]
    # mypy must see the copy only (a PYTHONPATH pointing at a checkout would pull that in)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(mypyc), *modules], cwd=args.dst, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
