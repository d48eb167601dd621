"""Outgoing e-mail of the licensing domain, behind a small interface.

Anything with ``async send(to, subject, text)`` is a :class:`Mailer`. When the process has one
installed as ``core.mailer`` (the console adds SMTP delivery) it is used; otherwise each message is
written as an RFC 5322 ``.eml`` file to ``{data_dir}/outbox/`` (written to a temporary name, then
renamed, so a reader never sees half a message).
"""

from __future__ import annotations

import os
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from verdigris.core import Core


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


class OutboxMailer:
    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="verdigris.local")
        message.set_content(text)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(bytes(message))
        os.replace(tmp, self.folder / name)


def mailer_for(core: Core) -> Mailer:
    installed = getattr(core, "mailer", None)
    if installed is not None:
        return installed  # type: ignore[no-any-return]
    sender = core.settings.operator_email or "billing@verdigris.local"
    return OutboxMailer(core.settings.data_dir / "outbox", sender)
