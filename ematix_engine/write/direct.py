"""Appends whose Arrow batches already have the target's types: straight in, nothing prepared.

A write prepared in-process (:mod:`ematix_engine.write.in_process`) stages the rows in DuckDB,
checks and casts them there and reads them back out before the target's ``COPY``. For an
append of Arrow batches whose every column already has its target column's exact Arrow type,
that round trip cannot change or refuse a value: the casts are identities and no check of
:mod:`ematix_engine.write.values` applies (no ``String[n]`` bound, no narrowing, no text to
parse, no normalizer, no JSON). Such a batch goes to the target's ``COPY`` as it is, with the
batch's ``_loaded_at`` and ``_batch_id`` added as constant columns. This is the hot path of a
stream appending into PostgreSQL, where the round trip cost more than the ``COPY`` itself.

:func:`direct_append` decides, from the declaration and the batches' schema alone (before any
row is read); anything it does not accept takes the prepared path unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from ematix_engine.schema.ddl import TableColumn
from ematix_engine.specs import LoadMode, TargetSpec
from ematix_engine.write.prepare import managed_columns, resolve_columns
from ematix_engine.write.values import not_null_columns

__all__ = ["DirectAppend", "direct_append"]

_CONSTANTS = ("_loaded_at", "_batch_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DirectAppend:
    """Which source field fills which target column, and the columns the ``COPY`` names.

    Attributes:
        columns: the data columns the write carries (as :func:`resolve_columns` found them).
        sources: for each column the ``COPY`` writes, the source field it comes from, in order.
    """

    columns: tuple[TableColumn, ...]
    sources: tuple[tuple[str, str], ...]
    #: The source fields of the columns a NULL must be refused in: a batch holding one takes
    #: the prepared path, which refuses it naming the row, as it would any other batch.
    not_null: tuple[str, ...] = ()

    def refuses(self, rows: pa.Table) -> bool:
        """Whether ``rows`` hold a NULL where a column must hold a value."""
        return any(rows.column(source).null_count for source in self.not_null)

    def copy_input(
        self,
        reader: pa.RecordBatchReader,
        *,
        loaded_at: datetime,
        batch_id: str,
        constants: bool = True,
    ) -> tuple[list[str], pa.RecordBatchReader]:
        """The target columns the ``COPY`` names, and ``reader``'s batches as it takes them.

        The batches are renamed to their columns, then ``_loaded_at`` and ``_batch_id`` follow
        as constant columns.

        Args:
            reader: the source batches.
            loaded_at: the batch's ``_loaded_at``.
            batch_id: the batch's ``_batch_id``.
            constants: False when the table adds the two columns after the rows (a table
                this write creates keeps their one value in its catalog).
        """
        names = [name for name, _ in self.sources]
        fields = [pa.field(name, reader.schema.field(source).type) for name, source in self.sources]
        if constants:
            names += list(_CONSTANTS)
            fields += [
                pa.field("_loaded_at", pa.timestamp("us", tz="UTC")),
                pa.field("_batch_id", pa.string()),
            ]
        schema = pa.schema(fields)
        micros = (loaded_at - _EPOCH) // timedelta(microseconds=1)

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                n = batch.num_rows
                if n == 0:
                    continue
                arrays = [batch.column(source) for _, source in self.sources]
                if constants:
                    arrays.append(
                        pa.array(np.full(n, micros, dtype=np.int64)).view(
                            pa.timestamp("us", tz="UTC")
                        )
                    )
                    arrays.append(
                        pa.DictionaryArray.from_arrays(
                            np.zeros(n, dtype=np.int32), pa.array([batch_id])
                        ).dictionary_decode()
                    )
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

        return names, pa.RecordBatchReader.from_batches(schema, batches())


def direct_append(writer: str, target: TargetSpec, schema: pa.Schema) -> DirectAppend | None:
    """How to append batches of ``schema`` into ``target`` directly, or ``None`` if not safe.

    Raises:
        SourceError: a NOT NULL declared column is missing (as the prepared path would).
    """
    if target.mode is not LoadMode.APPEND:
        return None
    if [c.name for c in managed_columns(target)] != list(_CONSTANTS):
        return None
    columns, mapping = resolve_columns(writer, target, schema)
    declared = {c.name: c for c in target.table.columns}
    sources: list[tuple[str, str]] = []
    for column in columns:
        source = mapping[column.name]
        if source is None:
            continue  # the column stays NULL, as the prepared path would leave it
        spec = declared.get(column.name)
        if spec is not None and spec.normalizers:
            return None
        if not _unchanged(column, schema.field(source).type):
            return None
        sources.append((column.name, source))
    by_column = dict(sources)
    checked = not_null_columns(target, [c for c in columns if c.name in by_column])
    return DirectAppend(
        columns, tuple(sources), not_null=tuple(by_column[name] for name in checked)
    )


def _unchanged(column: TableColumn, arrow: pa.DataType) -> bool:
    """Whether values of ``arrow`` type go into ``column`` exactly as they are, unchecked."""
    column_type = column.type
    if column_type.hash_family == "json":
        return False  # JSON text is validated by the target, nested values become JSON first
    if column_type.sql_name == "VARCHAR" and column_type.params:
        return False  # String[n]: the length is checked on the prepared path
    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    wanted = column_type.arrow_type()
    if pa.types.is_string(wanted) and (
        pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow)
    ):
        return True
    return arrow == wanted
