"""The iterator ``EmatixResource.run`` returns, with opt-in extras that chain.

Like dagster-dlt's ``DltEventIterator``: iterate it (``yield from ematix.run(context=context)``)
to get a ``MaterializeResult`` per loaded target followed by its ``AssetCheckResult`` s; call
an extra first to enrich each materialization, e.g.
``yield from ematix.run(context=context).fetch_preview(limit=5)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

import dagster as dg

from ematix_dagster.constants import META_KEY_PREVIEW
from ematix_dagster.refs import lookup_ref
from ematix_engine.checks import check_session

__all__ = ["EmatixEvent", "EmatixEventIterator"]

EmatixEvent = dg.MaterializeResult | dg.AssetCheckResult
"""What the iterator yields."""


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_no rows_"
    names = list(rows[0])
    lines = [
        "| " + " | ".join(names) + " |",
        "| " + " | ".join("---" for _ in names) + " |",
    ]
    for row in rows:
        cells = [str(row.get(n, "")).replace("|", "\\|") for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class EmatixEventIterator(Iterator[EmatixEvent]):
    """Events of one ``EmatixResource.run`` call.

    Args:
        events: The underlying events.
        context: The asset execution context, for logging.
    """

    def __init__(self, events: Iterator[EmatixEvent], context: dg.AssetExecutionContext) -> None:
        self._inner = events
        self._context = context

    def __next__(self) -> EmatixEvent:
        """Return the next event."""
        return next(self._inner)

    def __iter__(self) -> Self:
        """Return the iterator itself."""
        return self

    def fetch_preview(self, limit: int = 5) -> EmatixEventIterator:
        """Add ``ematix/preview``, the first ``limit`` rows as a Markdown table, to each load.

        Costs one query per materialized asset, so it is off unless asked for.

        Args:
            limit: Rows to show.

        Returns:
            A new iterator over the enriched events.
        """

        def enriched() -> Iterator[EmatixEvent]:
            for event in self:
                if isinstance(event, dg.MaterializeResult) and event.asset_key is not None:
                    ref = lookup_ref(event.asset_key)
                    if ref is not None:
                        target = ref.target
                        try:
                            with check_session(target) as session:
                                table = session.table_sql(target.table.schema, target.table.name)
                                rows = (
                                    session.read_arrow(f"SELECT * FROM {table} LIMIT {int(limit)}")
                                    .read_all()
                                    .to_pylist()
                                )
                        except Exception as error:
                            self._context.log.warning(
                                f"ematix: no preview of {target.label}: {error}"
                            )
                        else:
                            event = dg.MaterializeResult(
                                asset_key=event.asset_key,
                                metadata={
                                    **(event.metadata or {}),
                                    META_KEY_PREVIEW: dg.MetadataValue.md(_markdown_table(rows)),
                                },
                                check_results=event.check_results,
                                data_version=event.data_version,
                                tags=event.tags,
                            )
                yield event

        return EmatixEventIterator(enriched(), self._context)
