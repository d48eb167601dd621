"""Errors of the wire API and their bodies.

Bodies follow the shape GREEN-API's sibling products document
(``{"statusCode", "timestamp", "path", "message"}``) with ``message`` holding the documented
identifier text (``Unauthorized``, ``Validation failed. Details: 'chatId' is required``, ...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
from starlette.responses import Response

_TOKEN_IN_PATH = re.compile(r"^(/waInstance[^/]*/[^/]+/)([^/]{4})[^/]*")


class WireError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def bad_request(message: str) -> WireError:
    return WireError(400, message)


def validation(detail: str) -> WireError:
    return WireError(400, f"Validation failed. Details: {detail}")


def not_authorized() -> WireError:
    return WireError(400, "instance is starting or not authorized")


def error_response(status: int, message: str, path: str, headers: dict[str, str] | None = None) -> Response:
    masked = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + m.group(2) + "…", path)
    body = {
        "statusCode": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "path": masked,
        "message": message,
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)
