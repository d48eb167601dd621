"""The licensing JSON API (``/api/v1``): public tariff list, the licensee's billing section, the
operator's side, and the payment-provider callback. Pages of the personal area build on it.

This is the face for scripts and accounting systems; people use the same services through the
console's billing pages (``console/billing.py``). Authentication: ``Authorization: Basic`` with an
account's username and password, through the console's own check (one throttle and lockout;
failures are written to the auth journal). The role decides what
is allowed: the operator sees everything; a licensee account works on its team's (tenant's)
licenses and needs the ``billing`` permission (owner or admin). Errors are
``{"error": "...", "message": "..."}`` with a 4xx status; a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from verdigris.accounts import journal, sessions
from verdigris.accounts import service as accounts
from verdigris.accounts.records import Account
from verdigris.core import Core
from verdigris.licensing import billing, dates, reports, service, transfers
from verdigris.licensing.pdf import render_invoice
from verdigris.licensing.provider import CallbackError, SignedCallbackProvider
from verdigris.licensing.service import BillingError

_AUTH_CACHE_S = 60.0
MAX_ID = 2**63 - 1  # ids are 64-bit signed integers in the store


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


_ERROR_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                "required": ["message"],
            }
        }
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, **_ERROR_BODY}
    for status, text in (
        (400, "Bad request data"),
        (401, "Missing or wrong credentials (HTTP Basic)"),
        (403, "The account's role may not do this"),
        (404, "No such tariff, license, invoice, instance or transfer"),
        (409, "The request conflicts with the current state"),
        (422, "A field has the wrong type"),
    )
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message, "message": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class Auth:
    """HTTP Basic through the console's own password check (``sessions.authenticate``): one
    throttle and lockout for both faces, every failure journalled, closed, unverified and
    blocked accounts refused. A successful argon2 check is remembered briefly by the hash it
    matched; each request still reads the account, so a changed password, a removed member or an
    operator's block takes effect at once."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._seen: dict[tuple[str, str], tuple[float, str]] = {}

    async def account(self, request: Request) -> Account:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            raise BillingError(401, "authentication required (Authorization: Basic)")
        try:
            username, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise BillingError(401, "malformed Basic credentials") from None
        key = (username.strip().lower(), hashlib.sha256(password.encode()).hexdigest())
        hit = self._seen.get(key)
        known = hit[1] if hit is not None and time.monotonic() - hit[0] < _AUTH_CACHE_S else None
        origin = journal.Origin(
            request.client.host if request.client else "", request.headers.get("user-agent", "")[:300]
        )
        try:
            account = await sessions.authenticate(
                self.core,
                username,
                password,
                origin,
                where=f"HTTP Basic on {request.url.path}",
                known_hash=known,
            )
        except sessions.LoginRefused as exc:
            self._seen.pop(key, None)
            if exc.blocked:
                raise BillingError(403, f"the account is blocked by the operator: {exc}") from None
            raise BillingError(
                401, str(exc) if str(exc).startswith("Too many") else "wrong username or password"
            ) from None
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (time.monotonic(), account.password_hash)
        return account


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BillingError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BillingError(400, "body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise BillingError(400, f"'{key}' must be a non-empty string")
    return value


def _int(data: dict[str, Any], key: str, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_ID:
        raise BillingError(400, f"'{key}' must be an integer (64-bit)")
    return value


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BillingError(400, f"'{key}' must be true or false")
    return value


def _date(value: Any, key: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BillingError(400, f"'{key}' must be a date (YYYY-MM-DD)")
    try:
        return dates.parse_date(value)
    except ValueError as exc:
        raise BillingError(400, str(exc)) from None


Handler = Callable[[Request], Awaitable[Any]]


def build_router(core: Core) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["licensing"], responses=ERROR_RESPONSES)
    auth = Auth(core)

    async def _journal_foreign(request: Request, account: Account, message: str) -> None:
        await _journal_foreign_in(core, request, account, message)

    def endpoint(role: str | None) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        """Wrap a handler: authenticate (role None = public), map BillingError to JSON errors."""

        def wrap(fn: Callable[..., Awaitable[Any]]) -> Handler:
            async def run(request: Request) -> Any:
                try:
                    if role is None:
                        result = await fn(request)
                    else:
                        account = await auth.account(request)
                        measure = core.moderation.of(account)
                        if measure is not None and measure.locks_out:
                            raise BillingError(
                                403, f"the account is blocked by the operator: {measure.reason}"
                            )
                        if role == accounts.OPERATOR and not account.is_operator:
                            raise BillingError(403, "operator only")
                        if role == accounts.LICENSEE and account.is_operator:
                            raise BillingError(403, "licensee accounts only")
                        if not account.is_operator and not account.can("billing"):
                            raise BillingError(403, "billing needs the owner or admin role of the team")
                        try:
                            result = await fn(request, account)
                        except BillingError as exc:
                            if exc.status == 404 and request.path_params and not account.is_operator:
                                await _journal_foreign(request, account, exc.message)
                            raise
                except BillingError as exc:
                    headers = {"WWW-Authenticate": 'Basic realm="verdigris"'} if exc.status == 401 else None
                    return _error(exc.status, exc.message, headers)
                return result if isinstance(result, Response) else _json(result)

            run.__name__ = fn.__name__
            run.__doc__ = fn.__doc__
            return run

        return wrap

    def add(
        path: str, verb: str, role: str | None, summary: str
    ) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        def register(fn: Callable[..., Awaitable[Any]]) -> Any:
            router.add_api_route(path, endpoint(role)(fn), methods=[verb], summary=summary)
            return fn

        return register

    # --- public -------------------------------------------------------------------------------------

    @add("/tariffs", "GET", None, "Public tariff list (current versions)")
    async def public_tariffs(request: Request) -> Any:
        return {"tariffs": await service.list_tariffs(core), "operator": service.requisites(core)}

    @add("/requisites", "GET", None, "The operator's requisites (T-27)")
    async def public_requisites(request: Request) -> Any:
        return service.requisites(core)

    @add("/payments/callback/{provider}", "POST", None, "Signed payment-provider callback")
    async def payment_callback(request: Request) -> Any:
        name = request.path_params["provider"]
        provider = SignedCallbackProvider(
            name, core.settings.payment_callback_secret, core.settings.payment_callback_tolerance_seconds
        )
        raw = await request.body()
        try:
            event = provider.parse_callback({k.lower(): v for k, v in request.headers.items()}, raw)
        except CallbackError as exc:
            return _error(exc.status, exc.message)
        if event.status != "succeeded":
            return {"result": "ignored", "status": event.status}
        invoice_id = await billing.find_invoice_id(core, event.invoice_number)
        if invoice_id is None:
            raise BillingError(404, f"no invoice {event.invoice_number}")
        invoice = await billing.record_payment(
            core,
            invoice_id,
            method=f"provider:{name}"[:32],
            reference=event.reference,
            amount=event.amount,
            currency=event.currency,
        )
        return {"result": "duplicate" if invoice.get("duplicate") else "paid", "invoice": invoice}

    # --- licensee ------------------------------------------------------------------------------------

    @add("/billing", "GET", "any", "Billing section: licenses, quotas, invoices, payments (T-06)")
    async def billing_section(request: Request, account: Account) -> Any:
        return await reports.overview(core, account.tenant)

    @add("/notices", "GET", "any", "Service notices of the account (expiry reminders, transfers)")
    async def notices(request: Request, account: Account) -> Any:
        return {"notices": await service.list_notices(core, account.tenant)}

    async def _own_instance(account: Account, instance_id: int) -> None:
        if account.is_operator:
            return
        rec = await core.instances.get(instance_id)
        if rec is None or rec.account_id != account.tenant:
            raise BillingError(404, f"no instance {instance_id}")

    @add("/instances/{instance_id}/license", "GET", "any", "License state and quotas of an instance")
    async def instance_license(request: Request, account: Account) -> Any:
        instance_id = _path_int(request, "instance_id")
        await _own_instance(account, instance_id)
        return await service.instance_status(core, instance_id)

    @add("/instances/{instance_id}/license", "POST", accounts.LICENSEE, "Start a free or trial license")
    async def start_free(request: Request, account: Account) -> Any:
        data = await _body(request)
        return await service.start_free(
            core, account.tenant, _path_int(request, "instance_id"), str(_str(data, "tariff"))
        )

    @add("/invoices", "POST", accounts.LICENSEE, "Issue an invoice (offer) for tariffs of instances")
    async def issue(request: Request, account: Account) -> Any:
        data = await _body(request)
        items = data.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BillingError(400, "'items' must be a list of {instanceId, tariff, periods}")
        invoice = await billing.issue_invoice(
            core, account.tenant, items, promo_code=_str(data, "promoCode", required=False)
        )
        return _json(invoice, 201)

    @add("/invoices", "GET", "any", "Invoices (the licensee's own; all for the operator)")
    async def invoices(request: Request, account: Account) -> Any:
        owner = None if account.is_operator else account.tenant
        return {"invoices": await billing.list_invoices(core, owner)}

    def _owner(account: Account) -> int | None:
        return None if account.is_operator else account.tenant

    @add("/invoices/{invoice_id}", "GET", "any", "One invoice")
    async def invoice(request: Request, account: Account) -> Any:
        return await billing.get_invoice(core, _path_int(request, "invoice_id"), _owner(account))

    @add("/invoices/{invoice_id}/pdf", "GET", "any", "The invoice as a PDF")
    async def invoice_pdf(request: Request, account: Account) -> Any:
        data = await billing.get_invoice(core, _path_int(request, "invoice_id"), _owner(account))
        pdf = await asyncio.to_thread(render_invoice, data, core.settings.operator_timezone)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{data["number"]}.pdf"'},
        )

    @add("/invoices/{invoice_id}/cancel", "POST", "any", "Withdraw an unpaid invoice")
    async def cancel(request: Request, account: Account) -> Any:
        return await billing.cancel_invoice(core, _path_int(request, "invoice_id"), _owner(account))

    @add(
        "/instances/{instance_id}/plan-change/preview",
        "POST",
        accounts.LICENSEE,
        "Preview a plan change (T-04)",
    )
    async def plan_preview(request: Request, account: Account) -> Any:
        data = await _body(request)
        return await billing.preview_plan_change(
            core,
            account.tenant,
            _path_int(request, "instance_id"),
            str(_str(data, "tariff")),
            promo_code=_str(data, "promoCode", required=False),
        )

    @add(
        "/instances/{instance_id}/plan-change",
        "POST",
        accounts.LICENSEE,
        "Confirm a plan change: issues its invoice",
    )
    async def plan_change(request: Request, account: Account) -> Any:
        data = await _body(request)
        result = await billing.request_plan_change(
            core,
            account.tenant,
            _path_int(request, "instance_id"),
            str(_str(data, "tariff")),
            promo_code=_str(data, "promoCode", required=False),
        )
        return _json(result, 201)

    @add("/transfers", "POST", accounts.LICENSEE, "Request a transfer of rights (T-08)")
    async def transfer(request: Request, account: Account) -> Any:
        data = await _body(request)
        ids = data.get("licenseIds")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise BillingError(400, "'licenseIds' must be a list of integers")
        result = await transfers.request_transfer(core, account.tenant, str(_str(data, "toUsername")), ids)
        return _json(result, 201)

    @add("/transfers", "GET", "any", "Transfers of the account (all for the operator)")
    async def my_transfers(request: Request, account: Account) -> Any:
        return {"transfers": await transfers.list_transfers(core, _owner(account))}

    @add("/transfers/{transfer_id}/accept", "POST", accounts.LICENSEE, "The receiver accepts the agreement")
    async def accept(request: Request, account: Account) -> Any:
        return await transfers.accept_transfer(core, account.tenant, _path_int(request, "transfer_id"))

    # --- operator --------------------------------------------------------------------------------------

    @add("/operator/tariffs", "GET", accounts.OPERATOR, "All tariffs, with every version")
    async def op_tariffs(request: Request, account: Account) -> Any:
        return {"tariffs": await service.list_tariffs(core, public_only=False, all_versions=True)}

    @add("/operator/tariffs", "POST", accounts.OPERATOR, "Publish a tariff or a new version of it")
    async def op_publish(request: Request, account: Account) -> Any:
        data = await _body(request)
        period = data.get("period") or {"unit": "month", "count": 1}
        if not isinstance(period, dict):
            raise BillingError(400, "'period' must be {unit, count}")
        features = data.get("features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise BillingError(400, "'features' must be a list of strings")
        tariff = await service.publish_tariff(
            core,
            code=str(_str(data, "code")),
            name=str(_str(data, "name")),
            price=data.get("price", "0"),
            currency=str(data.get("currency") or "USD"),
            period_unit=str(period.get("unit", "month")),
            period_count=period.get("count", 1),
            kind=str(data.get("kind") or "paid"),
            trial_days=_int(data, "trialDays", required=False) or 0,
            limits=data.get("limits"),
            features=features,
            public=_bool(data, "public", True),
            description=str(data.get("description") or ""),
        )
        return _json(tariff, 201)

    @add(
        "/operator/tariffs/{code}", "DELETE", accounts.OPERATOR, "Withdraw a tariff (existing licenses stay)"
    )
    async def op_withdraw(request: Request, account: Account) -> Any:
        await service.withdraw_tariff(core, request.path_params["code"])
        return {"result": True}

    @add("/operator/policy", "GET", accounts.OPERATOR, "What unlicensed instances may do")
    async def op_policy(request: Request, account: Account) -> Any:
        return await service.get_policy(core)

    @add("/operator/policy", "PUT", accounts.OPERATOR, "Set the unlicensed policy")
    async def op_set_policy(request: Request, account: Account) -> Any:
        data = await _body(request)
        return await service.set_policy(core, str(_str(data, "unlicensed")))

    @add("/operator/invoices/{invoice_id}/mark-paid", "POST", accounts.OPERATOR, "Record a bank transfer")
    async def op_mark_paid(request: Request, account: Account) -> Any:
        data = await _body(request)
        invoice_id = _path_int(request, "invoice_id")
        reference = _str(data, "reference", required=False) or f"manual-{invoice_id}"
        return await billing.record_payment(
            core,
            invoice_id,
            method="manual",
            reference=reference,
            amount=data.get("amount"),
            currency=_str(data, "currency", required=False),
            recorded_by=account.id,
        )

    @add("/operator/payments", "GET", accounts.OPERATOR, "Payments of every invoice")
    async def op_payments(request: Request, account: Account) -> Any:
        invoices_all = await billing.list_invoices(core, None)
        return {"payments": [p for inv in invoices_all for p in inv["payments"]]}

    @add("/operator/licenses", "GET", accounts.OPERATOR, "Every license")
    async def op_licenses(request: Request, account: Account) -> Any:
        return {"licenses": await reports.account_licenses(core, None)}

    @add("/operator/licenses", "POST", accounts.OPERATOR, "Grant a license by hand")
    async def op_grant(request: Request, account: Account) -> Any:
        data = await _body(request)
        result = await service.grant(
            core,
            instance_id=int(_int(data, "instanceId") or 0),
            code=str(_str(data, "tariff")),
            starts_on=_date(data.get("startsOn"), "startsOn"),
            days=_int(data, "days", required=False),
            periods=_int(data, "periods", required=False),
            unlimited=_bool(data, "unlimited", False),
        )
        return _json(result, 201)

    @add("/operator/licenses/{license_id}/extend", "POST", accounts.OPERATOR, "Extend a license by days")
    async def op_extend(request: Request, account: Account) -> Any:
        data = await _body(request)
        return await service.extend(core, _path_int(request, "license_id"), int(_int(data, "days") or 0))

    @add("/operator/licenses/{license_id}/revoke", "POST", accounts.OPERATOR, "End a license now")
    async def op_revoke(request: Request, account: Account) -> Any:
        return await service.revoke(core, _path_int(request, "license_id"))

    @add("/operator/revenue", "GET", accounts.OPERATOR, "Revenue per period (?from=&to=, local dates)")
    async def op_revenue(request: Request, account: Account) -> Any:
        start = _date(request.query_params.get("from"), "from")
        end = _date(request.query_params.get("to"), "to")
        if start is None or end is None:
            raise BillingError(400, "'from' and 'to' (YYYY-MM-DD) are required")
        return await reports.revenue(core, start, end)

    @add("/operator/loyalty-rules", "GET", accounts.OPERATOR, "Loyalty rules")
    async def op_rules(request: Request, account: Account) -> Any:
        return {"rules": await billing.list_rules(core)}

    @add("/operator/loyalty-rules", "POST", accounts.OPERATOR, "Create a loyalty rule (T-07)")
    async def op_create_rule(request: Request, account: Account) -> Any:
        data = await _body(request)
        tiers = data.get("tiers") or []
        if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
            raise BillingError(400, "'tiers' must be a list of {minQuantity, percent}")
        rule = await billing.create_rule(
            core,
            name=str(_str(data, "name")),
            kind=str(_str(data, "kind")),
            effect=str(data.get("effect") or "discount"),
            value=data.get("value", "0"),
            tiers=tiers,
            promo_code=_str(data, "promoCode", required=False),
            tariff_code=_str(data, "tariffCode", required=False),
            priority=_int(data, "priority", required=False) or 100,
        )
        return _json(rule, 201)

    @add("/operator/loyalty-rules/{rule_id}", "DELETE", accounts.OPERATOR, "Deactivate a loyalty rule")
    async def op_drop_rule(request: Request, account: Account) -> Any:
        await billing.deactivate_rule(core, _path_int(request, "rule_id"))
        return {"result": True}

    @add("/operator/transfers/{transfer_id}/approve", "POST", accounts.OPERATOR, "Approve a transfer")
    async def op_approve(request: Request, account: Account) -> Any:
        return await transfers.decide_transfer(core, account.id, _path_int(request, "transfer_id"), True)

    @add("/operator/transfers/{transfer_id}/reject", "POST", accounts.OPERATOR, "Reject a transfer")
    async def op_reject(request: Request, account: Account) -> Any:
        return await transfers.decide_transfer(core, account.id, _path_int(request, "transfer_id"), False)

    return router


async def _journal_foreign_in(core: Core, request: Request, account: Account, message: str) -> None:
    """An id that is not the account's (or does not exist) is refused as 404 and journalled, as
    the console does for instances: a tenant probing another's invoices or transfers is seen."""
    origin = journal.Origin(
        request.client.host if request.client else "", request.headers.get("user-agent", "")[:300]
    )
    await journal.note(
        core,
        journal.FOREIGN_OBJECT,
        ok=False,
        origin=origin,
        account=account,
        detail=f"{request.method} {request.url.path[:200]}: {message[:200]}",
    )


def _path_int(request: Request, name: str) -> int:
    value = str(request.path_params.get(name, ""))
    # ASCII digits only ("²".isdigit() is true, int() refuses it), within the id column's range.
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) > MAX_ID:
        raise BillingError(404, f"not found: {value[:40]}")
    return int(value)
