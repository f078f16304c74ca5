"""How the ``ematix`` command line reports failures: one line, a non-zero exit, no traceback.

Every command runs under :class:`EmatixGroup`: an error that escapes a command (an
:class:`~ematix_engine.errors.EmatixError`, a pipeline module that does not import, a driver
error) is printed as one ``error: …`` line on stderr and the exit code is 1. ``--debug``
(accepted before or after the command name, or ``EMATIX_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from ematix_engine.errors import EmatixError

__all__ = ["EmatixGroup", "debug_option", "debugging", "fail", "import_failure", "one_line"]

_DEBUG = "ematix.debug"


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_DEBUG] = True


def debug_option() -> click.Option:
    """The ``--debug`` flag, added to the group and to every command."""
    return click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show the full traceback of an error.",
    )


def debugging() -> bool:
    """Whether ``--debug`` (or ``EMATIX_DEBUG=1``) asked for tracebacks."""
    ctx = click.get_current_context(silent=True)
    flag = bool(ctx and ctx.meta.get(_DEBUG))
    return flag or os.environ.get("EMATIX_DEBUG", "") not in ("", "0", "false")


def one_line(error: BaseException) -> str:
    """The error's text folded onto one line (drivers print multi-line messages)."""
    text = " ".join(str(error).split())
    if isinstance(error, EmatixError | click.ClickException):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def fail(error: BaseException, prefix: str = "error") -> NoReturn:
    """Print ``prefix: <error>`` as one line and exit 1 (``--debug``: the traceback too)."""
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    click.echo(f"{prefix}: {one_line(error)}", err=True)
    sys.exit(1)


def import_failure(module: str, error: BaseException) -> click.ClickException:
    """The one-line error for a ``--module`` that does not import, with the line to fix."""
    where = ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f" ({Path(error.filename).name}, line {error.lineno})"
        detail = f"SyntaxError: {error.msg}"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        mine = [f for f in frames if "importlib" not in f.filename]
        if mine:
            where = f" ({Path(mine[-1].filename).name}, line {mine[-1].lineno})"
        detail = one_line(error)
    return click.ClickException(
        f"cannot import module {module!r}{where}: {detail}; fix the module "
        f"(--debug shows the traceback)"
    )


class EmatixGroup(click.Group):
    """A click group whose commands report any error as one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn an escaping error into ``error: …`` and exit code 1."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as error:
            if debugging():
                raise
            click.echo(f"error: {one_line(error)} (--debug shows the traceback)", err=True)
            ctx.exit(1)
