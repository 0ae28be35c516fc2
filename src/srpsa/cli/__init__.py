"""The ``srpsa`` command line: one subcommand per job, each a thin call into the library.

Every command module in this package exposes ``command`` (a plain function registered here) or
``app`` (a Typer group, e.g. ``train``). Errors a user can fix (:class:`srpsa.errors.SrpsaError`) are
printed as one line and exit with status 2; nothing prints a traceback unless SRPSA_DEBUG=1.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from srpsa import __version__
from srpsa.errors import SrpsaError

app = typer.Typer(
    name="srpsa",
    help="Particle size analysis of round particles from optical-microscope (and SEM) images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"srpsa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    """srpsa: OM -> SEM-like translation, super-resolution and circle detection for particle sizing."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )


_registered: set[str] = set()


def _register(argv: list[str]) -> None:
    """Register the command named on the command line, or all of them (help, unknown names).

    Imported lazily so that `import srpsa.cli` stays cheap, and only the command that runs: importing
    every command module cost ~1 s of a 12 s `analyze` run (scipy.optimize, the evaluation and training
    stacks). The global options are flags, so the first word that is not an option is the command.
    Registration order is the pipeline order.
    """
    from srpsa.cli import commands

    names = [name for name, _ in commands.COMMANDS]
    first = next((a for a in argv if not a.startswith("-")), None)
    for name in [first] if first in names else names:
        if name not in _registered:
            commands.register(app, only=name)
            _registered.add(name)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    _register(sys.argv[1:] if argv is None else list(argv))
    try:
        app(args=argv, prog_name="srpsa", standalone_mode=True)
    except SystemExit as exc:  # typer/click exit paths
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except SrpsaError as exc:
        typer.echo(f"srpsa: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("srpsa: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if os.environ.get("SRPSA_DEBUG"):
            raise
        typer.echo(f"srpsa: internal error: {type(exc).__name__}: {exc} (set SRPSA_DEBUG=1 for a traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
