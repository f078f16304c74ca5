"""The ``ematix`` command line.

Each command group lives in its own module and is attached to :data:`main` here. Errors are
reported as one line with exit code 1; ``--debug`` shows the traceback
(:mod:`ematix_engine.cli.errors`).
"""

from __future__ import annotations

import click

from ematix_engine import __version__
from ematix_engine.cli.errors import EmatixGroup, debug_option

__all__ = ["main"]


@click.group(cls=EmatixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ematix")
def main() -> None:
    """Ematix: declarative batch and streaming pipelines on Arrow."""


def _attach_commands() -> None:
    from ematix_engine.cli import batch as _batch
    from ematix_engine.cli import connections as _connections
    from ematix_engine.cli import streaming as _streaming

    main.add_command(_connections.connections)
    for command in (
        _batch.run,
        _batch.run_due,
        _batch.status,
        _batch.list_pipelines,
        _batch.preview,
        _batch.validate,
        _batch.runs,
        _streaming.consume,
        _streaming.consume_list,
    ):
        main.add_command(command)
    _add_debug(main)


def _add_debug(command: click.Command) -> None:
    """``--debug`` on the group and on every command, so it may follow the command name."""
    command.params.append(debug_option())
    for sub in getattr(command, "commands", {}).values():
        _add_debug(sub)


_attach_commands()
