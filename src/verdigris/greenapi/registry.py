"""The table of wire methods: name, verb, body model, handler. The router dispatches from it,
the OpenAPI document and docs/compatibility.md are generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from verdigris import safetext
from verdigris.channels.capabilities import GROUPS, STATUSES
from verdigris.greenapi.errors import WireError, bad_request, validation

if TYPE_CHECKING:
    from verdigris.channels.base import Channel
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

BodyKind = Literal["json", "none", "multipart", "raw"]


class Empty:
    """Return this from a handler for a 200 with an empty body (as GREEN-API does for some methods)."""


EMPTY = Empty()


class JsonAnswer(Response):
    """A 200 with a JSON body rendered already: the headers Starlette's ``Response`` would set, in
    its order, without its general header handling (the hot wire calls answer this way)."""

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]


_INTEGER = re.compile(r"-?[0-9]{1,30}")


@dataclass(slots=True)
class Call:
    """One wire call, authenticated and parsed, as handlers see it."""

    core: Core
    request: Request
    instance: InstanceRecord
    body: Any = None  # the validated body model (POST) or None
    raw_json: Any = None  # the parsed JSON body as sent (also for GET bodies, best effort)
    extra: str = ""  # a path segment after the token (deleteNotification's receiptId)
    form: Mapping[str, Any] | None = None
    raw_body: bytes = b""

    @property
    def channel(self) -> Channel:
        """The channel of the called instance."""
        return self.core.channel(self.instance.channel)

    def param(self, name: str) -> Any:
        """A parameter from the query string, else from a JSON body (some SDKs send GET bodies)."""
        value = self.request.query_params.get(name)
        if value is not None:
            return value
        if isinstance(self.raw_json, dict):
            return self.raw_json.get(name)
        if isinstance(self.raw_json, int) and not isinstance(self.raw_json, bool):
            return self.raw_json
        return None

    def int_param(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        """An integer parameter: a JSON integer or a query string of ASCII digits, given once.

        ``int()`` alone would take ``True``, ``5.9``, ``" 5"``, ``"5_000"`` and other scripts' digits.
        """
        if len(self.request.query_params.getlist(name)) > 1:
            raise validation(f"'{name}' must be given once")
        value = self.param(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise validation(f"'{name}' must be a number")
        if isinstance(value, str) and not _INTEGER.fullmatch(value):
            raise validation(f"'{name}' must be a number")
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise validation(f"'{name}' must be a number between -2^63 and 2^63-1")
        if low is not None and number < low:
            raise validation(f"'{name}' must be larger than or equal to {low}")
        if high is not None and number > high:
            raise validation(f"'{name}' must be less than or equal to {high}")
        return number


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WireMethod:
    name: str
    verb: str
    group: str
    handler: Handler | None
    body: type[BaseModel] | None = None
    body_kind: BodyKind = "none"
    summary: str = ""
    # The method needs a linked (authorized) instance, as live messenger queries do.
    needs_link: bool = False
    host: Literal["api", "media"] = "api"
    note: str = ""
    query: tuple[str, ...] = field(default_factory=tuple)
    # The optional channel capability it needs (channels.capabilities); without it: 501.
    capability: str | None = None

    @property
    def done(self) -> bool:
        return self.handler is not None

    @property
    def sends_message(self) -> bool:
        """It sends a message to a chat: the license's monthly cap and correspondents apply."""
        return self.name in SENDS_MESSAGE

    @property
    def acts(self) -> bool:
        """It puts something on the messenger network: refused while the operator restricts."""
        return self.name in SENDS_MESSAGE or self.name in ACTS

    @property
    def when_expired(self) -> bool:
        """It is allowed while the instance has no current license."""
        return self.name in WHEN_EXPIRED


# The wire methods by action, in this one place (licensing and moderation are told by the router).
SENDS_MESSAGE = frozenset(
    {
        "sendMessage",
        "sendFileByUrl",
        "sendFileByUpload",
        "sendPoll",
        "sendLocation",
        "sendContact",
        "forwardMessages",
        "sendInteractiveButtons",
        "sendInteractiveButtonsReply",
        "sendReaction",
        "sendButtons",
        "sendTemplateButtons",
        "sendListMessage",
        "sendLink",
        "sendTemplate",
        "editMessage",
    }
)
ACTS = frozenset(
    {
        "sendTyping",
        "sendTextStatus",
        "sendVoiceStatus",
        "sendMediaStatus",
        "deleteStatus",
        "deleteMessage",
        "createGroup",
        "updateGroupName",
        "updateGroupSettings",
        "addGroupParticipant",
        "removeGroupParticipant",
        "setGroupAdmin",
        "removeAdmin",
        "setGroupPicture",
        "leaveGroup",
        "setProfilePicture",
        "uploadFile",
    }
)
WHEN_EXPIRED = frozenset({"getSettings", "getStateInstance", "getStatusInstance", "getWaSettings"})


REGISTRY: dict[str, WireMethod] = {}
# Whole documentation groups that need a capability of the instance's channel.
_GROUP_CAPABILITY = {"groups": GROUPS, "statuses": STATUSES}


