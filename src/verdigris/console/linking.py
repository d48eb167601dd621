"""The instance page's Link card, for any channel through the channel seam (channels/base.py).

* The state: GREEN-API's name (``#state``) and a sentence for a person, with what the channel knows
  beyond the name (``Channel.state_note``: another client took the session over, the client
  version is refused, the gateway is down).
* A channel that links by QR code (``qr`` among its wire methods; the sandbox, WhatsApp Web): the
  QR code, drawn here as a PNG from the channel's current payload (``Channel.qr_payload``). While
  the instance is not linked the card refreshes itself every few seconds (htmx), so a code that
  the network rotates is replaced; when the state changes the page reloads once, and once linked
  nothing refreshes any more.
* By pairing code (``getAuthorizationCode``): a form taking a phone number; the channel's code
  (``Channel.pairing_code``) is kept in the instance's pairing columns (any state change clears
  them) and shown grouped as WhatsApp shows it (ABCD-EFGH) with its expiry. Never in a URL.
* A channel linked otherwise (the WhatsApp Cloud API): what applies to it instead.
* Logout and reboot (``instances.logout`` / ``instances.reboot``, which call the channel).

Only roles that may manage instances see the QR code or the pairing code, or act.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import select, update
from starlette.responses import HTMLResponse, Response

from verdigris.channels.base import Channel, ChannelUnavailable, ChannelUnsupported
from verdigris.channels.sandbox import network
from verdigris.console.labels import NOT_CONNECTED_WORDS, STATE_WORDS, STOPPED_WORDS
from verdigris.console.web import Ctx, NotFound, Web
from verdigris.core import Core
from verdigris.instances import service as instances
from verdigris.instances.models import instances as instance_rows
from verdigris.instances.qrimage import qr_png_base64
from verdigris.instances.service import InstanceRecord
from verdigris.store.clock import now_ms

# How often the card refreshes itself while the instance is not linked (WhatsApp rotates its QR
# code every 20 s or so; the sandbox every qr_rotate_seconds).
POLL_SECONDS = 3
# How many refreshes ask the channel for a QR code before the card stops and offers a button, as
# WhatsApp Web does: a page left open does not keep a WhatsApp login connection going for hours.
QR_ROUNDS = 60
# The longest a page waits for the channel's QR code. A gateway may need a few seconds for its
# first one; the request goes on, and the card's next refresh shows the code.
QR_WAIT_SECONDS = 4.0
PHONE = re.compile(r"[0-9]{7,15}")  # ASCII digits only (\d takes every script's digits)
_SEPARATORS = str.maketrans("", "", " -().")
BAD_PHONE = "Phone number: 7 to 15 digits in international format (country code first), e.g. +79991234567."


def offers(channel: Channel, method: str) -> bool:
    """Whether the channel's instances may call the wire method ``method``."""
    return channel.methods is None or method in channel.methods


