"""The approvals service's test parts: a real OpenID provider (oidc-provider-mock, a
real OIDC server with a sign-in form) on a free port, `qlrf-run serve` as operators
start it, tokens fetched through the provider's own code flow, and headless Chromium."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from runner.local.temporal import free_port
from tests.helpers.waiting import eventually
from tests.helpers.worker_ops import spawn

CLIENT_ID = "qlrf-web"
CLIENT_SECRET = "qlrf-web-secret"


@contextlib.contextmanager
def provider(token_seconds: int = 3600) -> Iterator[str]:
    """An OpenID provider in this process; yields its issuer (http://localhost:PORT)."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(
        port=free_port(),
        require_nonce=True,
        access_token_max_age=timedelta(seconds=token_seconds),
    ) as server:
        yield f"http://localhost:{server.server_port}"


def tokens(issuer: str, who: str, redirect: str = "http://127.0.0.1:1/cb") -> dict[str, Any]:
    """An access token and ID token for `who`, through the provider's code flow (its
    form posted as a person would)."""
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
    }
    with httpx.Client(base_url=issuer, timeout=10) as http:
        page = http.post("/oauth2/authorize", params=query, data={"sub": who})
        assert page.status_code in (302, 303), page.text[:400]
        code = parse_qs(urlsplit(page.headers["location"]).query)["code"][0]
        answer = http.post(
            "/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def keygen(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def public(key: Path) -> str:
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


class Served:
    """`qlrf-run serve` on a free port, until stopped."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = spawn(["serve", "--port", str(self.port), *args], env, log)
        eventually(self._up, lambda: f"serve answering on {self.url}: {self.said()}", 60)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve stopped: {self.said()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def browser(folder: Path) -> Any:
    """Headless Chromium (Debian's chromium and chromium-driver) through Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={folder}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    driver.set_page_load_timeout(30)
    return driver
