"""An instance's message journal in the console: its chats, a chat's history, and a search.

The chat list and a chat's history are the wire API's own journals (``getChats``'s summaries,
``getChatHistory``'s query), so the console shows what a bot reads. Searching has no wire method;
its one query lives here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import func, select
from starlette.responses import Response

from verdigris.chats import service as chats
from verdigris.console.web import Ctx, NotFound, Web
from verdigris.core import Core
from verdigris.instances.service import InstanceRecord
from verdigris.messaging import service as messaging
from verdigris.messaging.content import plain_text
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import Status

CHATS_SHOWN = 200
HISTORY_SHOWN = 200
FOUND_SHOWN = 100
_CHAT = re.compile(r"^(\d{5,20}@c\.us|\d{5,20}(-\d{6,12})?@g\.us|\d{5,20}@lid|status@broadcast)$")


def _entry(m: Any, content: dict[str, Any]) -> dict[str, Any]:
    """A journal line to show: ``m`` is a stored message or a row of the messages table."""
    return {
        "at": int(m.created_ms),
        "direction": m.direction,
        "chat": m.chat_id,
        "type": m.type_message,
        "text": plain_text(m.type_message, content),
        "status": m.status,
    }


class MessageJournal:
    def __init__(self, core: Core, web: Web, instance: Callable[[Ctx], Awaitable[InstanceRecord]]) -> None:
        self.core = core
        self.web = web
        self.instance = instance

    async def chats_page(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        query = ctx.request.query_params.get("q", "").strip()[:200]
        found = await self._search(rec, query) if query else None
        return self.web.render(
            ctx,
            "messages.html",
            inst=rec,
            chats=await chats.list_chats(self.core, rec, CHATS_SHOWN),
            query=query,
            found=found,
            limit=FOUND_SHOWN,
        )

    async def chat_page(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        chat = ctx.param("chat_id")
        if not _CHAT.match(chat):
            raise NotFound()
        rows = await messaging.chat_history(self.core, rec.id, chat, HISTORY_SHOWN)
        names = await chats.contact_names(self.core, rec.id)
        history = [
            _entry(m, m.content)
            for m in reversed(rows)  # oldest first, as a chat reads
        ]
        return self.web.render(
            ctx,
            "messages_chat.html",
            inst=rec,
            chat=chat,
            name=names.get(chat, ""),
            history=history,
            limit=HISTORY_SHOWN,
        )

    async def _search(self, rec: InstanceRecord, query: str) -> list[dict[str, Any]]:
        """Messages whose text or chat holds ``query`` (any case), newest first. The store is asked
        for content that contains it; the readable text then decides (a match inside the JSON's
        keys or a URL is not a match)."""
        needle = query.lower()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        async with self.core.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        messages.c.created_ms,
                        messages.c.direction,
                        messages.c.chat_id,
                        messages.c.type_message,
                        messages.c.content,
                        messages.c.status,
                    )
                    .where(
                        (messages.c.instance_id == rec.id)
                        & (messages.c.status != Status.CLEARED)
                        & (
                            func.lower(messages.c.content).like(pattern, escape="\\")
                            | messages.c.chat_id.like(pattern, escape="\\")
                        )
                    )
                    .order_by(messages.c.id.desc())
                    .limit(FOUND_SHOWN * 5)
                )
            ).all()
        found = []
        for r in rows:
            entry = _entry(r, orjson.loads(r.content))
            if needle in entry["text"].lower() or needle in r.chat_id:
                found.append(entry)
        return found[:FOUND_SHOWN]

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/instances/{instance_id}/messages", page(self.chats_page)),
            ("GET", "/instances/{instance_id}/messages/{chat_id}", page(self.chat_page)),
        ]
