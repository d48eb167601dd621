"""The sandbox channel: the built-in network (network.py routes its messages) and what it offers
beyond sending: every wire method, groups, statuses, calls and profiles, linking by QR code or
pairing code with a sandbox phone, and the control API that plays the other side."""

from __future__ import annotations

from typing import Any

from verdigris.channels.sandbox import calls, groups, profiles, routes, social_routes, statuses
from verdigris.channels.sandbox.network import SandboxNetwork
from verdigris.instances import service as instances
from verdigris.instances.service import InstanceRecord


class SandboxChannel(SandboxNetwork):
    title = "Sandbox"
    groups = groups
    statuses = statuses
    calls = calls
    profiles = profiles

    async def start(self) -> None:
        await calls.resume(self.core)  # calls ringing when the process stopped end now

    def routers(self) -> list[Any]:
        return [
            routes.build_router(self.core),
            social_routes.build_router(self.core),
            social_routes.build_public_router(self.core),
        ]

    async def qr_payload(self, rec: InstanceRecord) -> str:
        return await instances.qr_payload(self.core, rec)

    async def pairing_code(self, rec: InstanceRecord, phone: str) -> str:
        return await instances.request_pairing_code(self.core, rec, phone)
