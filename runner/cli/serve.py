"""`qlrf-run worker` and `qlrf-run dev`: long-running processes."""

from __future__ import annotations

import asyncio
import signal

import typer

from runner.cli.common import out


def worker(
    concurrency: int = typer.Option(100, "--concurrency", help="Activities at once"),
    task_queue: str = typer.Option("ql-rf-orchestrator", "--task-queue", help="Task queue"),
) -> None:
    """Run a worker until SIGINT or SIGTERM; start more of them anywhere to scale out."""
    from runner.engine.connect import connect, target
    from runner.engine.worker import build_worker

    async def go() -> None:
        import logging

        from runner.cli import logs

        logs.configure(logging.WARNING)
        where = target()
        client = await connect(where)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = build_worker(client, task_queue=task_queue, max_concurrent_activities=concurrency)
        out(
            f"worker on {where.address} ({where.namespace}), task queue {task_queue}; "
            "Ctrl-C stops it"
        )
        async with worker:
            await stop.wait()
            out("stopping: running activities get a chance to finish or be cancelled")

    asyncio.run(go())


def dev() -> None:
    """Start (or show) the embedded Temporal dev server with its UI; Ctrl-C leaves it running."""
    from runner.local.temporal import EmbeddedServer

    server = EmbeddedServer()
    info = server.ensure(ui=True)
    out(f"Temporal dev server: {info.address}  (state in {server.dir})")
    if info.ui_url:
        out(f"Temporal UI:         {info.ui_url}")
    out("qlrf-run commands use it by default. Stop it with: qlrf-run dev --stop")


def dev_command(
    stop: bool = typer.Option(False, "--stop", help="Stop the embedded server"),
) -> None:
    """Start, show or stop the embedded Temporal dev server (with the UI)."""
    if stop:
        from runner.local.temporal import EmbeddedServer

        out("stopped" if EmbeddedServer().stop() else "not running")
        return
    dev()


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command("dev")(dev_command)
