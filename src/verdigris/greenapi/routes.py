"""The wire API router: ``/waInstance{idInstance}/{method}/{apiTokenInstance}[/{extra}]``.

Order of checks, each answered in the wire's own format and before anything changes:
idInstance not digits → 400; unknown method → 404; OPTIONS → 204; wrong verb → 404;
no token → 400; unknown instance → 403 (a deleted one: 400 ``Instance is deleted``); wrong token →
401; account blocked, suspended or (for sending methods) restricted by the operator → 403; rate limit → 429 (before the body is even read: a refused call has no effect); a method the
instance's channel cannot do (the WhatsApp Cloud API has no groups, say) → 501; body → 400; handler.
The path normaliser (``//`` collapsed, optional ``/v3`` prefix, method names in any case) runs
before routing, and nothing here ever redirects.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from verdigris.channels.base import ChannelLimited, ChannelUnavailable, ChannelUnsupported
from verdigris.core import Core
from verdigris.greenapi import methods  # noqa: F401  (registers every wire method)
from verdigris.greenapi.errors import WireError, error_response
from verdigris.greenapi.quota import QuotaRefused, quota_refusal
from verdigris.greenapi.quota import chat_of as _chat_of
from verdigris.greenapi.ratelimit import RateLimiter, shared_when_clustered
from verdigris.greenapi.registry import (
    EMPTY,
    REGISTRY,
    Call,
    JsonAnswer,
    header,
    parse_json,
    read_body,
    validate_body,
)
from verdigris.instances import service as instances
from verdigris.messaging import idempotency
from verdigris.messaging.service import MessageRefused

log = structlog.get_logger("verdigris.wire")

MAX_ID = 2**63 - 1  # ids are 64-bit signed integers in the store
VERBS = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
_VERBS = frozenset(VERBS)
_SLASHES = re.compile(r"/{2,}")
# The paths of :func:`wire_routes` in one expression (each ``{name}`` of a route is ``[^/]+``).
_WIRE_PATH = re.compile(r"/waInstance([^/]+)/([^/]+)(?:/(?:([^/]+)(?:/([^/]+)?)?)?)?")
_IDEMPOTENCY_KEY = idempotency.HEADER.lower().encode("latin-1")


def normalized(scope: Scope) -> Scope:
    """``scope`` with ``//`` collapsed and the optional ``/v3`` prefix of wire paths dropped."""
    path: str = scope["path"]
    if "//" in path or path.startswith("/v3/"):
        path = _SLASHES.sub("/", path)
        if path.startswith("/v3/waInstance"):
            path = path[3:]
        return dict(scope, path=path, raw_path=path.encode())
    return scope


def wire_call(scope: Scope) -> Scope | None:
    """The scope a wire route (:func:`wire_routes`) would hand its endpoint for this HTTP request
    (path normalised, ``path_params`` set), or None when no wire route matches it fully: another
    path, a verb the routes do not take, or a root path (the application's router handles those)."""
    if scope["method"] not in _VERBS or scope.get("root_path"):
        return None
    scope = normalized(scope)
    match = _WIRE_PATH.fullmatch(scope["path"])
    if match is None:
        return None
    id_instance, method, token, extra = match.groups()
    params = {"id_instance": id_instance, "method": method}
    if token is not None:
        params["token"] = token
        if extra is not None:
            params["extra"] = extra
    return {**scope, "path_params": params}


class PathNormalizer:
    """ASGI middleware: collapse ``//`` and drop the optional ``/v3`` prefix of wire paths.

    Given the wire routes, it also hands a wire call straight to its route. The application's
    router would find it only after trying every other route (about a third of a wire call's CPU
    under load, docs/performance.md); the wire endpoint answers its own errors, so the exception
    middleware skipped this way has nothing to do for it. A path under ``/waInstance`` that no
    wire route matches takes the usual way (and gets the usual 404). (Wire calls skip this
    whole chain through the front door, front.py; they come here only when it is off.)
    """

    def __init__(self, app: ASGIApp, wire: list[Route] | None = None) -> None:
        self.app = app
        self.wire = wire or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = normalized(scope)
            if scope["path"].startswith("/waInstance"):
                for route in self.wire:
                    match, child = route.matches(scope)
                    if match is Match.FULL:
                        await route.handle({**scope, **child}, receive, send)
                        return
        await self.app(scope, receive, send)


