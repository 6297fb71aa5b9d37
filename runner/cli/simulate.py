"""`qlrf-run simulate FILE --like RUN`: what the edited FILE would do, given what RUN met."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli.common import PlanFormat, examples, exit_with, out
from runner.errors import QlrfError, UsageError


def simulate(
    file: Path = typer.Argument(..., help="The runbook, as edited", show_default=False),
    like: str = typer.Option(
        ..., "--like", help="The run whose recorded outcomes it meets", show_default=False
    ),
    format: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="text or json"),
) -> None:
    """Run FILE in simulated time with RUN's recorded outputs, failures and decisions,
    and show which steps would now run, skip, fail or give other outputs."""
    import asyncio
    import json

    from runner.cli import sdk_logging
    from runner.cli.test_report import aligned
    from runner.local.postgres import database_url, store_enabled
    from runner.observe.runtime import configure_runtime
    from runner.pipeline import compile_checked, require_file
    from runner.store.queries import recorded
    from runner.testing.model import Suite
    from runner.testing.session import Options, run_cases
    from runner.testing.simulate import Recording, changes, simulation
    from runner.testing.verdict import delivered

    require_file(file)
    if not store_enabled():
        raise UsageError(
            "simulate reads the run's outcomes from the run store, and QLRF_STORE=off "
            "turns the store off"
        )
    found = asyncio.run(recorded(database_url(), like))
    if found is None:
        raise QlrfError(f"no run '{like}' in the run store; `qlrf-run list` shows the runs it has")
    plan, _, source = compile_checked(file)
    suite = Suite(str(file), file, plan, source, None, [])
    sim = simulation(suite, Recording(*found))
    sdk_logging.configure()
    configure_runtime()
    (result,) = asyncio.run(run_cases([(suite, sim.case)], Options(jobs=1, assume=True)))
    if result.actual is None or result.broken:
        raise QlrfError(f"the simulation did not end: {result.broken}")
    rows = changes(sim, result.actual)
    view = result.actual.view
    then = str(sim.recording.run["status"])
    decisions = [
        {"decision": d["shown"], "refused": d.get("refused")} for d in result.actual.deliveries
    ]
    if format == PlanFormat.json:
        out(
            json.dumps(
                {
                    "file": str(file),
                    "like": like,
                    "run": {"then": then, "now": view.status},
                    "steps": [
                        {"step": c.step, "then": c.then or None, "now": c.now, "note": c.note}
                        for c in rows
                    ],
                    "decisions": decisions,
                    "dropped_inputs": sim.dropped_inputs,
                    "outputs": {"then": sim.recording.run.get("outputs"), "now": view.outputs},
                },
                indent=2,
                default=str,
            )
        )
        exit_with(0)
    lines = [f"{file} against the outcomes of run {like} (simulated time)"]
    table = aligned(
        [
            ("step", "then", "now", ""),
            *((c.step, c.then or "-", c.now or "-", c.note) for c in rows),
        ]
    )
    lines += [f"  {line}" for line in table]
    lines.append(f"  the run: {then} then, {view.status} now")
    lines += [f"  {delivered(d)}" for d in result.actual.deliveries]
    if sim.dropped_inputs:
        lines.append(f"  inputs the runbook no longer has: {', '.join(sim.dropped_inputs)}")
    out("\n".join(lines))
    exit_with(0)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run simulate drill.yaml --like postgres-failover-drill-3f2a9c",
            "qlrf-run simulate drill.yaml --like RUN --format json",
        )
    )(simulate)
