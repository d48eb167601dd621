"""The instance page's WhatsApp Cloud API card: connect with Meta credentials, connect again,
forget the credentials (channels/whatsapp_cloud/service.py does the work)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from verdigris.channels.whatsapp_cloud import service as cloud
from verdigris.console.web import Ctx, Web
from verdigris.core import Core
from verdigris.instances.service import InstanceRecord


class CloudPages:
    def __init__(self, core: Core, web: Web, instance: Callable[[Ctx], Awaitable[InstanceRecord]]) -> None:
        self.core = core
        self.web = web
        self.instance = instance

    async def values(self, rec: InstanceRecord) -> dict[str, Any]:
        """What the instance page shows of the Cloud API (nothing when the channel is off)."""
        if cloud.CHANNEL not in self.core.channels:
            return {"cloud_enabled": False}
        return {
            "cloud_enabled": True,
            "cloud": await cloud.account(self.core, rec.id),
            "cloud_webhook": self.core.public_url + cloud.WEBHOOK_PATH,
        }

    async def _act(self, ctx: Ctx, action: Callable[[InstanceRecord], Awaitable[str]]) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        try:
            done = await action(rec)
        except cloud.CloudError as exc:
            return self.web.redirect(ctx, f"/instances/{rec.id}", f"Not connected: {exc.message}", error=True)
        return self.web.redirect(ctx, f"/instances/{rec.id}", done)

    async def connect(self, ctx: Ctx) -> Response:
        async def run(rec: InstanceRecord) -> str:
            found = await cloud.connect(
                self.core,
                rec,
                phone_number_id=ctx.field("phone_number_id"),
                access_token=ctx.field("access_token"),
                app_secret=ctx.field("app_secret"),
                verify_token=ctx.field("verify_token"),
            )
            return f"Connected through the WhatsApp Cloud API as {found.display_phone_number}."

        return await self._act(ctx, run)

    async def reconnect(self, ctx: Ctx) -> Response:
        async def run(rec: InstanceRecord) -> str:
            found = await cloud.reconnect(self.core, rec)
            return f"Connected again as {found.display_phone_number}."

        return await self._act(ctx, run)

    async def forget(self, ctx: Ctx) -> Response:
        async def run(rec: InstanceRecord) -> str:
            await cloud.forget(self.core, rec)
            return (
                "The Cloud API credentials are removed; the instance can be linked to a sandbox phone again."
            )

        return await self._act(ctx, run)

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("POST", "/instances/{instance_id}/cloud", page(self.connect)),
            ("POST", "/instances/{instance_id}/cloud/reconnect", page(self.reconnect)),
            ("POST", "/instances/{instance_id}/cloud/forget", page(self.forget)),
        ]
