"""What sandbox accounts show of themselves: push names (the phone's name) and profile pictures
(stored next to group pictures, channels/sandbox/groups.py). The sandbox's ``profiles`` capability."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from verdigris.channels.sandbox.groups import profile_picture_url, set_profile_picture
from verdigris.channels.sandbox.models import sandbox_phones

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["profile_picture_url", "push_names", "set_profile_picture"]


async def push_names(conn: AsyncConnection, numbers: list[str]) -> dict[str, str]:
    """The names the phones of ``numbers`` (digits) show; numbers without a phone are left out."""
    if not numbers:
        return {}
    rows = await conn.execute(
        select(sandbox_phones.c.number, sandbox_phones.c.name).where(sandbox_phones.c.number.in_(numbers))
    )
    return {r.number: r.name for r in rows if r.name}
