"""Small JPEG previews of pictures, as messengers put into ``jpegThumbnail`` (base64).

Pictures over 3000×3000 px get none (as GREEN-API documents for sent images), and so do files the
imaging library cannot read. Pillow is optional: without it every thumbnail is empty.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

MAX_SOURCE_SIDE = 3000
THUMBNAIL_SIDE = 96


def jpeg_thumbnail(source: Path | bytes) -> str:
    """A base64 JPEG at most THUMBNAIL_SIDE px on its longer side, or "" when none can be made."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a declared dependency
        return ""
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            # Opening reads only the header: refuse big pictures before decoding any pixels.
            if max(image.size) > MAX_SOURCE_SIDE:
                return ""
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            small = image.convert("RGB")
        out = io.BytesIO()
        small.save(out, "JPEG", quality=60)
        return base64.b64encode(out.getvalue()).decode("ascii")
    except Exception:  # any unreadable or odd file simply has no preview
        return ""
