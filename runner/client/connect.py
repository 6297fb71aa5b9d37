"""Connecting to Temporal: a cluster from QLRF_* settings, else the embedded dev server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, TLSConfig

from runner.contract import TASK_QUEUE
from runner.errors import QlrfError


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
    address = os.environ.get("QLRF_TEMPORAL_ADDRESS")
    if address:
        return Target(address, namespace, os.environ.get("QLRF_TEMPORAL_UI"), False)
    from runner.local.temporal import EmbeddedServer

    info = EmbeddedServer().ensure(ui=ui)
    return Target(info.address, namespace, info.ui_url, True)


async def connect(where: Target) -> Client:
    cert, key, ca = _read("QLRF_TLS_CERT"), _read("QLRF_TLS_KEY"), _read("QLRF_TLS_CA")
    tls: TLSConfig | bool = False
    if cert or key or ca:
        tls = TLSConfig(client_cert=cert, client_private_key=key, server_root_ca_cert=ca)
    api_key = os.environ.get("QLRF_API_KEY")
    try:
        return await Client.connect(
            where.address, namespace=where.namespace, tls=tls or bool(api_key), api_key=api_key
        )
    except RuntimeError as exc:
        raise QlrfError(f"cannot reach Temporal at {where.address}: {exc}") from None
