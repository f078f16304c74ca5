"""The SQL transform stage: ``transform_sql`` on DataFusion, planned once per input schema.

How a batch runs (:meth:`TransformStage.run`):

1. The batch is registered as the in-memory table ``source`` (zero-copy) on the stage's own
   DataFusion session, next to the lookup tables and UDFs registered at construction.
2. The plan for the batch's schema comes from a small cache. The first batch of a schema plans
   the SQL (parse, resolve, type-check: any failure is a :class:`TransformSqlError`, a
   ``ConfigError`` naming the pipeline) and stores the *unoptimised* logical plan as a Substrait
   plan. Later batches rebind that plan to the new ``source`` table by name (25 to 70 µs) instead of
   parsing and planning the SQL again (~90 µs for a filter-and-project query). The optimiser and
   the physical planner still run per batch, so ``now()`` and volatile functions stay per batch.
   If a query does not survive the Substrait round trip (the rebound plan has another schema, or
   gives another result on the first batch), the stage plans that query from SQL for every
   batch instead: same results, a little slower; the ``plan_mode`` attribute says which.
3. DataFusion executes the plan on one partition (no repartitioning: a batch is small) and the
   result comes back as one ``pyarrow.Table``. An execution failure is a :class:`TransformError`.

Why not keep a DataFrame or logical plan object: DataFusion binds a table *provider* (not a
name) into its plans, so a cached plan keeps reading the batch it was built with; a provider
that can be refilled from Python does not exist in datafusion-python 55 (``DELETE`` + ``INSERT``
into a ``MemTable`` works but costs more than re-planning). Measured figures are in
``docs/benchmarks.md`` (``benchmarks/transform.py``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ematix_engine.errors import ConfigError
from ematix_engine.transform.errors import TransformError, TransformSqlError
from ematix_engine.transform.lookups import Lookup, LookupTable
from ematix_engine.transform.udfs import (
    AggregateUdf,
    ScalarUdf,
    UdfFailures,
    UdfResultError,
    check_unique_names,
)

if TYPE_CHECKING:
    from datafusion import DataFrame, SessionContext

__all__ = ["SOURCE_TABLE", "TransformStage"]

log = logging.getLogger("ematix.transform")

#: The reserved table name of the batch in ``transform_sql``.
SOURCE_TABLE = "source"
#: How many input schemas keep a cached plan (a stream rarely has more than one or two).
PLAN_CACHE_SIZE = 16
_PREFIX = re.compile(r"^(DataFusion error: )+")


@dataclass(frozen=True, slots=True)
class _Plan:
    substrait: Any | None  # a datafusion.substrait.Plan, or None: re-plan the SQL per batch
    output_schema: pa.Schema

    @property
    def mode(self) -> str:
        return "sql" if self.substrait is None else "substrait"


def _message(error: BaseException) -> str:
    return _PREFIX.sub("", str(error).strip()).strip()


def _session() -> SessionContext:
    from datafusion import SessionConfig, SessionContext

    config = (
        SessionConfig()
        .with_target_partitions(1)
        .with_repartition_joins(False)
        .with_repartition_aggregations(False)
        .with_repartition_windows(False)
        .with_repartition_sorts(False)
    )
    return SessionContext(config)


def _key(schema: pa.Schema) -> pa.Schema:
    """The plan cache key: the schema without its metadata (which ``hash`` would count)."""
    return schema.remove_metadata() if schema.metadata else schema


def _batches(data: pa.Table | pa.RecordBatch) -> list[pa.RecordBatch]:
    if isinstance(data, pa.RecordBatch):
        return [data]
    if isinstance(data, pa.Table):
        batches = data.to_batches()
        if batches:
            return batches
        return [pa.RecordBatch.from_pylist([], schema=data.schema)]
    raise TypeError(f"a transform runs on a pyarrow.Table or RecordBatch, not {type(data)!r}")


class TransformStage:
    """Run ``transform_sql`` over each batch of a stream (see the module docstring).

    Args:
        sql: the query; the batch is the table ``source``, each lookup the table of its key.
        lookups: lookup tables by SQL table name.
        udfs: scalar functions made with :func:`~ematix_engine.transform.udf`.
        aggregate_udfs: aggregate functions made with :func:`~ematix_engine.transform.udaf`.
        pipeline: the pipeline name, used in every error and warning.
        schema: the input schema, when known: the SQL is then planned (and checked) at
            construction instead of at the first batch.

    Raises:
        ConfigError: a duplicate function name, a lookup named ``source``, an empty query.
        TransformSqlError: with ``schema=``, the SQL does not plan against it.
        LookupLoadError: a lookup could not be loaded.

    Examples:
        >>> import pyarrow as pa
        >>> stage = TransformStage("SELECT a * 2 AS b FROM source WHERE a > 1", pipeline="demo")
        >>> stage.run(pa.table({"a": [1, 2, 3]})).to_pydict()
        {'b': [4, 6]}
        >>> stage.close()
    """

    def __init__(
        self,
        sql: str,
        lookups: Mapping[str, Lookup] | None = None,
        udfs: Sequence[ScalarUdf] = (),
        aggregate_udfs: Sequence[AggregateUdf] = (),
        pipeline: str = "transform",
        *,
        schema: pa.Schema | None = None,
    ) -> None:
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"pipeline {pipeline!r}: transform_sql is empty")
        lookups = dict(lookups or {})
        udfs, aggregate_udfs = list(udfs), list(aggregate_udfs)
        check_unique_names(pipeline, udfs, aggregate_udfs)
        for name, lookup in lookups.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"pipeline {pipeline!r}: lookup names must be non-empty text")
            if name.lower() == SOURCE_TABLE:
                raise ConfigError(
                    f"pipeline {pipeline!r}: a lookup cannot be named {SOURCE_TABLE!r}: that "
                    f"name is reserved for the batch; rename the lookup"
                )
            if not isinstance(lookup, Lookup):
                raise ConfigError(
                    f"pipeline {pipeline!r}: lookup {name!r} is {lookup!r}, not a Lookup(...)"
                )
        from datafusion import SQLOptions

        self.sql = sql
        self.pipeline = pipeline
        self._options = (
            SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
        )
        self._ctx = _session()
        self._lock = threading.RLock()
        self._plans: OrderedDict[pa.Schema, _Plan] = OrderedDict()
        self._output_schemas: dict[pa.Schema, pa.Schema] = {}  # also for plans never run
        self._closed = False
        #: Batches run, and plans built (one per input schema, again after a lookup changes shape).
        self.batches = 0
        self.plans_compiled = 0
        self._udf_failures = UdfFailures()
        for function in udfs:
            self._ctx.register_udf(function.to_datafusion(self._udf_failures))
        for function in aggregate_udfs:
            self._ctx.register_udaf(function.to_datafusion(self._udf_failures))
        self._lookups: dict[str, LookupTable] = {}
        try:
            for name, lookup in lookups.items():
                self._lookups[name] = LookupTable(pipeline, name, lookup, self._install_lookup)
            if schema is not None:
                with self._lock:
                    self._register_source(_batches(schema.empty_table()))
                    self._plan_for(_key(schema), rows=0)
                    self._ctx.deregister_table(SOURCE_TABLE)
        except BaseException:
            self.close()
            raise
        for table in self._lookups.values():
            table.start()

    # ------------------------------------------------------------------ public
    @property
    def plan_mode(self) -> str | None:
        """How the newest input schema runs: ``"substrait"`` (plan reused) or ``"sql"``."""
        with self._lock:
            return next(reversed(self._plans.values())).mode if self._plans else None

    @property
    def lookup_tables(self) -> Mapping[str, LookupTable]:
        """The loaded lookups by name (their ``table``, refresh counters)."""
        return dict(self._lookups)

    def output_schema(self, schema: pa.Schema) -> pa.Schema | None:
        """The output schema planned for input ``schema``, or None when not planned yet."""
        with self._lock:
            return self._output_schemas.get(_key(schema))

    def run(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        """Run the query over one batch.

        Args:
            batch: the rows, registered as the table ``source``.

        Returns:
            The query's result as one table.

        Raises:
            TransformSqlError: the SQL does not plan against this batch's schema.
            TransformError: the query failed while running on this batch.
        """
        batches = _batches(batch)
        rows = batch.num_rows
        with self._lock:
            if self._closed:
                raise ConfigError(f"pipeline {self.pipeline!r}: the transform stage is closed")
            self._register_source(batches)
            try:
                key = _key(batch.schema)
                plan = self._plans.get(key)
                if plan is None:
                    plan, first = self._plan_for(key, rows)
                    if first is not None:
                        self.batches += 1
                        return first
                else:
                    self._plans.move_to_end(key)
                self._udf_failures.take()
                try:
                    result = self._dataframe(plan).to_arrow_table()
                except Exception as error:
                    failure = self._batch_error(error, rows)
                    raise failure from failure.__cause__
                self.batches += 1
                return result
            finally:
                self._ctx.deregister_table(SOURCE_TABLE)

    def close(self) -> None:
        """Stop the lookup refresh threads and release the session (idempotent)."""
        for table in self._lookups.values():
            table.stop()
        with self._lock:
            self._closed = True
            self._plans.clear()
            self._output_schemas.clear()

    def __enter__(self) -> TransformStage:
        """Use the stage in a ``with`` block; it closes at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the stage."""
        self.close()

    # ------------------------------------------------------------------ internals
    def _register_source(self, batches: list[pa.RecordBatch]) -> None:
        if self._ctx.table_exist(SOURCE_TABLE):
            self._ctx.deregister_table(SOURCE_TABLE)
        self._ctx.register_record_batches(SOURCE_TABLE, [batches])

    def _install_lookup(self, name: str, table: pa.Table) -> None:
        batches = _batches(table.combine_chunks())
        with self._lock:
            previous = self._lookups.get(name)
            if self._ctx.table_exist(name):
                self._ctx.deregister_table(name)
            self._ctx.register_record_batches(name, [batches])
            if previous is not None and not previous.table.schema.equals(table.schema):
                log.info(
                    "pipeline %r: lookup %r changed shape; the transform is planned again",
                    self.pipeline,
                    name,
                )
                self._plans.clear()
                self._output_schemas.clear()

    def _batch_error(self, error: Exception, rows: int) -> TransformError:
        """The :class:`TransformError` for a failed batch; a UDF's own exception is its cause."""
        failure = self._udf_failures.take()
        if failure is None:
            return TransformError(self.pipeline, _message(error), rows)
        where, original = failure
        if isinstance(original, UdfResultError):
            detail = str(original)
        else:
            detail = f"{where} raised {type(original).__name__}: {original}"
        result = TransformError(self.pipeline, detail, rows)
        result.__cause__ = original
        return result

    def _dataframe(self, plan: _Plan) -> DataFrame:
        if plan.substrait is None:
            return self._ctx.sql_with_options(self.sql, self._options)
        from datafusion.substrait import Consumer

        return self._ctx.create_dataframe_from_logical_plan(
            Consumer.from_substrait_plan(self._ctx, plan.substrait)
        )

    def _plan_for(self, schema: pa.Schema, rows: int) -> tuple[_Plan, pa.Table | None]:
        """Plan the SQL for a new input schema; run it on the registered batch.

        Returns:
            The plan, and the first batch's result when it was computed while choosing how to
            run the plan (None with ``rows == 0`` at construction).
        """
        try:
            df = self._ctx.sql_with_options(self.sql, self._options)
            df.optimized_logical_plan()  # type-checks calls, casts, UDF signatures
        except Exception as error:
            raise TransformSqlError(self.pipeline, _message(error), schema.names) from None
        output_schema = df.schema()
        if len(self._output_schemas) >= PLAN_CACHE_SIZE:
            self._output_schemas.clear()
        self._output_schemas[schema] = output_schema
        self._udf_failures.take()
        try:
            expected = df.to_arrow_table()
        except Exception as error:
            failure = self._batch_error(error, rows)
            raise failure from failure.__cause__
        substrait = self._substrait(df, output_schema, expected)
        plan = _Plan(substrait, output_schema)
        self._plans[schema] = plan
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        self.plans_compiled += 1
        log.debug("pipeline %r: transform planned (%s) for %s", self.pipeline, plan.mode, schema)
        return plan, expected

    def _substrait(self, df: DataFrame, output_schema: pa.Schema, expected: pa.Table) -> Any:
        from datafusion.substrait import Consumer, Producer

        try:
            plan = Producer.to_substrait_plan(df.logical_plan(), self._ctx)
            rebound = self._ctx.create_dataframe_from_logical_plan(
                Consumer.from_substrait_plan(self._ctx, plan)
            )
            if rebound.schema() == output_schema and rebound.to_arrow_table().equals(expected):
                return plan
            reason = "the rebound plan differs"
        except Exception as error:
            reason = _message(error)
            self._udf_failures.take()
        log.debug(
            "pipeline %r: transform_sql is re-planned per batch (no Substrait round trip: %s)",
            self.pipeline,
            reason,
        )
        return None
