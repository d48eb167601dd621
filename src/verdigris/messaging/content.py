"""Message content in domain form, and message ids.

Content is a flat JSON object whose keys follow the messenger's own message fields:

* text: ``{"text": str}``, plus ``"preview": {...}`` for a link preview
* any message may carry ``"quoted": {"id", "sender", "type_message", "content"}`` (a reply)
* ``"forwarded": true`` and ``"forwarding_score": n`` for forwarded copies

``type_message`` (textMessage, extendedTextMessage, quotedMessage, imageMessage, ...) is derived
here, so every producer of messages agrees on it.
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
from typing import Any

URL_RE = re.compile(r"https?://[^\s]+", re.IGNORECASE)


def new_outgoing_id() -> str:
    """Id of a message sent through the API (16 upper-case hex characters, ``BAE5`` prefix)."""
    return "BAE5" + _random_hex(6)


def new_device_id() -> str:
    """Id of a message sent from a phone (20 upper-case hex characters, ``3EB0`` prefix)."""
    return "3EB0" + _random_hex(8)


# Message ids take their randomness from os.urandom (as ``secrets`` does) 4 KiB at a time: one
# system call per few hundred ids instead of one per id (a few % of an accepted message's CPU).
_random = bytearray()
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_random.clear)  # a forked process draws its own


def _random_hex(size: int) -> str:
    with _random_lock:
        if len(_random) < size:
            _random.extend(os.urandom(4096))
        chunk = _random[:size]
        del _random[:size]
    return chunk.hex().upper()


def text_content(
    text: str,
    *,
    link_preview: bool = True,
    preview: dict[str, Any] | None = None,
    quoted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {"text": text}
    if preview is not None:
        content["preview"] = preview
    elif link_preview and URL_RE.search(text):
        content["preview"] = {"title": "", "description": "", "type": "None", "thumbnail": ""}
    if quoted is not None:
        content["quoted"] = quoted
    return content


def text_type(content: dict[str, Any]) -> str:
    if "quoted" in content:
        return "quotedMessage"
    if "preview" in content:
        return "extendedTextMessage"
    return "textMessage"


def quote_of(id_message: str, sender: str, type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    """What a reply keeps of the message it quotes (no nested quotes)."""
    inner = {k: v for k, v in content.items() if k != "quoted"}
    return {"id": id_message, "sender": sender, "type_message": type_message, "content": inner}


def plain_text(type_message: str, content: dict[str, Any]) -> str:
    """The readable text of a message, for journals and phone inboxes."""
    return str(content.get("text") or content.get("caption") or "")


# --- files -----------------------------------------------------------------------------------------

# Image formats WhatsApp shows as pictures; other image/* files (svg, tiff, ico...) travel as documents.
PICTURE_MIME = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/heic"})


def file_type(file_name: str, mime_type: str = "") -> str:
    """imageMessage, videoMessage, audioMessage or documentMessage, from the name's extension first.

    The extension decides (as GREEN-API documents); the MIME type given with the file is used
    only when the extension says nothing.
    """
    guessed = guess_mime(file_name) or (mime_type or "").split(";")[0].strip().lower()
    if guessed in PICTURE_MIME:
        return "imageMessage"
    if guessed.startswith("video/"):
        return "videoMessage"
    if guessed.startswith("audio/") or guessed == "application/ogg":
        return "audioMessage"
    return "documentMessage"


def guess_mime(file_name: str) -> str:
    guessed = mimetypes.guess_type(file_name, strict=False)[0] or ""
    if not guessed and file_name.lower().endswith((".opus", ".oga")):
        guessed = "audio/ogg"
    return guessed


def file_content(
    *,
    file_name: str,
    mime_type: str,
    caption: str = "",
    download_url: str = "",
    file_id: str = "",
    fetch_url: str = "",
    quoted: dict[str, Any] | None = None,
    jpeg_thumbnail: str = "",
) -> dict[str, Any]:
    """A file message. ``fetchUrl`` marks a file still to be fetched (sendFileByUrl): the send
    worker holds the message until the fetch fills ``downloadUrl`` in."""
    content: dict[str, Any] = {
        "downloadUrl": download_url,
        "caption": caption,
        "fileName": file_name,
        "mimeType": mime_type,
        "jpegThumbnail": jpeg_thumbnail,
    }
    if file_id:
        content["fileId"] = file_id
    if fetch_url:
        content["fetchUrl"] = fetch_url
    if quoted is not None:
        content["quoted"] = quoted
    return content
