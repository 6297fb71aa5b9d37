"""`qlrf-run serve`: the approvals service (runner/web, docs/web.md)."""

from __future__ import annotations

import os

import typer

from runner.cli.common import examples, out
from runner.errors import QlrfError


def page_url(run: str) -> str:
    """The run's page on the approvals service (QLRF_WEB_PUBLIC_URL, else the default)."""
    from runner.notify.messages import run_page

    return run_page(run)


def _check_issuer(issuer: str) -> None:
    """The issuer's discovery document is there and names it: else stop now, in one
    line, rather than fail every sign-in later."""
    import httpx

    from runner.web.settings import ISSUER

    url = f"{issuer}/.well-known/openid-configuration"
    try:
        answer = httpx.get(url, timeout=10.0)
        found = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise QlrfError(
            f"{ISSUER}={issuer}: no OpenID discovery document at {url} ({type(exc).__name__}); "
            "check the URL (the issuer, without /.well-known/...)"
        ) from None
    if not isinstance(found, dict) or str(found.get("issuer", "")).rstrip("/") != issuer:
        said = found.get("issuer") if isinstance(found, dict) else f"HTTP {answer.status_code}"
        raise QlrfError(
            f"{ISSUER}={issuer}: {url} names issuer {said!r}, not this one; set {ISSUER} to "
            "exactly the issuer its tokens carry"
        )


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on"),
    port: int = typer.Option(8089, "--port", min=1, max=65535, help="The port to listen on"),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="The address people reach it at (links, sign-in); default http://HOST:PORT",
    ),
) -> None:
    """Serve the approvals pages and the JSON API: review what a gate releases, decide it.

    Sign-in goes through the identity provider named by QLRF_WEB_OIDC_ISSUER; with none,
    only on 127.0.0.1, a name is asked and every decision is marked unverified.
    """
    from runner.web.settings import load

    settings = load(host, port, public_url)
    if settings.issuer is not None:
        _check_issuer(settings.issuer)
    import uvicorn

    from runner.web.app import build

    application = build(settings)
    how = (
        f"sign-in through {settings.issuer}"
        if settings.issuer
        else "local sign-in: names as given, unverified"
    )
    out(f"qlrf-run serve on {settings.public_url} ({how}); Ctrl-C stops it")
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        # The session cookie is Secure: behind a proxy, its X-Forwarded-Proto says https.
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("QLRF_WEB_TRUSTED_PROXIES", "127.0.0.1"),
    )


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run serve",
            "qlrf-run serve --port 8090",
            "QLRF_WEB_OIDC_ISSUER=https://idp.example.com QLRF_WEB_OIDC_CLIENT_ID=qlrf "
            "qlrf-run serve --host 0.0.0.0 --public-url https://qlrf.example.com",
        )
    )(serve)
