"""A real SMTP server (aiosmtpd) on a free port that keeps the mails it receives, for tests."""

from __future__ import annotations

import threading
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from harness import free_port


class MailCatcher:
    """Start with ``with MailCatcher() as smtp:`` (or start()/stop()); point VERDIGRIS_SMTP_PORT at ``port``."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> MailCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        msg = message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, subject_part: str = "", timeout: float = 30) -> str:
        """The plain-text body of the newest mail to ``to`` whose subject contains ``subject_part``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in reversed(self.messages):
                    if msg["To"] == to and subject_part in str(msg["Subject"]):
                        body = msg.get_body(preferencelist=("plain",))
                        assert body is not None
                        return str(body.get_content())
            time.sleep(0.2)
        raise AssertionError(f"no mail to {to} arrived at the SMTP server")
