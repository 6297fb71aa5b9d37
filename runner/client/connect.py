"""Connecting to Temporal: a cluster from QLRF_* settings, else the embedded dev server."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, TLSConfig

from runner.client.failures import DATA_CONVERTER
from runner.contract import TASK_QUEUE
from runner.environment import CONNECT_SECONDS, TEMPORAL_VARIABLE, temporal_address
from runner.errors import QlrfError
from runner.observe.runtime import configure_runtime
from runner.observe.tracing import client_interceptors


@dataclass
class Target:
    address: str
    namespace: str
    ui_url: str | None
    embedded: bool


def _read(path_var: str) -> bytes | None:
    path = os.environ.get(path_var)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise QlrfError(f"{path_var}={path}: {exc.strerror}") from None


def task_queue() -> str:
    """QLRF_TASK_QUEUE, else the default task queue: where runs go and workers poll."""
    return os.environ.get("QLRF_TASK_QUEUE") or TASK_QUEUE


def target(*, ui: bool = True) -> Target:
    namespace = os.environ.get("QLRF_NAMESPACE", "default")
    address = os.environ.get(TEMPORAL_VARIABLE)
    if address:
        return Target(
            temporal_address(address), namespace, os.environ.get("QLRF_TEMPORAL_UI"), False
        )
    from runner.local.temporal import EmbeddedServer

    info = EmbeddedServer().ensure(ui=ui)
    return Target(info.address, namespace, info.ui_url, True)


class Unreachable(QlrfError):
    """Temporal did not answer (it may be starting): worth trying again, unlike a
    malformed setting."""


def _where(target: Target) -> str:
    if target.embedded:
        return f"the embedded Temporal dev server at {target.address}"
    return f"Temporal at {target.address} ({TEMPORAL_VARIABLE})"


async def connect(where: Target) -> Client:
    """A client of the target; QlrfError naming the variable when it cannot be reached
    (Unreachable when it did not answer)."""
    configure_runtime()  # the worker made it first when it serves metrics
    interceptors = client_interceptors()
    cert, key, ca = _read("QLRF_TLS_CERT"), _read("QLRF_TLS_KEY"), _read("QLRF_TLS_CA")
    tls: TLSConfig | bool = False
    if cert or key or ca:
        tls = TLSConfig(client_cert=cert, client_private_key=key, server_root_ca_cert=ca)
    api_key = os.environ.get("QLRF_API_KEY")
    try:
        return await asyncio.wait_for(
            Client.connect(
                where.address,
                namespace=where.namespace,
                tls=tls or bool(api_key),
                api_key=api_key,
                data_converter=DATA_CONVERTER,
                interceptors=interceptors,
            ),
            CONNECT_SECONDS,
        )
    except TimeoutError:
        raise Unreachable(
            f"cannot reach {_where(where)}: no answer within {CONNECT_SECONDS:.0f}s; "
            "check the address and that the server runs"
        ) from None
    except Exception as exc:  # the core raises RuntimeError, grpc errors, ValueError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unreachable(
            f"cannot reach {_where(where)}: {first[:300]}; check the address and that the "
            "server runs"
        ) from None
