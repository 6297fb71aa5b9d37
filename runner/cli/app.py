"""The `qlrf-run` command. Each command group lives in its own module and imports lazily,
so that `validate` in a pre-commit hook never pays for Temporal or PostgreSQL clients."""

from __future__ import annotations

import os
import sys

import typer

from runner.cli import apply, control, evidence, gates, init, plan, runs, schema, serve, validate

app = typer.Typer(
    name="qlrf-run",
    help="Validate, plan and run infrastructure runbooks written in YAML.",
    no_args_is_help=True,
    add_completion=False,
    # Locals can hold secrets: never print them, and never print a traceback for a
    # user's mistake (main() below turns errors into one readable line).
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for module in (validate, plan, apply, runs, gates, control, evidence, serve, schema, init):
    module.register(app)


def _exit(code: int) -> None:
    # The Temporal SDK's runtime threads can abort the interpreter at exit
    # (PyGILState_Release, sdk-python#300): once it is loaded, flush and leave at once.
    if "temporalio" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """Console entry point: exit 0 ok, 1 invalid or failed, 2 bad usage.

    Typer runs in standalone mode, so it reports usage errors itself (exit 2) and
    turns typer.Exit into the exit status; what reaches here is ours to word.
    """
    from runner.errors import QlrfError, UsageError

    try:
        app()
    except SystemExit as exc:
        _exit(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except QlrfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("QLRF_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in qlrf-run; set QLRF_DEBUG=1 to see where, and please report it.",
            file=sys.stderr,
        )
        sys.exit(70)
