"""`qlrf-run notify test CHANNEL`: one test message through a configured channel, and
what the far end answered."""

from __future__ import annotations

import typer

from runner.cli.common import err, examples, exit_with, out
from runner.errors import UsageError

app = typer.Typer(
    help="Notification channels of QLRF_NOTIFY_CONFIG (docs/notifications.md).",
    no_args_is_help=True,
    epilog=examples("qlrf-run notify test ops-slack"),
)


@app.command("test", epilog=examples("qlrf-run notify test ops-slack"))
def test_channel(
    channel: str = typer.Argument(..., help="A channel name under channels:"),
) -> None:
    """Send a test message through CHANNEL and say what the far end answered."""
    import asyncio
    import uuid

    from runner.dsl import secrets_config
    from runner.notify import config as notify_config
    from runner.notify.deliver import send_to
    from runner.notify.failures import Refused, Uncertain, Unreachable
    from runner.notify.messages import Notice
    from runner.steps.secrets import Resolver, unavailable
    from runner.suggest import hint
    from runner.vault import client as vault

    vault.configure(secrets_config.load())
    found = notify_config.load(missing_secret=unavailable)
    if found is None:
        raise UsageError(
            f"{notify_config.VARIABLE} is not set; point it at the channels file the workers read"
        )
    chosen = found.channels.get(channel)
    if chosen is None:
        known = sorted(found.channels)
        raise UsageError(
            f"no channel '{channel}' in {found.path}{hint(channel, known)}; "
            f"channels: {', '.join(known) or 'none'}"
        )
    notice = Notice(
        "notify_test",
        "notify-test",
        {"message": f"A test message from qlrf-run for channel {channel}: it works."},
    )
    secrets = Resolver()
    key = f"notify-test/{uuid.uuid4().hex}"
    try:
        answer, _ = asyncio.run(send_to(chosen, notice, key, secrets))
    except (Refused, Unreachable, Uncertain) as exc:
        err(f"{channel} ({chosen.kind}): not delivered: {secrets.mask(str(exc))}")
        exit_with(1)
    out(f"{channel} ({chosen.kind}): delivered; the far end answered: {secrets.mask(answer)}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="notify")
