"""One output stream of a step's process, as it arrives.

Memory stays bounded (only the last bytes are kept: the end of a log says what went
wrong), complete lines are counted, and the last few complete lines travel in the
step's heartbeats, so `qlrf-run logs --follow` shows output while the step runs.
The heartbeat numbers them: the last tail line is line `lines` of the stream.
"""

from __future__ import annotations

import asyncio

from runner.steps.common import RESULT_LIMIT

TAIL_LINES = 50
TAIL_BYTES = 8 * 1024
LINE_CHARS = 1000


class Captured:
    def __init__(self) -> None:
        self.data = bytearray()
        self.lines = 0  # complete lines seen since the process started

    def add(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        self.lines += chunk.count(b"\n")
        if len(self.data) > 2 * RESULT_LIMIT:  # keep memory bounded; the tail is returned
            del self.data[: len(self.data) - RESULT_LIMIT]

    def __len__(self) -> int:
        return len(self.data)

    def tail(self) -> list[str]:
        """The last complete lines, at most TAIL_LINES of them and TAIL_BYTES in all."""
        end = self.data.rfind(b"\n")
        if end < 0:
            return []
        start = max(0, end - TAIL_BYTES)
        chunk = bytes(self.data[start:end]).decode("utf-8", errors="replace")
        lines = chunk.split("\n")
        if start > 0:
            lines = lines[1:]  # the first one was cut
        kept = lines[-TAIL_LINES:]
        return [line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "..." for line in kept]


async def capture(stream: asyncio.StreamReader, sink: Captured) -> None:
    while chunk := await stream.read(65536):
        sink.add(chunk)
