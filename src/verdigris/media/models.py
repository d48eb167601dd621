"""Tables of the media domain.

``media_files`` describes each stored file: who owns it (an instance id, or ``phone-{number}``
for a sandbox phone), its name and type, and until when its link works. The bytes live in the
media store (verdigris.store.media) under ``{owner}/{id}``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

from verdigris.store.db import metadata

media_files = Table(
    "media_files",
    metadata,
    # 32 lower-case hex characters (a random UUID): the file's part of its link.
    Column("id", String(32), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("mime_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    # Pictures: a small base64 JPEG preview (the messages' jpegThumbnail); empty otherwise.
    Column("jpeg_thumbnail", Text, nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    # The link answers 404 from this moment; the purge then removes the bytes.
    Column("expires_ms", BigInteger, nullable=False),
)
Index("ix_media_files_expires", media_files.c.expires_ms)
Index("ix_media_files_owner", media_files.c.owner)
