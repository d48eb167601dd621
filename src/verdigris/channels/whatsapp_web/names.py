"""How the WhatsApp Web channel names things: its instances' sessions, and WhatsApp's JIDs next
to the chat ids the wire shows."""

from __future__ import annotations

CHANNEL = "whatsapp_web"


def session_of(instance_id: int) -> str:
    return str(instance_id)


def wid_of(jid: str) -> str:
    """A WhatsApp JID (``79990001111@s.whatsapp.net``, ``…:12@s.whatsapp.net`` for a device,
    ``…@g.us`` for a group) as the chat id the wire shows (``79990001111@c.us``)."""
    user, _, server = jid.partition("@")
    user = user.split(":")[0].split(".")[0]
    if server == "g.us":
        return f"{user}@g.us"
    return f"{user}@c.us"


def jid_of(chat_id: str) -> str:
    user, _, server = chat_id.partition("@")
    return f"{user}@g.us" if server == "g.us" else f"{user}@s.whatsapp.net"
