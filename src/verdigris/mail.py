"""Outgoing mail and SMS, one module for the whole product (T-10).

With ``VERDIGRIS_SMTP_HOST`` set, mail goes through that SMTP server (aiosmtplib). Without it,
the embedded default writes each mail as an ``.eml`` file into ``{data_dir}/outbox``, where the
operator reads it in the console. A mail that the SMTP server refuses is kept in the outbox too,
so nothing is lost.

SMS go through an :class:`SmsTransport`; operators plug in a provider with
``VERDIGRIS_SMS_TRANSPORT=package.module:ClassName`` (constructed with the Core).
"""

from __future__ import annotations

import email.policy
import importlib
import os
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiosmtplib
import structlog

from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core

log = structlog.get_logger("verdigris.mail")


def outbox_dir(core: Core) -> Path:
    return core.settings.data_dir / "outbox"


def _outbox_write(core: Core, name_suffix: str, data: bytes) -> Path:
    folder = outbox_dir(core)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now_ms()}-{secrets.token_hex(4)}{name_suffix}"
    # Written under another name, then renamed: a reader of the outbox never sees half a mail.
    partial = folder / f".{path.name}.partial"
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


async def send_mail(
    core: Core, to: str, subject: str, body: str, headers: dict[str, str] | None = None
) -> str:
    """Deliver a plain-text mail; returns "smtp" or the outbox file it was written to."""
    settings = core.settings
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2] or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if settings.smtp_host:
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                start_tls=settings.smtp_security == "starttls",
                use_tls=settings.smtp_security == "tls",
                timeout=30,
            )
            return "smtp"
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.error("SMTP delivery failed; mail kept in the outbox", to=to, error=str(exc))
            message["X-Verdigris-Delivery"] = f"failed: {exc}"[:200]
    path = _outbox_write(core, ".eml", bytes(message))
    return str(path)


@dataclass
class OutboxItem:
    name: str
    kind: str  # "mail" or "sms"
    to: str
    subject: str
    body: str
    at_ms: int


def list_outbox(core: Core, limit: int = 100) -> list[OutboxItem]:
    """The newest mails and SMS written to the outbox (for the operator)."""
    folder = outbox_dir(core)
    if not folder.is_dir():
        return []
    items = []
    for path in sorted(folder.iterdir(), reverse=True)[:limit]:
        at = int(path.name.split("-", 1)[0]) if path.name.split("-", 1)[0].isdigit() else 0
        if path.suffix == ".eml":
            parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
            part = parsed.get_body(preferencelist=("plain",))
            text = part.get_content() if part is not None else ""
            items.append(
                OutboxItem(path.name, "mail", str(parsed["To"] or ""), str(parsed["Subject"] or ""), text, at)
            )
        elif path.suffix == ".sms":
            to, _, text = path.read_text().partition("\n")
            items.append(OutboxItem(path.name, "sms", to, "", text, at))
    return items


class SmsTransport(Protocol):
    """What an SMS provider plug-in implements."""

    async def send(self, phone: str, text: str) -> None: ...


class OutboxSms:
    """The embedded default: SMS are written to the outbox like mails."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def send(self, phone: str, text: str) -> None:
        _outbox_write(self.core, ".sms", f"{phone}\n{text}".encode())


def sms_transport(core: Core) -> SmsTransport:
    """The configured SMS provider (``module:Class``, built with the core), else the outbox."""
    spec = core.settings.sms_transport
    if not spec:
        return OutboxSms(core)
    module_name, _, class_name = spec.partition(":")
    transport: SmsTransport = getattr(importlib.import_module(module_name), class_name)(core)
    return transport


async def send_sms(core: Core, phone: str, text: str) -> None:
    try:
        await core.sms.send(phone, text)
    except Exception as exc:  # a provider failure must not undo the action that sent it
        log.error("SMS delivery failed", phone=phone, error=str(exc))
