"""A small Language Server Protocol client that asks yaml-language-server (the engine of
the VS Code YAML extension) what an editor would show for a runbook: completions at
a position, and diagnostics.

The server is pinned in tests/editor/package.json and installed by scripts/dev-setup
(`npm ci` into tests/editor/node_modules). One server process is started per call:
slower than keeping one, but each question then stands alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EDITOR = Path(__file__).resolve().parent.parent / "editor"
SERVER = EDITOR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
ANSWER_SECONDS = 30.0
# The server validates a short while after a change, and may publish more than once
# (before and after the schema loads): the last publication after this much quiet wins.
QUIET_SECONDS = 0.6


def missing() -> str | None:
    """Why the editor tests cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/dev-setup needs node and npm for the editor tests)"
    if not SERVER.is_file():
        return f"yaml-language-server is not installed at {SERVER}; run scripts/dev-setup"
    return None


@dataclass
class Diagnostic:
    line: int  # 0-based, as LSP counts
    column: int
    message: str
    severity: str


class _Connection:
    """JSON-RPC over the server's stdin and stdout, with LSP's Content-Length framing."""

    def __init__(self, process: asyncio.subprocess.Process, settings: dict[str, Any]) -> None:
        self.process = process
        self.settings = settings
        self.ids = itertools.count(1)
        self.answers: dict[int, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        stream = self.process.stdout
        while True:
            length = 0
            while True:
                line = await stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(await stream.readexactly(length))
            if "id" in message and "method" in message:
                await self._answer(message)
            elif "id" in message:
                future = self.answers.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(RuntimeError(str(message["error"])))
                    else:
                        future.set_result(message.get("result"))
            else:
                await self.notifications.put((message["method"], message.get("params")))

    async def _answer(self, message: dict[str, Any]) -> None:
        """The server asks for settings (and registers capabilities, which need no answer)."""
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [
                self.settings.get(item.get("section") or "", None)
                for item in message["params"]["items"]
            ]
        self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def request(self, method: str, params: Any) -> Any:
        number = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answers[number] = future
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        return await asyncio.wait_for(future, ANSWER_SECONDS)

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def next_notification(self, method: str, timeout: float) -> Any:
        while True:
            name, params = await asyncio.wait_for(self.notifications.get(), timeout)
            if name == method:
                return params


async def _session(schema: Path, document: Path, text: str, ask: Any) -> Any:
    uri = document.resolve().as_uri()
    settings = {
        "yaml": {
            "validate": True,
            "completion": True,
            "hover": True,
            "schemas": {str(schema.resolve()): [str(document.resolve())]},
            "schemaStore": {"enable": False},  # no network, no other schemas
            "kubernetesCRDStore": {"enable": False},
            "format": {"enable": False},
        },
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SERVER),
        "--stdio",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    connection = _Connection(process, settings)
    try:
        folder = document.resolve().parent.as_uri()
        await connection.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": folder,
                "workspaceFolders": [{"uri": folder, "name": "runbooks"}],
                "capabilities": {
                    "workspace": {"configuration": True},
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": True}},
                        "publishDiagnostics": {"versionSupport": True},
                    },
                },
            },
        )
        # The server says when it has applied the settings (and so knows the schema).
        connection.notify("yaml/supportSchemaSelection", {})
        connection.notify("initialized", {})
        connection.notify("workspace/didChangeConfiguration", {"settings": settings})
        await connection.next_notification("yaml/schema/store/initialized", ANSWER_SECONDS)
        connection.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        )
        return await ask(connection, uri)
    finally:
        connection.reader.cancel()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def completions(schema: Path, document: Path, text: str, marker: str = "<|>") -> list[str]:
    """The labels an editor offers where `marker` stands in `text`."""
    at = text.index(marker)
    text = text[:at] + text[at + len(marker) :]
    before = text[:at].split("\n")
    position = {"line": len(before) - 1, "character": len(before[-1])}

    async def ask(connection: _Connection, uri: str) -> list[str]:
        found = await connection.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}},
        )
        items = found.get("items", []) if isinstance(found, dict) else found or []
        return sorted(str(item["label"]) for item in items)

    document.write_text(text)
    result: list[str] = asyncio.run(_session(schema, document, text, ask))
    return result


def diagnostics(schema: Path, document: Path, text: str) -> list[Diagnostic]:
    """What an editor underlines in `text`, in the order of the document."""

    async def ask(connection: _Connection, uri: str) -> list[Diagnostic]:
        latest: list[dict[str, Any]] | None = None
        while True:
            try:
                wait = ANSWER_SECONDS if latest is None else QUIET_SECONDS
                params = await connection.next_notification("textDocument/publishDiagnostics", wait)
            except TimeoutError:
                if latest is None:
                    raise
                break
            if params.get("uri") == uri:
                latest = params.get("diagnostics", [])
        severities = {1: "error", 2: "warning", 3: "information", 4: "hint"}
        found = [
            Diagnostic(
                d["range"]["start"]["line"],
                d["range"]["start"]["character"],
                d["message"],
                severities.get(d.get("severity", 1), "error"),
            )
            for d in latest or []
        ]
        return sorted(found, key=lambda d: (d.line, d.column))

    document.write_text(text)
    result: list[Diagnostic] = asyncio.run(_session(schema, document, text, ask))
    return result