def sentence(text: str) -> str:
    """A channel's refusal as a sentence: capital first, full stop last."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


class LinkCard:
    def __init__(self, core: Core, web: Web, instance: Callable[[Ctx], Awaitable[InstanceRecord]]) -> None:
        self.core = core
        self.web = web
        self.instance = instance
        self._late: set[asyncio.Task[str]] = set()  # QR requests that outlasted QR_WAIT_SECONDS

    # --- what the card shows ---------------------------------------------------------------------

    async def values(self, ctx: Ctx, rec: InstanceRecord, rounds: int = 0) -> dict[str, Any]:
        """The card's values (``link``), and the valid pairing code (``pairing``, which the
        sandbox phones' card reads too). ``rounds``: the card's refreshes so far."""
        channel = self.core.channels.get(rec.channel)
        may_link = ctx.account.can("instance.manage")
        by_qr = channel is not None and offers(channel, "qr")
        by_code = channel is not None and offers(channel, "getAuthorizationCode")
        words = STATE_WORDS.get(rec.state, rec.state)
        if rec.state == instances.NOT_AUTHORIZED:
            words = STOPPED_WORDS if rec.wid else words if by_qr or by_code else NOT_CONNECTED_WORDS
        card: dict[str, Any] = {
            "words": words,
            "note": channel.state_note(rec) if channel is not None else "",
            "title": channel.title if channel is not None and channel.title else rec.channel,
            "by_qr": by_qr,
            "by_code": by_code,
            "may_link": may_link,
            # Not linked, nor stopped with its number still linked: a QR code or a pairing code links it.
            "unlinked": rec.state == instances.NOT_AUTHORIZED and not rec.wid,
            "qr": "",
            "waiting": False,
            "problem": "",
            "poll": rec.state != instances.AUTHORIZED,
            "poll_seconds": POLL_SECONDS,
            "round": rounds + 1,
            "stopped": False,
            "can_logout": channel is not None
            and offers(channel, "logout")
            and (rec.state != instances.NOT_AUTHORIZED or bool(rec.wid)),
            "can_reboot": channel is not None
            and offers(channel, "reboot")
            and bool(rec.wid)
            and rec.state != instances.STARTING,
            "pairing": None,
        }
        if channel is not None and may_link and by_qr and card["unlinked"]:
            await self._draw_qr(card, channel, rec, rounds)
        if may_link and by_code and rec.state != instances.AUTHORIZED:
            card["pairing"] = await self._pairing(rec)
        return {"link": card, "pairing": card["pairing"]}

    async def _draw_qr(
        self, card: dict[str, Any], channel: Channel, rec: InstanceRecord, rounds: int
    ) -> None:
        """Put the channel's current QR code on the card, or why there is none."""
        if rounds >= QR_ROUNDS:
            card["stopped"] = True  # the card still refreshes: it notices a scan of the last code
            return
        try:
            payload = await self._soon(channel.qr_payload(rec))
        except (ChannelUnsupported, ChannelUnavailable, instances.InstanceError) as exc:
            card["problem"] = sentence(str(exc))
            return
        card["waiting"] = payload is None
        card["qr"] = qr_png_base64(payload) if payload is not None else ""

    async def _soon(self, work: Coroutine[Any, Any, str]) -> str | None:
        """``work``'s answer if it comes within QR_WAIT_SECONDS, else None. A late request is not
        interrupted (a gateway preparing its first code goes on; the next refresh shows it)."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=QR_WAIT_SECONDS)
        if task in done:
            return task.result()
        self._late.add(task)
        task.add_done_callback(self._settled)
        return None

    def _settled(self, task: asyncio.Task[str]) -> None:
        self._late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure shows at the next refresh, not in the log

    async def _pairing(self, rec: InstanceRecord) -> dict[str, Any] | None:
        """The instance's pairing code while it is valid."""
        async with self.core.read() as conn:
            row = (
                await conn.execute(
                    select(
                        instance_rows.c.pairing_code,
                        instance_rows.c.pairing_phone,
                        instance_rows.c.pairing_expires_ms,
                    ).where(instance_rows.c.id == rec.id)
                )
            ).first()
        if row is None or not row.pairing_code or int(row.pairing_expires_ms or 0) < now_ms():
            return None
        return {"code": row.pairing_code, "phone": row.pairing_phone, "expires": int(row.pairing_expires_ms)}

    async def _keep(self, rec: InstanceRecord, code: str, phone: str) -> None:
        """Keep the code where the page reads it, in the instance's pairing columns (the sandbox
        keeps its codes there itself; any state change clears them)."""
        expires = now_ms() + self.core.settings.pairing_code_seconds * 1000
        async with self.core.tx() as tx:
            await tx.conn.execute(
                update(instance_rows)
                .where(instance_rows.c.id == rec.id)
                .values(pairing_code=code, pairing_phone=phone, pairing_expires_ms=expires)
            )

    # --- pages -------------------------------------------------------------------------------

    async def fragment(self, ctx: Ctx) -> Response:
        """The card's refreshing part. A refresh that finds the state changed since the page was
        drawn (``seen``) reloads the page, so its forms and buttons follow the new state; so does
        one that finds the instance gone (htmx keeps polling after a 404, which it does not swap)."""
        refreshing = bool(ctx.request.headers.get("hx-request"))
        try:
            rec = await self.instance(ctx)
        except NotFound:
            if refreshing:
                return HTMLResponse("", headers={"HX-Refresh": "true"})
            raise
        query = ctx.request.query_params
        seen, rounds = query.get("seen", ""), query.get("round", "0")
        if seen and seen != rec.state and refreshing:
            return HTMLResponse("", headers={"HX-Refresh": "true"})
        rounds_done = int(rounds) if rounds.isascii() and rounds.isdigit() and len(rounds) < 6 else 0
        return self.web.render(ctx, "_link.html", inst=rec, **(await self.values(ctx, rec, rounds_done)))

    async def pairing_code(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        back = f"/instances/{rec.id}"

        def refuse(text: str) -> Response:
            return self.web.redirect(ctx, back, text, error=True, at="pairing")

        phone = ctx.field("phone").strip().translate(_SEPARATORS).removeprefix("+")
        if not PHONE.fullmatch(phone):
            return refuse(BAD_PHONE)
        channel = self.core.channels.get(rec.channel)
        if channel is None or not offers(channel, "getAuthorizationCode"):
            return refuse("This instance is not linked by pairing code.")
        if rec.channel == "sandbox" and await network.get_phone(self.core, phone) is None:
            # Only a sandbox phone can enter the code, and there is none with this number.
            return refuse(
                f"There is no sandbox phone +{phone}, so nobody could enter a pairing code for it. "
                "Add it under Sandbox phones first."
            )
        try:
            code = await channel.pairing_code(rec, phone)
        except (instances.InstanceError, ChannelUnsupported, ChannelUnavailable) as exc:
            return refuse(sentence(str(exc)))
        await self._keep(rec, code, phone)
        # The code is shown on the instance page (read from the instance), never carried in a URL.
        return self.web.redirect(
            ctx, back, f"A pairing code for +{phone} is ready: type it in on that phone."
        )

    async def logout(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        await instances.logout(self.core, rec)
        return self.web.redirect(ctx, f"/instances/{rec.id}", "The instance is unlinked from its phone.")

    async def reboot(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        await instances.reboot(self.core, rec)
        return self.web.redirect(ctx, f"/instances/{rec.id}", "Rebooting: the instance connects again.")

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/instances/{instance_id}/link", page(self.fragment)),
            ("POST", "/instances/{instance_id}/pairing", page(self.pairing_code)),
            ("POST", "/instances/{instance_id}/logout", page(self.logout)),
            ("POST", "/instances/{instance_id}/reboot", page(self.reboot)),
        ]
