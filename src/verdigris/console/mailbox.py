"""The development mailbox: the outbox's mails to one address, readable in the browser.

A development convenience of the embedded default only. Without an SMTP server the sign-up,
invitation and password-reset mails land in the outbox (``{data_dir}/outbox``), where only the
operator could read them; on a server that listens on a loopback address and has no SMTP server,
``/console/mailbox?address=...`` shows them to whoever opens it (that is, someone at this machine).
It is off as soon as ``VERDIGRIS_SMTP_HOST`` is set, the server listens on another address, or
``VERDIGRIS_DEV_MAILBOX=false``.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from starlette.responses import Response

from verdigris import mail
from verdigris.console.web import Ctx, NotFound, Web, dev_mailbox_on
from verdigris.core import Core

_LINK = re.compile(r"https?://[^\s<>\"']+")
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def linked(text: str) -> Markup:
    """A mail's plain text as HTML, with its links clickable."""
    out: list[str] = []
    last = 0
    for found in _LINK.finditer(text):
        out.append(str(escape(text[last : found.start()])))
        url = escape(found.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = found.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


class MailboxPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    async def page(self, ctx: Ctx) -> Response:
        if not dev_mailbox_on(self.core.settings):
            raise NotFound()
        address = ctx.request.query_params.get("address", "").strip()
        error = ""
        items: list[mail.OutboxItem] = []
        if address and not _ADDRESS.match(address):
            error = "That is not an e-mail address."
        elif address:
            items = [
                m for m in mail.list_outbox(self.core, limit=500) if m.kind == "mail" and _to(m.to) == address
            ]
        return self.web.render(
            ctx,
            "mailbox.html",
            status=400 if error else 200,
            error=error,
            address=address,
            items=[(m, linked(m.body)) for m in items],
        )


def _to(header: str) -> str:
    """The bare address of a To header ("Dana <dana@x>" or "dana@x")."""
    found = re.search(r"<([^>]+)>", header)
    return (found.group(1) if found else header).strip().lower() if header else ""


def routes(core: Core, web: Web) -> list[tuple[str, str, object]]:
    pages = MailboxPages(core, web)
    return [("GET", "/mailbox", web.page(pages.page, login=False))]
