"""Call journals: lastIncomingCalls / lastOutgoingCalls (the channel's ``calls`` capability)."""

from __future__ import annotations

from typing import Any

from verdigris.channels.base import calls_of
from verdigris.channels.capabilities import CALLS
from verdigris.greenapi.registry import Call, wire_method


@wire_method("lastIncomingCalls", "GET", "journals", query=("minutes",), capability=CALLS)
async def last_incoming_calls(call: Call) -> list[dict[str, Any]]:
    """Finished incoming calls of the last ``minutes`` (default 1440), newest first."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    return [
        {
            "type": "incoming",
            "idMessage": c.id_message,
            "timestamp": (c.ended_ms or c.started_ms) // 1000,
            "typeMessage": "incomingCall",
            "chatId": c.chat_id,
            "isVideo": c.is_video,
            "isGroup": False,
            "status": c.status,
        }
        for c in await calls_of(call.channel).journal(call.core, call.instance.id, "in", minutes)
    ]


@wire_method("lastOutgoingCalls", "GET", "journals", query=("minutes",), capability=CALLS)
async def last_outgoing_calls(call: Call) -> list[dict[str, Any]]:
    """Finished outgoing calls (placed from the linked phone) of the last ``minutes``, newest first."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    return [
        {
            "type": "outgoing",
            "idMessage": c.id_message,
            "timestamp": (c.ended_ms or c.started_ms) // 1000,
            "typeMessage": "outgoingCall",
            "chatId": c.chat_id,
            "duration": c.duration_s,
            "isVideo": c.is_video,
            "status": c.status,
        }
        for c in await calls_of(call.channel).journal(call.core, call.instance.id, "out", minutes)
    ]
