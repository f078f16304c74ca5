"""Every docstring example in ``ematix_engine`` and ``ematix_dagster`` runs, and passes.

One test per module that has examples. Each module's examples run in a copy of the module's
namespace without its ``from __future__ import …`` flags, the way they run when pasted into a
Python prompt. Examples need no services: databases are ``:memory:`` or temporary files.
"""

from __future__ import annotations
import __future__

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import ematix_dagster
import ematix_engine

PACKAGES: tuple[ModuleType, ...] = (ematix_engine, ematix_dagster)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if not info.name.endswith("__main__"):  # running it would start the CLI
                names.append(info.name)
    return sorted(names)


def _examples(module: ModuleType) -> list[doctest.DocTest]:
    globs = {
        name: value
        for name, value in vars(module).items()
        if not isinstance(value, __future__._Feature)
    }
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, globs=globs)
    return [test for test in tests if test.examples]


MODULES = _module_names()
WITH_EXAMPLES = [name for name in MODULES if _examples(importlib.import_module(name))]


def test_every_module_imports_and_some_have_examples() -> None:
    # Importing every module is part of the check: an optional dependency is never required.
    assert len(WITH_EXAMPLES) >= 20, WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report: list[str] = []
    for test in _examples(importlib.import_module(name)):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
