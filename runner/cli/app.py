"""The `qlrf-run` command. Each command group lives in its own module and imports lazily,
so that `validate` in a pre-commit hook never pays for Temporal or PostgreSQL clients."""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from runner.cli import (
    apply,
    control,
    evidence,
    gates,
    init,
    locks,
    logs,
    notify,
    plan,
    redrive,
    runs,
    schedule,
    schema,
    serve,
    simulate,
    testing,
    validate,
    web,
)
from runner.cli.common import examples

app = typer.Typer(
    name="qlrf-run",
    help="Validate, plan and run infrastructure runbooks written in YAML.",
    epilog=examples(
        "qlrf-run validate runbooks/*.yaml",
        "qlrf-run test runbooks/",
        "qlrf-run apply drill.yaml",
        "qlrf-run pending",
        "qlrf-run approve RUN GATE",
        "qlrf-run evidence RUN --out evidence.json",
    ),
    no_args_is_help=True,
    add_completion=True,
    # Locals can hold secrets: never print them, and never print a traceback for a
    # user's mistake (main() below turns errors into one readable line).
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for module in (
    validate,
    testing,
    simulate,
    plan,
    apply,
    redrive,
    runs,
    logs,
    gates,
    locks,
    control,
    evidence,
    schedule,
    serve,
    web,
    notify,
    schema,
    init,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("qlrf-run")
        except PackageNotFoundError:
            shown = "unknown (not installed)"
        typer.echo(f"qlrf-run {shown}")
        raise typer.Exit(0)


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit"
    ),
    no_color: bool = typer.Option(
        False, "--no-color", help="No colour, also in a terminal (so does NO_COLOR=1)"
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="Show the Temporal SDK's log: -v warnings, -vv all"
    ),
) -> None:
    from runner.cli import sdk_logging
    from runner.cli.console import set_no_color

    set_no_color(no_color)
    sdk_logging.set_verbosity(verbose)


def _exit(code: int) -> None:
    # The Temporal SDK's runtime threads can abort the interpreter at exit
    # (PyGILState_Release, sdk-python#300), on error paths as much as on success:
    # once it is loaded, flush and leave at once, whatever the path.
    for stream in (sys.stdout, sys.stderr):
        # The reader may have gone away (`| head`): nothing more to say then.
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    if "runner.observe.tracing" in sys.modules:
        # os._exit skips atexit: send the run's buffered spans first
        with contextlib.suppress(Exception):
            sys.modules["runner.observe.tracing"].flush()
    if "temporalio" in sys.modules:
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """Console entry point: exit 0 ok, 1 invalid, failed or refused, 2 bad usage, 130 Ctrl-C.

    Typer runs in standalone mode, so it reports usage errors itself (exit 2) and
    turns typer.Exit into the exit status; what reaches here is ours to word.
    """
    from runner.errors import QlrfError, UsageError

    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        code = code if code in (0, 1, 2, 130) else 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except QlrfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except BrokenPipeError:
        code = 0  # `qlrf-run list | head`: the reader had enough
    except Exception as exc:
        if os.environ.get("QLRF_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        print(
            f"error: {type(exc).__name__}: {first}\n"
            "This is a bug in qlrf-run; set QLRF_DEBUG=1 to see where, and please report it.",
            file=sys.stderr,
        )
        code = 1
    _exit(code)
