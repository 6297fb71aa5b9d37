"""Run one qlrf-run command with every call it makes to the Temporal server counted.

Usage: python -m tests.helpers.rpc_count LOG qlrf-run-arguments...

Each gRPC call the command makes (describe, query, update, ...) is appended to LOG as
one line, its name, in order: the calls counted at the lowest level the SDK has, the
one every client call goes through.
"""

from __future__ import annotations

import sys
from typing import Any

from temporalio import service


def main() -> None:
    log, args = sys.argv[1], sys.argv[2:]
    original = service._BridgeServiceClient._rpc_call

    async def counted(self: Any, rpc: str, *rest: Any, **kwargs: Any) -> Any:
        with open(log, "a") as handle:
            handle.write(rpc + "\n")
        return await original(self, rpc, *rest, **kwargs)

    service._BridgeServiceClient._rpc_call = counted  # type: ignore[method-assign]
    from runner.cli.app import main as cli

    sys.argv = ["qlrf-run", *args]
    cli()


if __name__ == "__main__":
    main()