def limiter_from_settings(core: Core) -> RateLimiter:
    settings = core.settings
    return RateLimiter(
        enabled=settings.rate_limits,
        default_rps=settings.rate_limit_default_rps,
        multiplier=settings.rate_limit_multiplier,
        burst_seconds=settings.rate_limit_burst_seconds,
        overrides=settings.rate_limit_overrides,
        max_keys=settings.rate_limit_max_keys,
    )


def json_response(value: Any) -> Response:
    return JsonAnswer(orjson.dumps(value))


class WireEndpoint:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.limiter = shared_when_clustered(core, limiter_from_settings(core))
        self._counters: dict[tuple[str, int], Any] = {}  # wire_requests by (method, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(scope, receive)
        await response(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive) -> Response:
        """The answer to a wire call (counted in ``wire_requests``); nothing is sent yet."""
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except WireError as exc:
            response = error_response(exc.status, exc.message, request.url.path, exc.headers)
        except QuotaRefused as exc:
            response = exc.response
        except MessageRefused as exc:
            response = error_response(400, exc.answer, request.url.path)
        except ChannelUnsupported as exc:
            response = error_response(501, str(exc), request.url.path)
        except ChannelLimited as exc:
            response = error_response(
                429, str(exc), request.url.path, {"Retry-After": str(exc.retry_after_s)}
            )
        except ChannelUnavailable as exc:
            response = error_response(503, str(exc), request.url.path, {"Retry-After": "5"})
        spec = REGISTRY.get(str(request.path_params.get("method", "")).lower())
        key = (spec.name if spec else "unknown", response.status_code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.core.metrics.wire_requests.labels(key[0], str(key[1]))
        counter.inc()
        return response

    async def handle(self, request: Request) -> Response:
        params = request.path_params
        id_raw: str = params["id_instance"]
        # ASCII digits only ("²".isdigit() is true but int() refuses it) and within the id column's range.
        if not (id_raw.isascii() and id_raw.isdigit()) or int(id_raw) > MAX_ID:
            raise WireError(400, "Parameter idInstance not an integer")
        spec = REGISTRY.get(params["method"].lower())
        if spec is None:
            raise WireError(404, "Not Found")
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": f"{spec.verb}, OPTIONS"})
        if request.method != spec.verb:
            raise WireError(404, f"Not Found: {spec.name} is called with {spec.verb}")
        token: str = params.get("token", "")
        if not token:
            raise WireError(400, "Parameter apiTokenInstance not define")
        inst = await self.core.instances.get(int(id_raw))
        # A deleted instance keeps its row: with its own token it is told so (spec 4.1, 8.1a).
        expected = inst.token if inst is not None else await instances.deleted_token(self.core, int(id_raw))
        if expected is None:
            raise WireError(403, "Forbidden")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            if spec.name == "updateApiToken":
                return Response(b'{"code":401,"description":"Unauthorized"}', media_type="application/json")
            raise WireError(401, "Unauthorized")
        if inst is None:
            raise WireError(400, "Instance is deleted")
        refused = self.core.moderation.wire_refusal(inst.account_id, spec.acts)  # a dict lookup (T-16)
        if refused is not None:
            raise WireError(403, refused)
        limiter = self.limiter
        if limiter.shared is None:
            verdict = limiter.check(inst.id, spec.name.lower())  # in memory (one process)
        else:
            verdict = await limiter.admit(inst.id, spec.name.lower())  # across processes
        if not verdict.allowed:
            self.core.metrics.rate_limited.labels(spec.name).inc()
            raise WireError(429, "Too Many Requests", {"Retry-After": str(verdict.retry_after_s)})
        if spec.handler is None:
            raise WireError(
                501, f"{spec.name} is not implemented yet ({spec.note}); see docs/compatibility.md"
            )
        channel = self.core.channels.get(inst.channel)
        if channel is None:
            raise WireError(
                501, f"the {inst.channel} network of this instance is switched off on this server"
            )
        if channel.methods is not None and spec.name not in channel.methods:
            raise WireError(501, channel.unsupported(spec.name))
        if spec.capability is not None:
            lacking = channel.lacks(spec.capability)
            if lacking is not None:
                raise WireError(501, f"{spec.name} is not available for this instance: {lacking}")
        call = Call(self.core, request, inst, extra=params.get("extra", ""))
        await self._read_body(call, spec)
        return await self._run(call, spec)

    async def _run(self, call: Call, spec: Any) -> Response:
        """Admit the call (license, link) and run it; with an Idempotency-Key, at most once."""
        inst = call.instance
        claim = None
        key = header(call.request, _IDEMPOTENCY_KEY) if spec.acts else None
        if key is not None:
            problem = idempotency.problem(key)
            if problem is not None:
                raise WireError(400, problem)
            claim = idempotency.Claim(inst.id, key, idempotency.fingerprint(spec.name, call.raw_body))
            earlier = await idempotency.find(self.core, inst.id, key)
            if earlier is not None:
                return _replay(claim, earlier)  # neither counted nor run again
        sending = spec.sends_message
        refusal = await self.core.licensing.admit(
            inst,
            spec.name,
            _chat_of(call) if sending else None,  # the chat counts for sends only
            sending=sending,
            when_expired=spec.when_expired,
        )
        if refusal is not None:
            return quota_refusal(refusal)
        if spec.needs_link and inst.state != "authorized":
            if inst.state == "starting":
                raise WireError(400, "instance in starting process try later")
            raise WireError(400, "instance is starting or not authorized")
        if claim is None:
            return _respond(await spec.handler(call))
        with idempotency.claiming(claim):
            try:
                response = _respond(await spec.handler(call))
            except IntegrityError:
                # Another call with this key queued its messages first (and ours rolled back).
                earlier = await idempotency.find(self.core, inst.id, claim.key)
                if earlier is None or claim.recorded:
                    raise
                return _replay(claim, earlier)
        if response.status_code == 200:
            await idempotency.store_answer(self.core, claim, bytes(response.body))
        return response

    async def _read_body(self, call: Call, spec: Any) -> None:
        request = call.request
        if spec.body_kind == "multipart" or spec.body_kind == "raw":
            return  # the handler reads the stream itself (size limits apply there)
        raw = await read_body(request)
        call.raw_body = raw
        if spec.body_kind == "none":
            if raw.strip():
                try:
                    call.raw_json = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    call.raw_json = None  # a stray GET body is tolerated, as the hosted API does
            return
        data = parse_json(raw) if raw.strip() else {}
        call.raw_json = data
        call.body = validate_body(spec.body, data)


def _respond(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if result is EMPTY:
        return Response(b"", media_type="application/json")
    return json_response(result)


def _replay(claim: idempotency.Claim, earlier: idempotency.Earlier) -> Response:
    if earlier.fingerprint != claim.fingerprint:
        raise WireError(422, f"this {idempotency.HEADER} was used for another request")
    return Response(earlier.body, media_type="application/json", headers={"Idempotent-Replayed": "true"})


def wire_routes(endpoint: WireEndpoint) -> list[Route]:
    patterns = [
        "/waInstance{id_instance}/{method}",
        "/waInstance{id_instance}/{method}/",
        "/waInstance{id_instance}/{method}/{token}",
        "/waInstance{id_instance}/{method}/{token}/",
        "/waInstance{id_instance}/{method}/{token}/{extra}",
    ]
    return [Route(p, endpoint, methods=VERBS, include_in_schema=False) for p in patterns]
