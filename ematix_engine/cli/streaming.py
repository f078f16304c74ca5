"""Streaming commands: ``consume`` (a TOML file or a declared pipeline) and ``consume-list``."""

from __future__ import annotations

import click

from ematix_engine.errors import EmatixError

__all__ = ["consume", "consume_list"]


@click.command()
@click.argument("target", metavar="CONFIG_OR_NAME")
@click.option("--module", "-m", "module", help="Module declaring @ematix.streaming_pipeline.")
@click.option("--metrics-port", type=int, help="Serve Prometheus /metrics on this port.")
@click.option("--restart-on-error", is_flag=True, help="Restart after errors, with backoff.")
@click.option(
    "--min-backoff-ms", type=int, default=1000, show_default=True, help="First restart pause."
)
@click.option(
    "--max-backoff-ms", type=int, default=30000, show_default=True, help="Longest restart pause."
)
@click.option("--max-restarts", type=int, help="Failures in a row before giving up.")
@click.option("--exit-when-idle", is_flag=True, help="Stop once every source is drained.")
def consume(
    target: str,
    module: str | None,
    metrics_port: int | None,
    restart_on_error: bool,
    min_backoff_ms: int,
    max_backoff_ms: int,
    max_restarts: int | None,
    exit_when_idle: bool,
) -> None:
    """Run a streaming pipeline: 'consume pipeline.toml' or 'consume --module M NAME'.

    SIGTERM or Ctrl-C finishes the batch in flight, commits and exits 0.
    """
    from ematix_engine.streaming.supervisor import RestartPolicy, run_supervised

    try:
        spec = _spec(target, module)
        restart = (
            RestartPolicy(
                min_backoff_ms=min_backoff_ms,
                max_backoff_ms=max_backoff_ms,
                max_restarts=max_restarts,
            )
            if restart_on_error
            else None
        )
        result = run_supervised(
            spec, restart=restart, metrics_port=metrics_port, exit_when_idle=exit_when_idle
        )
    except EmatixError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{spec.name}: {result.rows_in} rows in, {result.rows_out} written, "
        f"{result.batches} batches, {result.dlq_rows} to the DLQ ({result.stopped})"
    )


def _spec(target: str, module: str | None):
    from ematix_engine import registry
    from ematix_engine.streaming.toml import load_config

    if module is None:
        return load_config(target)
    try:
        registry.load_streaming_module(module)
    except ModuleNotFoundError as error:
        raise click.ClickException(f"cannot import module {module!r}: {error}") from error
    return registry.get_streaming_spec(target)


@click.command(name="consume-list")
@click.option("--module", "-m", "module", required=True, help="Module to import.")
def consume_list(module: str) -> None:
    """List the streaming pipelines a module declares."""
    from ematix_engine import registry

    try:
        specs = registry.load_streaming_module(module)
    except ModuleNotFoundError as error:
        raise click.ClickException(f"cannot import module {module!r}: {error}") from error
    for spec in specs:
        sources = ", ".join(s.label for s in spec.sources)
        targets = ", ".join(t.label for t in spec.targets)
        click.echo(f"{spec.name}\t{sources} -> {targets}\t{spec.delivery}")
