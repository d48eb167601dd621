"""The GREEN-API partner API: ``/partner/{method}/{partnerToken}`` (spec section 9.10).

A partner token belongs to an account; the partner creates, lists and deletes that account's
instances. Quirks kept on purpose because clients depend on them:

* any authentication failure (no token, unknown token) is answered **HTTP 200** with exactly
  ``{"code":401,"description":"Unauthorized"}`` (the Go SDK compares the body as a string);
* method names match in any case, like the wire router; ``//`` is collapsed by the same
  path normaliser; nothing redirects;
* ``getInstances`` lists deleted instances too (for 90 days), with ``deleted: true`` and their
  deletion time; times are UTC without a zone (``2022-06-03T18:39:44``), and a missing time is
  ``0001-01-01T00:00:00``.

Other errors (unknown method, wrong verb, bad body, an instance that is not the partner's) use the
wire API's error body and status codes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from verdigris.accounts import service as accounts
from verdigris.core import Core
from verdigris.greenapi.errors import WireError, error_response
from verdigris.greenapi.fields import Body
from verdigris.greenapi.methods.account import SettingsBody, check_webhook_target, settings_changes
from verdigris.greenapi.openapi import ERROR_SCHEMA, RATE_LIMITED_DOC, TOO_LARGE_DOC
from verdigris.greenapi.ratelimit import shared_when_clustered
from verdigris.greenapi.registry import parse_json, read_body, validate_body
from verdigris.greenapi.routes import limiter_from_settings
from verdigris.instances import service as instances
from verdigris.store.clock import now_ms

UNAUTHORIZED = b'{"code":401,"description":"Unauthorized"}'
NO_TIME = "0001-01-01T00:00:00"
NEVER_EXPIRES = "9999-12-31T23:59:59"
DELETED_LISTED_MS = 90 * 24 * 3600 * 1000  # deleted instances stay listed for 3 months
_TOKEN_IN_PATH = re.compile(r"^(/partner/[^/]+/)([^/]{4})[^/]*")


class CreateInstanceBody(SettingsBody):
    """createInstance: an optional console name plus any instance settings (as setSettings)."""

    name: str | None = Field(default=None, max_length=200)


class DeleteInstanceBody(Body):
    idInstance: int


def wire_time(ms: int | None) -> str:
    """Partner API time format: UTC, seconds, no zone designator."""
    if not ms:
        return NO_TIME
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def instance_view(row: dict[str, Any]) -> dict[str, Any]:
    deleted_ms = row.get("deleted_ms")
    return {
        "idInstance": int(row["id"]),
        "name": row["name"],
        "typeInstance": "whatsapp",
        "typeAccount": "",  # deprecated upstream
        "partnerUserUiid": "",  # deprecated upstream (sic)
        "timeCreated": wire_time(row["created_ms"]),
        "timeDeleted": wire_time(deleted_ms),
        "apiTokenInstance": row["token"],
        "deleted": deleted_ms is not None,
        "tariff": "PARTNER",
        "isFree": False,
        "isPartner": True,
        "expirationDate": NEVER_EXPIRES,  # a self-hosted instance does not expire
        "isExpired": False,
    }


async def get_instances(core: Core, account_id: int, request: Request) -> Any:
    rows = await instances.list_with_deleted(core, account_id, now_ms() - DELETED_LISTED_MS)
    return [instance_view(row) for row in rows]


async def create_instance(core: Core, account_id: int, request: Request) -> Any:
    body = await _body(request, CreateInstanceBody)
    assert isinstance(body, CreateInstanceBody)
    changes = settings_changes(core, body)
    if body.name is None and not changes:
        raise WireError(400, "Validation failed. Details: at least one parameter must be specified")
    await check_webhook_target(core, changes)
    rec = await instances.create(core, account_id=account_id, name=body.name or "", settings=changes)
    return {
        "idInstance": rec.id,
        "apiTokenInstance": rec.token,
        "typeInstance": "whatsapp",
        # Not in GREEN-API's answer (users asked for them); harmless extras that save a lookup.
        "apiUrl": core.public_url,
        "mediaUrl": core.media_url,
    }


async def delete_instance_account(core: Core, account_id: int, request: Request) -> Any:
    body = await _body(request, DeleteInstanceBody)
    assert isinstance(body, DeleteInstanceBody)
    rows = await instances.list_with_deleted(core, account_id, 0)
    row = next((r for r in rows if int(r["id"]) == body.idInstance), None)
    if row is None:
        raise WireError(400, f"Instance {body.idInstance} is not an instance of this partner")
    if row["deleted_ms"] is not None:
        raise WireError(400, "Instance is deleted")
    rec = await core.instances.get(body.idInstance)
    if rec is None:  # deleted between the two reads
        raise WireError(400, "Instance is deleted")
    await instances.delete(core, rec)
    return {"deleteInstanceAccount": True}


Action = Callable[[Core, int, Request], Awaitable[Any]]

METHODS: dict[str, tuple[str, str, Action]] = {
    "getinstances": ("getInstances", "GET", get_instances),
    "createinstance": ("createInstance", "POST", create_instance),
    "deleteinstanceaccount": ("deleteInstanceAccount", "POST", delete_instance_account),
}


async def _body(request: Request, model: type[Body]) -> Body:
    raw = await read_body(request)
    data = parse_json(raw) if raw.strip() else {}
    result = validate_body(model, data)
    assert isinstance(result, Body)
    return result


class PartnerEndpoint:
    def __init__(self, core: Core) -> None:
        self.core = core
        # GREEN-API documents no partner limits; the default per-method rate applies per account
        # (overridable by method name like any other), so one partner cannot flood the store.
        self.limiter = shared_when_clustered(core, limiter_from_settings(core), "partner:")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except WireError as exc:
            path = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + m.group(2) + "…", request.url.path)
            response = error_response(exc.status, exc.message, path, exc.headers)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        params = request.path_params
        entry = METHODS.get(params["method"].lower())
        if entry is None:
            raise WireError(404, "Not Found")
        name, verb, action = entry
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": f"{verb}, OPTIONS"})
        if request.method != verb:
            raise WireError(404, f"Not Found: {name} is called with {verb}")
        account_id = await accounts.partner_account(self.core, params.get("token", ""))
        if account_id is None:
            return Response(UNAUTHORIZED, media_type="application/json")
        measure = self.core.moderation.measure(account_id)
        if measure is not None and measure.locks_out:
            raise WireError(403, "Forbidden. " + measure.describe())
        verdict = await self.limiter.admit(account_id, name.lower())
        if not verdict.allowed:
            raise WireError(429, "Too Many Requests", {"Retry-After": str(verdict.retry_after_s)})
        result = await action(self.core, account_id, request)
        return Response(orjson.dumps(result), media_type="application/json")


_BODIES: dict[str, type[Body]] = {
    "createinstance": CreateInstanceBody,
    "deleteinstanceaccount": DeleteInstanceBody,
}
_SUMMARIES = {
    "getinstances": "The partner account's instances, deleted ones included (for 90 days)",
    "createinstance": "Create an instance of the partner account, with optional name and settings",
    "deleteinstanceaccount": "Delete an instance of the partner account",
}


def partner_paths(components: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI entries of the partner methods (the app adds them to its document)."""
    paths: dict[str, Any] = {}
    for key, (name, verb, _action) in METHODS.items():
        operation: dict[str, Any] = {
            "tags": ["partner"],
            "summary": _SUMMARIES[key],
            "operationId": f"partner_{name}",
            "parameters": [
                {
                    "name": "partnerToken",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                }
            ],
            "responses": {
                "200": {
                    "description": 'Success, or exactly {"code":401,"description":"Unauthorized"} for a bad token',
                    "content": {"application/json": {"schema": {}}},
                },
                "400": {
                    "description": "Bad request data, or an instance that is not the partner's",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
                "413": TOO_LARGE_DOC,
                "429": RATE_LIMITED_DOC,
            },
        }
        body = _BODIES.get(key)
        if body is not None:
            schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        paths[f"/partner/{name}/{{partnerToken}}"] = {verb.lower(): operation}
    return paths


def partner_routes(core: Core) -> list[Route]:
    endpoint = PartnerEndpoint(core)
    verbs = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
    patterns = [
        "/partner/{method}",
        "/partner/{method}/",
        "/partner/{method}/{token}",
        "/partner/{method}/{token}/",
    ]
    return [Route(p, endpoint, methods=verbs, include_in_schema=False) for p in patterns]
