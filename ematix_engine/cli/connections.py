"""``ematix connections``: list the named connections and check one for real."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from ematix_engine.errors import EmatixError

__all__ = ["connections"]


def _import_modules(modules: Sequence[str]) -> None:
    """Import user modules so their ``@ematix.connection`` declarations register."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except EmatixError:
            raise
        except ImportError as exc:
            raise click.ClickException(f"cannot import module {module!r}: {exc}") from None


_module_option = click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first so its @ematix.connection declarations register (repeatable).",
)


@click.group()
def connections() -> None:
    """List named connections and check that they work."""


@connections.command("list")
@_module_option
def list_command(modules: tuple[str, ...]) -> None:
    """Show every named connection: name, kind, where it is defined, and its redacted URL."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ematix_engine.connections import list_connections

    try:
        _import_modules(modules)
        entries = list_connections()
    except EmatixError as exc:
        raise click.ClickException(str(exc)) from None

    if not entries:
        click.echo(
            "No connections defined. Set EMATIX_DSN_<NAME>, add [connections.<name>] to "
            "./.ematix.toml or ~/.ematix/connections.toml, or pass --module."
        )
        return
    rows = [
        (
            entry.name,
            entry.kind,
            entry.source,
            entry.connection.display_url()
            if entry.connection is not None
            else f"invalid: {entry.error}",
        )
        for entry in entries
    ]
    console = Console(highlight=False)
    if not console.is_terminal:  # plain aligned columns for pipes, files and tests
        header = ("NAME", "KIND", "SOURCE", "URL")
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
        for row in (header, *rows):
            click.echo(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                + "  "
                + row[3]
            )
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("url", overflow="fold")
    for (name, kind, source, url), entry in zip(rows, entries, strict=True):
        style = "red" if entry.connection is None else ""
        table.add_row(Text(name), Text(kind), Text(source), Text(url, style=style))
    console.print(table)


@connections.command("check")
@click.argument("name")
@_module_option
def check_command(name: str, modules: tuple[str, ...]) -> None:
    """Open connection NAME for real: prints OK or the (redacted) error and exits 1."""
    from ematix_engine.connections import check_connection, locate_connection

    try:
        _import_modules(modules)
        entry = locate_connection(name)
        assert entry.connection is not None
        check_connection(entry.connection)
    except EmatixError as exc:
        click.echo(f"FAILED {name}: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"OK {name} ({entry.connection.kind})")
