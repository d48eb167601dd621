"""The QR code image shown to link an instance (used by the wire ``qr`` method and the console)."""

from __future__ import annotations

import base64
import io

import segno


def qr_png_base64(payload: str) -> str:
    """A PNG of ``payload`` as a QR code, base64-encoded."""
    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="png", scale=6, border=3)
    return base64.b64encode(buffer.getvalue()).decode()
