"""A small client of Meta's Graph API for WhatsApp (the Cloud API): the calls the channel makes.

``POST /{phone-number-id}/messages`` (send, mark read), ``POST /{phone-number-id}/media``
(upload), ``GET /{media-id}`` and the download of its short-lived URL, and
``GET /{phone-number-id}`` (check credentials). Every call carries the account's access token
as a Bearer header. Errors come back as ``{"error": {"message", "type", "code", "error_subcode",
"error_data": {"details"}, "fbtrace_id"}}``; they become :class:`GraphError`, which says whether
trying again later can help (throughput limits, Meta's own trouble, the network) and whether the
credentials themselves are refused.

The base address is ``VERDIGRIS_CLOUD_GRAPH_URL`` (``https://graph.facebook.com``) plus
``VERDIGRIS_CLOUD_API_VERSION``; tests point it at a local server that follows the same contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

# Graph error codes after which the same request may succeed later.
RETRYABLE_CODES = frozenset(
    {
        4,  # application request limit reached
        80007,  # WhatsApp Business Account rate limit
        130429,  # throughput of the business number exceeded
        131000,  # something went wrong (Meta's side)
        131016,  # service unavailable
        131056,  # too many messages to the same recipient in a short time
        131057,  # business account in maintenance mode
        133004,  # server temporarily unavailable
    }
)
# Codes that mean the credentials are refused: every send would fail the same way.
CREDENTIAL_CODES = frozenset({0, 190})
# The code of a failure that carried no Graph error (no answer, a proxy's HTML page, ...).
NO_CODE = -1


@dataclass(slots=True)
class Credentials:
    phone_number_id: str
    access_token: str


class GraphError(Exception):
    """A Graph API call that failed, with Meta's error code and text (or a network failure)."""

    def __init__(self, status: int, code: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status  # HTTP status; 0 when no answer came back
        self.code = code
        self.message = message
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500 or self.code in RETRYABLE_CODES

    @property
    def credentials_refused(self) -> bool:
        return self.status == 401 or self.code in CREDENTIAL_CODES

    def describe(self) -> str:
        """One line for a message status or the console: Meta's code, its text and its details."""
        text = self.message
        if self.code != NO_CODE and not text.startswith("(#"):
            text = f"(#{self.code}) {text}"
        if self.details and self.details not in text:
            text = f"{text}: {self.details}"
        return text[:400]


def _error(response: httpx.Response) -> GraphError:
    try:
        body = orjson.loads(response.content)
        error = body.get("error") if isinstance(body, dict) else None
    except orjson.JSONDecodeError:
        error = None
    if not isinstance(error, dict):
        return GraphError(response.status_code, NO_CODE, f"HTTP {response.status_code} from the Graph API")
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else ""
    return GraphError(
        response.status_code,
        code if isinstance(code, int) and not isinstance(code, bool) else NO_CODE,
        str(error.get("message") or f"HTTP {response.status_code}"),
        str(details or ""),
    )


class GraphClient:
    """One HTTP client (connection pool) for every Cloud API account of the process."""

    def __init__(self, base_url: str, version: str, timeout: float) -> None:
        self.base = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(
        self, method: str, url: str, creds: Credentials, json: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {creds.access_token}"}
        if json is not None:
            headers["Content-Type"] = "application/json"
            kwargs["content"] = orjson.dumps(json)
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GraphError(0, NO_CODE, f"the Graph API did not answer: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise _error(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise GraphError(
                response.status_code, NO_CODE, "the Graph API answered something that is not JSON"
            ) from None

    async def send(self, creds: Credentials, body: dict[str, Any]) -> str:
        """Send one message; returns its wamid (the network accepted it)."""
        answer = await self._call(
            "POST",
            f"{self.base}/{creds.phone_number_id}/messages",
            creds,
            json=body,
        )
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise GraphError(
                200, NO_CODE, "the Graph API accepted the message but named no message id"
            ) from None

    async def mark_read(self, creds: Credentials, wamid: str) -> None:
        await self._call(
            "POST",
            f"{self.base}/{creds.phone_number_id}/messages",
            creds,
            json={"messaging_product": "whatsapp", "status": "read", "message_id": wamid},
        )

    async def upload(self, creds: Credentials, data: bytes, file_name: str, mime_type: str) -> str:
        """Upload a file for sending; returns its media id (valid 30 days at Meta)."""
        answer = await self._call(
            "POST",
            f"{self.base}/{creds.phone_number_id}/media",
            creds,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (file_name, data, mime_type)},
        )
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not media_id:
            raise GraphError(200, NO_CODE, "the Graph API stored the file but named no media id")
        return str(media_id)

    async def media(self, creds: Credentials, media_id: str) -> dict[str, Any]:
        """A received file's facts: ``url`` (valid a few minutes), ``mime_type``, ``sha256``, ``file_size``."""
        answer = await self._call(
            "GET", f"{self.base}/{media_id}", creds, params={"phone_number_id": creds.phone_number_id}
        )
        if not isinstance(answer, dict) or not answer.get("url"):
            raise GraphError(200, NO_CODE, f"the Graph API has no download address for media {media_id}")
        return answer

    async def download(self, creds: Credentials, url: str, limit: int) -> AsyncIterator[bytes]:
        """The bytes behind a media URL (the same Bearer token), at most ``limit`` of them."""
        headers = {"Authorization": f"Bearer {creds.access_token}"}
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 300:
                    await response.aread()
                    raise _error(response)
                seen = 0
                async for chunk in response.aiter_bytes():
                    seen += len(chunk)
                    if seen > limit:
                        raise GraphError(
                            200, NO_CODE, f"the file is larger than this server's limit of {limit} bytes"
                        )
                    yield chunk
        except httpx.HTTPError as exc:
            raise GraphError(0, NO_CODE, f"the file download failed: {type(exc).__name__}") from None

    async def phone_number(self, creds: Credentials) -> dict[str, Any]:
        """The business number behind the credentials: ``display_phone_number``, ``verified_name``."""
        answer = await self._call(
            "GET",
            f"{self.base}/{creds.phone_number_id}",
            creds,
            params={"fields": "display_phone_number,verified_name"},
        )
        if not isinstance(answer, dict) or not answer.get("display_phone_number"):
            raise GraphError(200, NO_CODE, "the Graph API did not name the business phone number")
        return answer
