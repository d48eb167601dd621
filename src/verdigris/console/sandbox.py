"""The sandbox-phone panel: link an instance and chat with it entirely in the browser.

The sandbox network has no phone a person can hold, so the instance page offers sandbox phones
instead: create one (or pick one created before), let it "scan" the QR code shown on the page or
type in a pairing code, and open a phone's screen to write to the instance and read its replies.

A team sees only the sandbox phones it created here (kept per tenant in the workspace meta), so
one tenant never reads another's phone. The panel follows the sandbox switch
(``VERDIGRIS_SANDBOX_ENABLED``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

from verdigris.channels.sandbox import network
from verdigris.channels.sandbox.channel import SandboxChannel
from verdigris.channels.sandbox.network import wid_of
from verdigris.console.web import Ctx, NotFound, Web
from verdigris.core import Core
from verdigris.instances import service as instances
from verdigris.instances.service import InstanceRecord

_NUMBER = re.compile(r"^\d{7,15}$")


def _key(tenant: int) -> str:
    return f"console.sandbox_phones.{tenant}"


class SandboxPhones:
    def __init__(self, core: Core, web: Web, instance: Any) -> None:
        self.core = core
        self.web = web
        self.instance = instance  # Console.instance: the URL's instance, if it is the tenant's

    def available(self, rec: InstanceRecord) -> bool:
        return self.core.settings.sandbox_enabled and rec.channel == "sandbox"

    async def numbers(self, tenant: int) -> list[str]:
        async with self.core.read() as conn:
            raw = await instances.meta_get(conn, _key(tenant))
        return list(orjson.loads(raw)) if raw else []

    async def phones(self, tenant: int) -> list[dict[str, Any]]:
        found = [await network.get_phone(self.core, n) for n in await self.numbers(tenant)]
        return [p for p in found if p is not None]

    async def values(self, ctx: Ctx, rec: InstanceRecord) -> dict[str, Any]:
        if not self.available(rec) or not ctx.account.can("instance.manage"):
            return {"sandbox_panel": False}
        return {"sandbox_panel": True, "sandbox_phones": await self.phones(ctx.account.tenant)}

    async def _own(self, ctx: Ctx, rec: InstanceRecord) -> str:
        """The phone number of the form, if it is one of the tenant's sandbox phones."""
        self.web.require(ctx, "instance.manage")
        if not self.available(rec):
            raise NotFound()
        number = ctx.field("phone", ctx.request.path_params.get("phone", "")).strip().lstrip("+")
        if number not in await self.numbers(ctx.account.tenant):
            raise NotFound()
        return number

    # --- actions ------------------------------------------------------------------------------------

    async def create(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        if not self.available(rec):
            raise NotFound()
        back = f"/instances/{rec.id}#sandbox"
        number = ctx.field("number").strip().lstrip("+").replace(" ", "")
        name = ctx.field("name").strip()[:100]
        if not _NUMBER.match(number):
            return self.web.redirect(
                ctx,
                back,
                "Phone number: 7 to 15 digits in international format, e.g. 79991234567.",
                error=True,
            )
        tenant = ctx.account.tenant
        own = await self.numbers(tenant)
        if number not in own and await network.get_phone(self.core, number) is not None:
            return self.web.redirect(
                ctx,
                back,
                f"+{number} is already a sandbox phone of someone else. Choose another number.",
                error=True,
            )
        await network.create_phone(self.core, number, name)
        if number not in own:
            async with self.core.tx() as tx:
                await instances.meta_set(tx.conn, _key(tenant), orjson.dumps([*own, number]).decode())
        return self.web.redirect(ctx, back, f"Sandbox phone +{number} is ready.")

    async def scan(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        number = await self._own(ctx, rec)
        try:
            # What a camera would read off the page at this moment, checked like any scanned code.
            scanned = await instances.instance_for_qr(self.core, await instances.qr_payload(self.core, rec))
            await instances.link(self.core, scanned, wid_of(number))
        except instances.InstanceError as exc:
            return self.web.redirect(ctx, f"/instances/{rec.id}", f"Not linked: {exc}.", error=True)
        return self.web.redirect(ctx, f"/instances/{rec.id}", f"Linked: +{number} scanned the QR code.")

    async def pair(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        number = await self._own(ctx, rec)
        try:
            found = await instances.instance_for_pairing_code(self.core, ctx.field("code"), number)
            if found.id != rec.id:
                raise instances.InstanceError("that pairing code is for another instance")
            await instances.link(self.core, found, wid_of(number))
        except instances.InstanceError as exc:
            return self.web.redirect(ctx, f"/instances/{rec.id}", f"Not linked: {exc}.", error=True)
        return self.web.redirect(ctx, f"/instances/{rec.id}", f"Linked: +{number} entered the pairing code.")

    async def screen(self, ctx: Ctx) -> Response:
        """The phone's chat with the instance: its messages, and a box to write as the phone."""
        rec = await self.instance(ctx)
        number = await self._own(ctx, rec)
        return self.web.render(
            ctx,
            "_sandbox_chat.html" if ctx.request.headers.get("hx-request") else "sandbox_phone.html",
            inst=rec,
            phone=await network.get_phone(self.core, number),
            messages=await self._chat(rec, number),
        )

    async def _chat(self, rec: InstanceRecord, number: str) -> list[dict[str, Any]]:
        if not rec.wid:
            return []
        return await network.phone_messages(
            self.core, number, chat_id=rec.wid, unread_only=False, direction=None, limit=50
        )

    async def send(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        number = await self._own(ctx, rec)
        back = f"/instances/{rec.id}/sandbox/{number}"
        text = ctx.field("message")
        if not rec.wid:
            return self.web.redirect(ctx, back, "Not sent: link the instance to a phone first.", error=True)
        if not text.strip() or len(text) > 20000:
            return self.web.redirect(
                ctx, back, "Not sent: write a text (up to 20000 characters).", error=True
            )
        channel: SandboxChannel = self.core.channels["sandbox"]  # type: ignore[assignment]
        try:
            await channel.phone_send_text(number, rec.wid, text)
        except network.SandboxError as exc:
            return self.web.redirect(ctx, back, f"Not sent: {exc}.", error=True)
        return self.web.redirect(ctx, back, "Sent.")

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("POST", "/instances/{instance_id}/sandbox/phones", page(self.create)),
            ("POST", "/instances/{instance_id}/sandbox/scan", page(self.scan)),
            ("POST", "/instances/{instance_id}/sandbox/pair", page(self.pair)),
            ("GET", "/instances/{instance_id}/sandbox/{phone}", page(self.screen)),
            ("POST", "/instances/{instance_id}/sandbox/{phone}/send", page(self.send)),
        ]
