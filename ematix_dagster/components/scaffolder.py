"""Scaffold an ``EmatixPipelinesComponent``: a ``defs.yaml`` and maybe a sample module.

Unless a module is named, a sample ``pipelines.py`` (one DuckDB table loaded by one merge
pipeline) is written beside the ``defs.yaml``.

``dg scaffold defs ematix_dagster.EmatixPipelinesComponent my_pipelines`` or, for existing
pipelines, ``... --json-params '{"module": "my_project.pipelines"}'``.
"""

from __future__ import annotations

from dagster.components import Scaffolder, ScaffoldRequest, scaffold_component
from pydantic import BaseModel

__all__ = ["EmatixPipelinesScaffolder", "EmatixScaffoldParams"]

SAMPLE_PIPELINES = '''"""Pipelines of this component (edit freely; see docs/dagster.md)."""

from typing import Annotated

from ematix_engine import ematix, pk
from ematix_engine.connections import DuckDBConnection
from ematix_engine.types import BigInt, Text

warehouse = DuckDBConnection(name="warehouse", path="warehouse.duckdb")


@ematix.table(schema="analytics", connection=warehouse)
class Greetings:
    id: Annotated[BigInt, pk()]
    greeting: Text


@ematix.pipeline(target=Greetings, mode="merge", schedule="0 * * * *")
def greetings(conn):
    """Greetings, one per language."""
    return "SELECT * FROM (VALUES (1, 'hello'), (2, 'bonjour')) AS v(id, greeting)"
'''


class EmatixScaffoldParams(BaseModel):
    """Parameters of the scaffolder.

    Attributes:
        module: An existing module declaring pipelines; when empty, a sample
            ``pipelines.py`` is written and referenced as ``.pipelines``.
    """

    module: str | None = None


class EmatixPipelinesScaffolder(Scaffolder[EmatixScaffoldParams]):
    """Writes ``defs.yaml`` (and a sample ``pipelines.py``) for the component."""

    @classmethod
    def get_scaffold_params(cls) -> type[EmatixScaffoldParams]:
        """The parameter model."""
        return EmatixScaffoldParams

    def scaffold(self, request: ScaffoldRequest[EmatixScaffoldParams]) -> None:
        """Write the files into ``request.target_path``."""
        request.target_path.mkdir(parents=True, exist_ok=True)
        module = request.params.module if request.params else None
        if not module:
            (request.target_path / "pipelines.py").write_text(SAMPLE_PIPELINES)
            module = ".pipelines"
        scaffold_component(request, yaml_attributes={"modules": [module], "schedules": True})