def wire_method(
    name: str,
    verb: str,
    group: str,
    *,
    body: type[BaseModel] | None = None,
    body_kind: BodyKind | None = None,
    summary: str = "",
    needs_link: bool = False,
    host: Literal["api", "media"] = "api",
    query: tuple[str, ...] = (),
    capability: str | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        kind: BodyKind = body_kind or ("json" if body is not None else "none")
        REGISTRY[name.lower()] = WireMethod(
            name,
            verb,
            group,
            handler,
            body,
            kind,
            summary or (handler.__doc__ or "").strip().split("\n")[0],
            needs_link,
            host,
            "",
            query,
            capability or _GROUP_CAPABILITY.get(group),
        )
        return handler

    return register


def planned(name: str, verb: str, group: str, note: str) -> None:
    """A documented method not implemented yet: answered 501 with a clear message."""
    REGISTRY.setdefault(name.lower(), WireMethod(name, verb, group, None, note=note))


# --- request bodies ----------------------------------------------------------------------------


# JSON bodies are small (a text message is at most 20,000 characters); file uploads use their
# own body kinds and limits. A larger body is refused while it streams in, before it fills memory.
MAX_JSON_BODY = 4 * 1024 * 1024


def header(request: Request, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), as ``request.headers.get``
    answers it, without building the request's header map (the hot path asks for two)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = header(request, b"content-length")
    if declared is None and header(request, b"transfer-encoding") is None:
        request._body = b""  # neither header: the request has no body (a GET, usually)
        return b""
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache: later request.body() calls get the same bytes
    return body


def _too_large(limit: int) -> WireError:
    return WireError(413, f"Payload Too Large: a JSON body may have at most {limit} bytes")


def parse_json(raw: bytes) -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        pos = exc.pos if exc.pos is not None else 0
        token = raw[pos : pos + 1].decode("utf-8", "replace") or "end"
        raise bad_request(f"Unexpected token {token} in JSON at position {pos}") from None
    found = safetext.problem(data)
    if found:
        raise validation(found)
    return data


def validate_body(model: type[BaseModel], data: Any, *, strict: bool = True) -> BaseModel:
    """Validate a parsed body. JSON bodies are strict; multipart forms pass ``strict=False``
    because every form field arrives as text (``typingTime="3000"``)."""
    if not isinstance(data, dict):
        raise validation("'value' must be of type object")
    if strict:
        lean = getattr(model, "lean", None)  # fields.Body.lean
        body = lean(data) if lean is not None else None
        if body is not None:
            return body  # type: ignore[no-any-return]
    # A body model may ask for more keys (downloadFile: "'value' must have at least 2 keys").
    need = int(getattr(model, "min_keys", 1)) if model.__pydantic_fields__ else 0
    if len(data) < need:
        raise validation(f"'value' must have at least {need} key{'s' if need > 1 else ''}")
    try:
        # Strict JSON types, as documented: 0 or "yes" is not a boolean, true or "5" not a number
        # (lax mode would take them and store something the client did not mean).
        if not strict:
            return model.model_validate(data)
        return model.model_validate_json(orjson.dumps(data), strict=True)
    except ValidationError as exc:
        raise validation(describe(exc)) from None


_MESSAGES = {
    "missing": "'{loc}' is required",
    "string_type": "'{loc}' must be a string",
    "int_type": "'{loc}' must be a number",
    "int_parsing": "'{loc}' must be a number",
    "int_from_float": "'{loc}' must be an integer",
    "float_type": "'{loc}' must be a number",
    "float_parsing": "'{loc}' must be a number",
    "bool_type": "'{loc}' must be a boolean",
    "bool_parsing": "'{loc}' must be a boolean",
    "list_type": "'{loc}' must be an array",
    "dict_type": "'{loc}' must be of type object",
    "model_type": "'{loc}' must be of type object",
    "model_attributes_type": "'{loc}' must be of type object",
    "string_too_long": "'{loc}' length must be less than or equal to {max_length} characters long",
    "string_too_short": "'{loc}' is not allowed to be empty",
    "too_short": "'{loc}' must contain at least {min_length} items",
    "too_long": "'{loc}' must contain less than or equal to {max_length} items",
    "less_than_equal": "'{loc}' must be less than or equal to {le}",
    "greater_than_equal": "'{loc}' must be larger than or equal to {ge}",
    "literal_error": "'{loc}' must be one of [{expected}]",
    "enum": "'{loc}' must be one of [{expected}]",
}


def describe(exc: ValidationError) -> str:
    """The first validation problem in the Joi-like words GREEN-API uses."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"]) or "value"
    template = _MESSAGES.get(err["type"])
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if template is None:
        return f"'{loc}' {err['msg']}"
    ctx = {k: v for k, v in (err.get("ctx") or {}).items()}
    return template.format(
        loc=loc, **{k: ctx.get(k, "") for k in ("max_length", "min_length", "le", "ge", "expected")}
    )
