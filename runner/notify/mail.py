"""E-mail over SMTP (STARTTLS, TLS or plain), with a text and an HTML part and the
review link. The link opens the review page; nothing decides by being opened."""

from __future__ import annotations

import hashlib
import html
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from runner.notify.failures import Refused, Uncertain, Unreachable
from runner.notify.messages import Notice

TIMEOUT = 30.0


def message(notice: Notice, sender: str, to: list[str], key: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"[qlrf] {notice.title()}"[:250]
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(localtime=False)
    domain = sender.rsplit("@", 1)[-1]
    mail["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    mail.set_content(notice.text())
    mail.add_alternative(_html(notice), subtype="html")
    return mail


def _html(notice: Notice) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in notice.facts())
    text = e(notice.message()).replace("\n", "<br>")
    label = "Review the gate" if notice.gate else "Open the run"
    return (
        f"<html><body><h2>{e(notice.title())}</h2><p>{text}</p><table>{rows}</table>"
        f'<p><a href="{e(notice.link())}">{label}</a></p></body></html>'
    )


async def send(settings: dict[str, object], password: str | None, notice: Notice, key: str) -> str:
    host, port = str(settings["smtp"]).rsplit(":", 1)
    tls = str(settings.get("tls") or "starttls")
    to = [str(a) for a in settings["to"]]  # type: ignore[attr-defined]
    mail = message(notice, str(settings["from"]), to, key)
    try:
        errors, answer = await aiosmtplib.send(
            mail,
            hostname=host,
            port=int(port),
            use_tls=tls == "tls",
            start_tls=tls == "starttls",
            username=str(settings["username"]) if settings.get("username") else None,
            password=password,
            timeout=TIMEOUT,
        )
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
        raise Unreachable(f"SMTP {host}:{port} cannot be reached: {exc}") from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise Refused(f"SMTP {host}:{port} refused the login: {exc.code} {exc.message}") from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise Refused(f"SMTP {host}:{port} refused every recipient: {exc}") from None
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500 and exc.code != 421:
            raise Unreachable(f"SMTP {host}:{port} answered {exc.code} {exc.message}") from None
        raise Refused(f"SMTP {host}:{port} answered {exc.code} {exc.message}") from None
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        # Maybe after the message went: the server may have it.
        raise Uncertain(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from None
    except aiosmtplib.SMTPException as exc:  # before anything was sent (AUTH, STARTTLS)
        raise Refused(f"SMTP {host}:{port}: {exc}") from None
    refused = ", ".join(sorted(errors))
    return answer + (f" (refused: {refused})" if refused else "")
