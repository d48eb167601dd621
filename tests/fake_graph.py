"""A local stand-in for Meta's Graph API (WhatsApp Cloud API), following its published contract.

No Meta server is reachable from here, so the Cloud API channel is tested against this: a real
HTTP server (uvicorn in a thread) that answers the calls the channel makes the way the Graph API
documents them, and a driver that plays Meta's side of the webhook (signed payloads in Meta's
envelope). Tests read what it received and script what it answers.

Contract followed (developers.facebook.com/docs/whatsapp/cloud-api):
* ``GET /{version}/{phone-number-id}?fields=display_phone_number,verified_name``
* ``POST /{version}/{phone-number-id}/messages``: a message → ``{"messaging_product", "contacts":
  [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}``; ``{"status": "read", "message_id"}``
  → ``{"success": true}``
* ``POST /{version}/{phone-number-id}/media`` (multipart ``file``, ``type``, ``messaging_product``)
  → ``{"id"}``; ``GET /{version}/{media-id}`` → ``{"url", "mime_type", "sha256", "file_size",
  "id", "messaging_product"}``; the ``url`` answers the bytes to the same Bearer token
* errors: ``{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"},
  "fbtrace_id"}}``; a wrong token is 401 with code 190
* webhooks: ``{"object": "whatsapp_business_account", "entry": [{"id", "changes": [{"field":
  "messages", "value": {...}}]}]}`` signed ``X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret,
  body)>``
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness import free_port


def graph_error(status: int, code: int, message: str, details: str = "", subcode: int | None = None) -> Any:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(12),
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


def new_wamid() -> str:
    return "wamid.HBgL" + secrets.token_urlsafe(40)


@dataclass
class Number:
    phone_number_id: str
    display: str
    name: str
    token: str


@dataclass
class FakeGraph:
    port: int = field(default_factory=free_port)
    numbers: dict[str, Number] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # message bodies, with "_wamid" added
    reads: list[str] = field(default_factory=list)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Scripted answers for the next sends, used first to last: (status, JSON body or text), or
    # ("sleep", seconds) to answer that send normally but late.
    send_answers: list[tuple[Any, Any]] = field(default_factory=list)
    # Until this time.monotonic(), every send is refused with 130429 (throughput exceeded).
    refuse_until: float = 0.0
    # Called with a new message's wamid before the send is answered (Meta's webhook racing ahead).
    before_answer: Any = None
    attempts: int = 0
    # While cleared, GET /{media-id} waits (to kill the server mid-download).
    media_gate: threading.Event = field(default_factory=threading.Event)
    # How many GET /{media-id} requests have arrived (counted before the gate).
    media_requests: int = 0

    def __post_init__(self) -> None:
        self.media_gate.set()
        self._lock = threading.Lock()
        self._taken = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the test's side -----------------------------------------------------------------------

    def add_number(self, phone_number_id: str, display: str, name: str, token: str) -> Number:
        number = Number(phone_number_id, display, name, token)
        self.numbers[phone_number_id] = number
        return number

    def add_media(self, data: bytes, mime: str) -> str:
        """A file a customer sent: it can be fetched by its media id."""
        media_id = str(10**15 + len(self.media_files) + 1)
        self.media_files[media_id] = {"data": data, "mime": mime}
        return media_id

    def skip_sent(self) -> None:
        """Forget the messages received so far (next_sent returns only later ones)."""
        with self._lock:
            self._taken = len(self.sent)

    def next_sent(self, timeout: float = 30) -> dict[str, Any]:
        """The next message the Graph API accepted that the test has not looked at yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.sent) > self._taken:
                    self._taken += 1
                    return self.sent[self._taken - 1]
            time.sleep(0.05)
        raise AssertionError(f"the fake Graph API received no further message ({len(self.sent)} in all)")

    def wait_reads(self, count: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.reads) >= count:
                return list(self.reads)
            time.sleep(0.05)
        raise AssertionError(f"the fake Graph API received {len(self.reads)} read marks, not {count}")

    # --- the server ------------------------------------------------------------------------------

    def _number(self, request: Request, pnid: str) -> Number | Response:
        number = self.numbers.get(pnid)
        if number is None:
            status, body = graph_error(
                400, 100, f"Unsupported post request. Object with ID '{pnid}' does not exist", subcode=33
            )
            return JSONResponse(body, status)
        if request.headers.get("authorization") != f"Bearer {number.token}":
            status, body = graph_error(
                401, 190, "Error validating access token: Session has expired", subcode=463
            )
            return JSONResponse(body, status)
        return number

    async def _phone(self, request: Request) -> Response:
        number = self._number(request, request.path_params["pnid"])
        if isinstance(number, Response):
            return number
        return JSONResponse(
            {
                "display_phone_number": number.display,
                "verified_name": number.name,
                "id": number.phone_number_id,
            }
        )

    async def _messages(self, request: Request) -> Response:
        number = self._number(request, request.path_params["pnid"])
        if isinstance(number, Response):
            return number
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse(graph_error(400, 100, "Invalid parameter")[1], 400)
        if body.get("messaging_product") != "whatsapp":
            return JSONResponse(
                graph_error(400, 100, "(#100) The parameter messaging_product is required.")[1], 400
            )
        if body.get("status") == "read":
            self.reads.append(str(body.get("message_id")))
            return JSONResponse({"success": True})
        kind = body.get("type")
        to = str(body.get("to", ""))
        if not to.isdigit() or not isinstance(body.get(kind), dict | list):
            return JSONResponse(graph_error(400, 131009, "(#131009) Parameter value is not valid")[1], 400)
        self.attempts += 1
        if time.monotonic() < self.refuse_until:
            return JSONResponse(graph_error(400, 130429, "(#130429) Rate limit hit")[1], 400)
        if self.send_answers:
            status, answer = self.send_answers.pop(0)
            if status == "sleep":
                await asyncio.sleep(answer)
            elif isinstance(answer, str):
                return Response(answer, status_code=status, media_type="text/html")
            elif status != 200:
                return JSONResponse(answer, status)
        wamid = new_wamid()
        if self.before_answer is not None:
            await asyncio.to_thread(self.before_answer, wamid)
        with self._lock:
            self.sent.append({**body, "_wamid": wamid})
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    async def _upload(self, request: Request) -> Response:
        number = self._number(request, request.path_params["pnid"])
        if isinstance(number, Response):
            return number
        form = await request.form()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or upload is None or isinstance(upload, str):
            return JSONResponse(
                graph_error(400, 100, "(#100) file and messaging_product are required")[1], 400
            )
        media_id = str(2 * 10**15 + len(self.uploads) + 1)
        self.uploads[media_id] = {
            "data": await upload.read(),
            "filename": upload.filename,
            "type": form.get("type"),
        }
        return JSONResponse({"id": media_id})

    async def _media(self, request: Request) -> Response:
        media_id = request.path_params["media_id"]
        self.media_requests += 1
        await asyncio.to_thread(self.media_gate.wait)
        found = self.media_files.get(media_id)
        if found is None or not any(
            request.headers.get("authorization") == f"Bearer {n.token}" for n in self.numbers.values()
        ):
            return JSONResponse(graph_error(400, 100, "Unsupported get request")[1], 400)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/download/{media_id}?ext=1",
                "mime_type": found["mime"],
                "sha256": hashlib.sha256(found["data"]).hexdigest(),
                "file_size": len(found["data"]),
                "id": media_id,
            }
        )

    async def _download(self, request: Request) -> Response:
        found = self.media_files.get(request.path_params["media_id"])
        if found is None or not any(
            request.headers.get("authorization") == f"Bearer {n.token}" for n in self.numbers.values()
        ):
            return Response(status_code=404)
        return Response(found["data"], media_type=found["mime"])

    def start(self) -> FakeGraph:
        app = Starlette(
            routes=[
                Route("/download/{media_id}", self._download, methods=["GET"]),
                Route("/{version}/{pnid}/messages", self._messages, methods=["POST"]),
                Route("/{version}/{pnid}/media", self._upload, methods=["POST"]),
                Route("/{version}/{media_id:int}", self._media_or_phone, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.05)
        return self

    async def _media_or_phone(self, request: Request) -> Response:
        # Phone number ids and media ids are both numbers under /{version}/.
        key = str(request.path_params["media_id"])
        if key in self.numbers:
            request.path_params["pnid"] = key
            return await self._phone(request)
        request.path_params["media_id"] = key
        return await self._media(request)

    def stop(self) -> None:
        self.media_gate.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


# --- Meta's side of the webhook ------------------------------------------------------------------


def envelope(number: Number, value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": number.display, "phone_number_id": number.phone_number_id},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def post_webhook(
    url: str, body: dict[str, Any] | bytes, app_secret: str, *, signature: str | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    if signature is None:
        signature = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(f"{url}/channels/whatsapp-cloud/webhook", content=raw, headers=headers, timeout=30)


def customer_message(
    sender: str, name: str, kind: str, part: Any, *, context: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """A customer's message as a webhook ``value`` (without metadata); returns (wamid, value)."""
    wamid = new_wamid()
    message: dict[str, Any] = {"from": sender, "id": wamid, "timestamp": str(int(time.time())), "type": kind}
    message[kind] = part
    if context is not None:
        message["context"] = context
    return wamid, {"contacts": [{"profile": {"name": name}, "wa_id": sender}], "messages": [message]}


def status_update(
    wamid: str, recipient: str, status: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if status == "sent":
        entry["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "service",
            "type": "regular",
        }
    if errors:
        entry["errors"] = errors
    return {"statuses": [entry]}
