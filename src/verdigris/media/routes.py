"""File links: ``GET|HEAD /media/{owner}/{fileId}/{fileName}`` serves a stored file's exact bytes.

The link is the capability (the file id is 128 random bits), as with GREEN-API's storage links.
Headers tell the size (Content-Length), the type, the name (Content-Disposition) and when the link
stops working (``Expires``, and ``X-Expires-At`` as Unix seconds). Expired or unknown links answer 404.
Byte ranges are supported for stores with local files.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import FileResponse, Response, StreamingResponse

from verdigris.core import Core
from verdigris.media.service import media_of
from verdigris.store.clock import now_ms


def _not_found(message: str) -> Response:
    return Response(orjson.dumps({"message": message}), status_code=404, media_type="application/json")


def build_router(core: Core) -> APIRouter:
    router = APIRouter(tags=["media"])

    async def download(owner: str, file_id: str, file_name: str) -> Any:
        media = media_of(core)
        record = await media.get(file_id)
        if record is None or record.owner != owner or record.file_name != file_name:
            return _not_found("file not found, or its link has expired")
        remaining = max(0, (record.expires_ms - now_ms()) // 1000)
        headers = {
            "Expires": formatdate(record.expires_ms / 1000, usegmt=True),
            "X-Expires-At": str(record.expires_ms // 1000),
            "Cache-Control": f"private, max-age={remaining}",
            "ETag": f'"{record.sha256}"',
            # Files are whatever users uploaded: never let one run as a page of this origin (the
            # console lives here too).
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        path = media.store.local_path(record.key)
        if path is not None:
            return FileResponse(
                path,
                media_type=record.mime_type,
                filename=record.file_name,
                content_disposition_type="inline",
                headers=headers,
            )
        headers["Content-Length"] = str(record.size)
        headers["Content-Disposition"] = "inline"
        return StreamingResponse(media.store.read(record.key), media_type=record.mime_type, headers=headers)

    path = "/media/{owner}/{file_id}/{file_name}"
    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"},
        404: {"description": "Unknown link, or its file has expired"},
    }
    router.add_api_route(
        path,
        download,
        methods=["GET"],
        summary="Download a stored file (the links returned as urlFile / downloadUrl)",
        operation_id="media_download",
        response_class=Response,
        responses=responses,
    )
    router.add_api_route(
        path,
        download,
        methods=["HEAD"],
        summary="A stored file's size, type and expiry (Content-Length, Expires, X-Expires-At)",
        operation_id="media_head",
        response_class=Response,
        responses=responses,
    )
    return router
