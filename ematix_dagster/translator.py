"""Map one ematix pipeline target to a Dagster ``AssetSpec``.

:class:`EmatixTranslator` has a single customisation point, :meth:`~EmatixTranslator.get_asset_spec`.
Subclass it, call ``super()``, then ``replace_attributes`` / ``merge_attributes``::

    class MyTranslator(EmatixTranslator):
        def get_asset_spec(self, data: EmatixTranslatorData) -> dg.AssetSpec:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(key=spec.key.with_prefix("warehouse"))

The spec builder calls it twice per target: once with no deps to learn every asset's key, then
with ``data.deps`` resolved against those keys. Keep it a pure function of ``data``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dagster as dg

from ematix_dagster.constants import DAGSTER_KEY_CODE_REFERENCES, KIND_EMATIX
from ematix_dagster.lineage import SourceAnalysis
from ematix_dagster.metadata import EmatixMetadata, TableMetadata, declared_table_schema
from ematix_dagster.partitions import partitions_def_for
from ematix_engine import PipelineSpec, TargetSpec

__all__ = ["EmatixTranslator", "EmatixTranslatorData"]

_DIALECTS = {"delta": "duckdb", "duckdb": "duckdb", "postgres": "postgres", "sqlite": "sqlite"}


@dataclass(frozen=True, slots=True, kw_only=True)
class EmatixTranslatorData:
    """Everything known about one pipeline target when its asset spec is built.

    Attributes:
        pipeline: The pipeline's frozen spec.
        target: The target (one per asset; a fan-out pipeline has several).
        backend: The target system: ``duckdb``, ``postgres``, ``sqlite`` or ``delta``.
        connection: The target connection's name.
        source: What the source SQL reads (tables, column lineage), as sqlglot saw it.
        deps: Upstream asset keys: the ``depends_on`` pipelines' assets plus the tables the
            source SQL reads (ematix assets where known, else ``[schema, table]`` with the
            source connection's name as schema when the SQL gives none). Empty on the first,
            key-only pass.
    """

    pipeline: PipelineSpec
    target: TargetSpec
    backend: str
    connection: str
    source: SourceAnalysis
    deps: tuple[dg.AssetKey, ...] = ()

    @property
    def default_key(self) -> dg.AssetKey:
        """``target.asset_key`` when declared, else ``[schema, table]``."""
        if self.target.asset_key:
            return dg.AssetKey(list(self.target.asset_key))
        return dg.AssetKey([self.target.table.schema, self.target.table.name])

    @property
    def dialect(self) -> str:
        """The sqlglot dialect of the target system."""
        return _DIALECTS.get(self.backend, "duckdb")


class EmatixTranslator:
    """Turns :class:`EmatixTranslatorData` into an ``AssetSpec``; subclass to customise."""

    def get_asset_spec(self, data: EmatixTranslatorData) -> dg.AssetSpec:
        """Build the asset spec of one pipeline target.

        Args:
            data: The pipeline, the target and what its SQL reads.

        Returns:
            Key ``[schema, table]`` (or the declared ``asset_key``), the pipeline's group,
            kinds ``{backend, "ematix"}``, its docstring as description, owners and tags
            passed through, ``data.deps``, a code reference to the pipeline function, and the
            table name, declared column schema and load settings as metadata. A partitioned
            pipeline's spec carries its Dagster partitions (:func:`~ematix_dagster.partitions.
            partitions_def_for`).

        Examples:
            Subclass, call ``super()``, then change what you need:

            >>> from typing import Annotated
            >>> from ematix_engine import ematix, pk
            >>> from ematix_engine.connections import DuckDBConnection
            >>> from ematix_engine.types import BigInt, Text
            >>> @ematix.table(schema="analytics", connection=DuckDBConnection(name="shop", path=":memory:"))
            ... class CustomerDim:
            ...     customer_id: Annotated[BigInt, pk()]
            ...     name: Text | None
            >>> @ematix.pipeline(target=CustomerDim, mode="merge")
            ... def customer_dim(conn):
            ...     return "SELECT 1 AS customer_id, 'Ada' AS name"
            >>> from ematix_dagster.asset_decorator import build_ematix_asset_specs
            >>> class Prefixed(EmatixTranslator):
            ...     def get_asset_spec(self, data):
            ...         spec = super().get_asset_spec(data)
            ...         return spec.replace_attributes(key=spec.key.with_prefix("shop"))
            >>> [s.key.path for s in build_ematix_asset_specs([customer_dim], translator=Prefixed())]
            [['shop', 'analytics', 'customer_dim']]
        """
        spec, target = data.pipeline, data.target
        description = spec.description or (
            f"ematix {target.mode.value} load of {target.label} by pipeline {spec.name!r}."
        )
        metadata: dict[str, object] = {
            **TableMetadata(
                table_name=target.label,
                column_schema=declared_table_schema(target, data.dialect),
                storage_kind=data.backend,
            ),
            **EmatixMetadata(
                pipeline=spec.name,
                target=target.label,
                mode=target.mode.value,
                backend=data.backend,
                key_columns=", ".join(target.keys) or None,
                connection=data.connection,
                schedule=spec.schedule,
            ),
        }
        if spec.source_file:
            with warnings.catch_warnings():  # code references are "beta" in Dagster 1.13
                warnings.simplefilter("ignore", dg.BetaWarning)
                metadata[DAGSTER_KEY_CODE_REFERENCES] = dg.CodeReferencesMetadataValue(
                    code_references=[
                        dg.LocalFileCodeReference(
                            file_path=spec.source_file,
                            line_number=spec.source_line or None,
                            label=f"ematix pipeline {spec.name}",
                        )
                    ]
                )
        return dg.AssetSpec(
            key=data.default_key,
            deps=list(data.deps),
            description=description,
            group_name=spec.group,
            owners=list(spec.owners),
            tags=dict(spec.tags),
            kinds={data.backend, KIND_EMATIX},
            metadata=metadata,
            partitions_def=partitions_def_for(spec),
        )
