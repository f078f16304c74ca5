"""``run_streaming_pipeline`` and ``@ematix.streaming_pipeline``: keywords into one spec.

Both take the same keywords (the reference guide's) and build a
:class:`~ematix_engine.streaming.config.StreamingPipelineSpec` with :func:`streaming_spec`:

* one source (``source=`` + ``source_query=``) or several (``sources=[Source(...)]``);
* one target (``target=`` a connection, a connection name or an ``@ematix.table`` class, with
  ``target_table=`` and ``target_primary_key=``) or several (``targets=[Target(...)]``);
* the transform (``transform_sql``, ``lookups``, ``udfs``, ``aggregate_udfs``,
  ``transform_on_error``), the DLQ, batching and ``delivery``;
* causal constraints on the written rows (``causal=CausalSpec(...)``,
  ``constraints=[must_match(...), never(...)]``) and the ``alerters`` their violations go to.

``run_streaming_pipeline`` runs it now, in this thread, until SIGTERM/SIGINT (the batch in
flight is finished and committed) or, with ``exit_when_idle=True``, until every source is
drained. The decorator registers it for ``ematix consume --module M NAME``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.streaming.config import Source, StreamingPipelineSpec, Target
from ematix_engine.streaming.result import StreamProgress, StreamResult

__all__ = [
    "StreamingPipeline",
    "run_pipeline",
    "run_spec",
    "run_streaming_pipeline",
    "streaming_pipeline",
    "streaming_spec",
]


def _is_table_class(value: Any) -> bool:
    return isinstance(value, type) and hasattr(value, "__ematix_table__")


def streaming_spec(
    *,
    name: str,
    source: Any = None,
    source_query: str | None = None,
    sources: Sequence[Source] | None = None,
    target: Any = None,
    target_table: Any = None,
    target_primary_key: Sequence[str] | str | None = None,
    target_mode: str | None = None,
    targets: Sequence[Target | Any] | None = None,
    transform_sql: str | None = None,
    lookups: Mapping[str, Any] | None = None,
    udfs: Sequence[Any] = (),
    aggregate_udfs: Sequence[Any] = (),
    transform_on_error: str = "fail",
    dead_letter_topic: str | None = None,
    batch_size: int = 10_000,
    max_batch_ms: int = 1_000,
    idle_pause_ms: int = 500,
    delivery: str = "at_least_once",
    event_time_column: str | None = None,
    metadata_columns: Sequence[str] = (),
    causal: Any = None,
    constraints: Sequence[Any] = (),
    alerters: Sequence[Any] = (),
    description: str = "",
    module: str = "",
) -> StreamingPipelineSpec:
    """Build the spec of a streaming pipeline from the guide's keywords.

    Raises:
        ConfigError: naming the pipeline and the keyword at fault.
    """
    where = f"streaming pipeline {name!r}"
    if (source is None) == (sources is None):
        raise ConfigError(f"{where}: give exactly one of source= and sources=")
    if sources is None:
        if isinstance(source, Source):
            if source_query is not None:
                raise ConfigError(f"{where}: source_query= goes into Source(query=...) here")
            sources = [source]
        else:
            sources = [
                Source(
                    connection=source,
                    query=source_query or "",
                    event_time_column=event_time_column,
                    metadata_columns=tuple(metadata_columns),
                )
            ]
    elif source_query is not None:
        raise ConfigError(f"{where}: source_query= applies to source=, not sources=")
    if (target is None) == (targets is None):
        raise ConfigError(f"{where}: give exactly one of target= and targets=")
    if targets is None:
        targets = [_single_target(where, target, target_table, target_primary_key, target_mode)]
    else:
        if target_table is not None or target_primary_key is not None:
            raise ConfigError(
                f"{where}: target_table= and target_primary_key= apply to target=; with "
                f"targets= put them into each Target(table=..., primary_key=...)"
            )
        targets = [_as_target(where, t) for t in targets]
    return StreamingPipelineSpec(
        name=name,
        sources=tuple(sources),
        targets=tuple(targets),
        transform_sql=transform_sql,
        lookups=dict(lookups or {}),
        udfs=tuple(udfs),
        aggregate_udfs=tuple(aggregate_udfs),
        transform_on_error=transform_on_error,
        dead_letter_topic=dead_letter_topic,
        batch_size=batch_size,
        max_batch_ms=max_batch_ms,
        idle_pause_ms=idle_pause_ms,
        delivery=delivery,
        causal=causal,
        constraints=constraints,
        alerters=alerters,
        description=description,
        module=module,
    )


def _single_target(
    where: str, target: Any, table: Any, primary_key: Any, mode: str | None
) -> Target:
    if isinstance(target, Target):
        if table is not None or primary_key is not None:
            raise ConfigError(f"{where}: target_table= goes into Target(table=...) here")
        return target
    if _is_table_class(target):
        if table is not None:
            raise ConfigError(
                f"{where}: target= is the table class {target.__name__}; drop target_table="
            )
        connection = target.__ematix_table__.connection
        if connection is None:
            raise ConfigError(
                f"{where}: table {target.__ematix_table__.qualified_name} has no connection; "
                f"declare it with @ematix.table(connection=...) or pass "
                f"targets=[Target(connection=..., table={target.__name__})]"
            )
        return Target(
            connection=connection, table=target, primary_key=tuple(primary_key or ()), mode=mode
        )
    return Target(
        connection=target,
        table=table,
        primary_key=(primary_key,) if isinstance(primary_key, str) else tuple(primary_key or ()),
        mode=mode,
    )


def _as_target(where: str, value: Any) -> Target:
    if isinstance(value, Target):
        return value
    if _is_table_class(value):
        return _single_target(where, value, None, None, None)
    raise ConfigError(
        f"{where}: targets= takes Target(...) records or @ematix.table classes, got {value!r}"
    )


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """SIGTERM/SIGINT ask the loop to stop (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handle(signum: int, _frame: Any) -> None:
        stop("signal")

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_spec(
    spec: StreamingPipelineSpec,
    *,
    exit_when_idle: bool = False,
    on_progress: Callable[[StreamProgress], None] | None = None,
    metrics_port: int | None = None,
    handle_signals: bool = True,
) -> StreamResult:
    """Run a spec until it is stopped or (``exit_when_idle``) drained.

    Args:
        spec: the pipeline.
        exit_when_idle: return once every source is drained.
        on_progress: called after every committed batch.
        metrics_port: serve Prometheus ``/metrics`` on this port.
        handle_signals: SIGTERM/SIGINT finish the batch in flight, commit and return.

    Returns:
        The run's totals.
    """
    from ematix_engine.streaming.metrics import StreamingMetrics
    from ematix_engine.streaming.runner import StreamRunner

    metrics = StreamingMetrics(spec.name, port=metrics_port)
    runner = StreamRunner(spec, metrics=metrics, on_progress=on_progress)
    try:
        signals = _stop_on_signals(runner.stop) if handle_signals else contextlib.nullcontext()
        with signals:
            return runner.run(exit_when_idle=exit_when_idle)
    finally:
        metrics.close()


def run_streaming_pipeline(
    *,
    exit_when_idle: bool = False,
    on_progress: Callable[[StreamProgress], None] | None = None,
    metrics_port: int | None = None,
    **keywords: Any,
) -> StreamResult:
    """Run a streaming pipeline now, in this thread.

    Args:
        exit_when_idle: return once every source is drained (tests, backfills, demos);
            otherwise run until SIGTERM/SIGINT, which finish the batch in flight first.
        on_progress: called with a :class:`StreamProgress` after every committed batch.
        metrics_port: serve Prometheus ``/metrics`` on this port.
        **keywords: the pipeline, as :func:`streaming_spec` takes it (``name``, ``source``,
            ``source_query``, ``target``, ``target_table``, ``transform_sql``, ``delivery``,
            ``causal``, ``constraints``, ``alerters``, …).

    Returns:
        The run's totals: rows in and out, batches, DLQ rows, committed offsets, duration,
        causal violations.

    Raises:
        ConfigError: a keyword is missing, unknown or invalid (before anything is opened).
        EmatixError: a source, the transform, a target or the DLQ failed; no offset moved
            past the last batch every target wrote.

    Example:
        >>> import tempfile, os
        >>> from ematix_engine import DuckDBConnection, MemorySource, run_streaming_pipeline
        >>> folder = tempfile.mkdtemp()
        >>> result = run_streaming_pipeline(
        ...     name="orders-to-duck",
        ...     source=MemorySource("orders", [{"id": 1, "total": 9.5}, {"id": 2, "total": 3.0}]),
        ...     target=DuckDBConnection(name="wh", path=os.path.join(folder, "wh.duckdb")),
        ...     target_table=("main", "orders"),
        ...     exit_when_idle=True,
        ... )
        >>> result.rows_in, result.rows_out, result.offsets
        (2, 2, {'orders': {'0': 2}})
    """
    _check_keywords(keywords)
    spec = streaming_spec(**keywords)
    return run_spec(
        spec, exit_when_idle=exit_when_idle, on_progress=on_progress, metrics_port=metrics_port
    )


_KEYWORDS = tuple(
    p for p in inspect.signature(streaming_spec).parameters if p not in ("module", "description")
)


def _check_keywords(keywords: Mapping[str, Any]) -> None:
    name = keywords.get("name", "?")
    if "name" not in keywords:
        raise ConfigError("streaming pipeline: name= is required")
    for key in keywords:
        if key not in _KEYWORDS:
            hint = closest_match(key, _KEYWORDS)
            raise ConfigError(
                f"streaming pipeline {name!r}: unknown keyword {key!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )


class StreamingPipeline:
    """What ``@ematix.streaming_pipeline`` returns: the spec, and a way to run it.

    Attributes:
        spec: the frozen spec (also in the registry: ``registry.streaming_specs()``).
    """

    def __init__(self, spec: StreamingPipelineSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<streaming pipeline {self.spec.name!r}>"

    def run(
        self,
        *,
        exit_when_idle: bool = False,
        on_progress: Callable[[StreamProgress], None] | None = None,
        metrics_port: int | None = None,
    ) -> StreamResult:
        """Run it now (see :func:`run_streaming_pipeline`)."""
        return run_spec(
            self.spec,
            exit_when_idle=exit_when_idle,
            on_progress=on_progress,
            metrics_port=metrics_port,
        )


def streaming_pipeline(
    function: Callable[..., Any] | None = None, **keywords: Any
) -> Callable[[Callable[..., Any]], StreamingPipeline] | StreamingPipeline:
    """Declare a streaming pipeline; ``ematix consume --module M NAME`` runs it.

    Takes the keywords of :func:`run_streaming_pipeline` (``name`` defaults to the function's
    name). The spec is built and validated at import time and registered.

    Example:
        >>> from ematix_engine import DuckDBConnection, MemorySource, ematix
        >>> @ematix.streaming_pipeline(
        ...     source=MemorySource("clicks", [{"id": 1}]),
        ...     target=DuckDBConnection(name="wh", path=":memory:"),
        ...     target_table=("main", "clicks"),
        ... )
        ... def clicks_to_duck():
        ...     '''Clicks into the warehouse.'''
        >>> clicks_to_duck.spec.name, clicks_to_duck.spec.description
        ('clicks_to_duck', 'Clicks into the warehouse.')
    """

    def decorate(fn: Callable[..., Any]) -> StreamingPipeline:
        from ematix_engine import registry

        options = dict(keywords)
        options.setdefault("name", fn.__name__)
        _check_keywords(options)
        spec = streaming_spec(
            **options,
            description=inspect.getdoc(fn) or "",
            module=getattr(fn, "__module__", "") or "",
        )
        registry.register_streaming(spec)
        return StreamingPipeline(spec)

    return decorate(function) if function is not None else decorate


def run_pipeline(
    config: str | os.PathLike[str] | Mapping[str, Any] | StreamingPipelineSpec,
    *,
    metrics_port: int | None = None,
    exit_when_idle: bool = False,
    on_progress: Callable[[StreamProgress], None] | None = None,
    restart_on_error: bool = False,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 30_000,
    max_restarts: int | None = None,
) -> StreamResult:
    """Run a streaming pipeline from its TOML config (what ``ematix consume FILE`` does).

    Args:
        config: a ``pipeline.toml`` path, its parsed mapping, or a spec.
        metrics_port: serve Prometheus ``/metrics`` on this port.
        exit_when_idle: return once every source is drained.
        on_progress: called after every committed batch.
        restart_on_error: restart after errors with exponential backoff and jitter.
        min_backoff_ms: the first pause.
        max_backoff_ms: the longest pause.
        max_restarts: failures in a row before giving up (None: never).

    Returns:
        The totals of the run (of every attempt, with restarts).

    Raises:
        ConfigError: the config is invalid (the message names the key).
    """
    from ematix_engine.streaming.supervisor import RestartPolicy, run_supervised
    from ematix_engine.streaming.toml import load_config, spec_from_mapping

    if isinstance(config, StreamingPipelineSpec):
        spec = config
    elif isinstance(config, Mapping):
        spec = spec_from_mapping(config)
    else:
        spec = load_config(config)
    restart = (
        RestartPolicy(
            min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms, max_restarts=max_restarts
        )
        if restart_on_error
        else None
    )
    return run_supervised(
        spec,
        restart=restart,
        metrics_port=metrics_port,
        exit_when_idle=exit_when_idle,
        on_progress=on_progress,
    )
