"""``validate``: ask the source database to EXPLAIN a pipeline's SQL, writing nothing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ematix_engine.backends import open_backend
from ematix_engine.batch.runner import source_connection
from ematix_engine.batch.source import (
    infer_incremental_column,
    substitute_watermark,
    watermark_count,
)
from ematix_engine.batch.watermarks import sentinel_for
from ematix_engine.errors import SourceError
from ematix_engine.write import redact_error

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline

__all__ = ["validate_pipeline"]


def validate_pipeline(pipeline: Pipeline) -> list[str]:
    """EXPLAIN the source SQL of every target on its source connection.

    Returns:
        The plan lines of the first target's source.

    Raises:
        SourceError: the database rejects the SQL (message names the pipeline).
    """
    from ematix_engine.connections import get_connection

    spec = pipeline.spec
    target = spec.targets[0]
    connection = source_connection(spec, target)
    sql = spec.source.render(get_connection(connection))
    backend = open_backend(connection, read_only=True)
    try:
        params = None
        count = watermark_count(sql, backend.dialect)
        if count:
            column = spec.incremental_column or infer_incremental_column(spec.name, target, sql)
            family = target.table.column(column).type.hash_family
            # Render with a unique marker, escape the rendered SQL for the driver, then put
            # the driver's bind marker where ours is (escaping would double a ``%s``).
            marker = f"ematix_watermark_{uuid.uuid4().hex}"
            rendered = substitute_watermark(sql, marker, backend.dialect)
            sql = backend.escape_user_sql(rendered).replace(marker, backend.param_placeholder(0))
            params = [sentinel_for(family)] * count
        with backend.query_session() as session:
            rows = session.query(f"{session.EXPLAIN} {sql}", params)
    except SourceError:
        raise
    except Exception as error:
        raise SourceError(
            spec.name, f"the database rejected the SQL: {redact_error(error, connection)}"
        ) from error
    finally:
        backend.close()
    return [" | ".join(str(v) for v in row) for row in rows]
