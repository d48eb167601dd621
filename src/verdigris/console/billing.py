"""Billing in the console: the public tariff page, the licensee's billing section (T-06) and the
operator's billing desk (tariffs, invoices and payments, licenses, loyalty rules, transfers,
revenue).

The pages call the same services as the JSON API (``verdigris.licensing``); a refused action
re-renders its page with the service's message and status and changes nothing. A licensee works on
its team's licenses (the tenant) and needs the ``billing`` permission (owner, admin).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import orjson
from starlette.responses import Response

from verdigris.accounts.policy import Checks
from verdigris.console.web import Ctx, Forbidden, FormSpec, NotFound, Web
from verdigris.core import Core
from verdigris.errors import ServiceError
from verdigris.licensing import billing, dates, reports, service, transfers
from verdigris.licensing.pdf import render_invoice
from verdigris.licensing.service import BillingError
from verdigris.store.clock import now_ms

TRANSFER_FORM = FormSpec(("license", "to"), name="transfer")


def _int(raw: str, what: str, default: int | None = None) -> int:
    raw = raw.strip()
    if not raw and default is not None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BillingError(400, f"{what} must be a whole number")
    return int(raw)


def _optional_int(raw: str, what: str) -> int | None:
    return _int(raw, what) if raw.strip() else None


def _date(raw: str, what: str) -> date | None:
    if not raw.strip():
        return None
    try:
        return dates.parse_date(raw.strip())
    except ValueError as exc:
        raise BillingError(400, f"{what}: {exc}") from None


def _json_field(raw: str, what: str, default: Any) -> Any:
    if not raw.strip():
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BillingError(400, f"{what} is not valid JSON") from None


class BillingPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    # --- helpers ---------------------------------------------------------------------------------

    def _tenant(self, ctx: Ctx) -> int:
        if ctx.account.is_operator:
            raise Forbidden("the operator's billing desk is at /operator/billing")
        self.web.require(ctx, "billing")
        return ctx.account.tenant

    def _operator(self, ctx: Ctx) -> None:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")

    def _id(self, ctx: Ctx, name: str) -> int:
        raw = ctx.param(name)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise NotFound()
        return int(raw)

    def _today(self) -> str:
        return dates.local_date(now_ms(), dates.zone(self.core.settings.operator_timezone)).isoformat()

    # --- public tariff page ----------------------------------------------------------------------

    async def tariffs_page(self, ctx: Ctx) -> Response:
        return self.web.render(
            ctx,
            "tariffs.html",
            tariffs=await service.list_tariffs(self.core),
            operator=service.requisites(self.core),
        )

    # --- the licensee's billing section ------------------------------------------------------------

    async def section(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        owner = self._tenant(ctx)
        overview = await reports.overview(self.core, owner)
        names = {i["instanceId"]: i for i in overview["instances"]}
        tariff_list = await service.list_tariffs(self.core)
        incoming = [t for t in overview["transfers"] if t["toAccount"] == owner and t["status"] == "approved"]
        form_data = await ctx.request.form() if ctx.request.method == "POST" else None
        return self.web.show(
            ctx,
            "billing.html",
            refusal,
            form,
            chosen=[str(v) for v in form_data.getlist("license")] if form_data else [],
            status=status,
            error=error,
            overview=overview,
            statuses=names,
            names=await self._names([i["instanceId"] for i in overview["instances"]]),
            paid=[t for t in tariff_list if t["kind"] == "paid"],
            free=[t for t in tariff_list if t["kind"] != "paid"],
            notices=(await service.list_notices(self.core, owner))[:20],
            incoming=incoming,
            today=self._today(),
            zone=self.core.settings.operator_timezone,
            now=now_ms(),
        )

    async def _names(self, ids: list[int]) -> dict[int, str]:
        """Instance names, so billing names instances as the user does."""
        found = [await self.core.instances.get(i) for i in ids]
        return {rec.id: rec.name for rec in found if rec is not None}

    async def start_free(self, ctx: Ctx) -> Response:
        owner = self._tenant(ctx)
        instance_id = self._id(ctx, "instance_id")

        async def run() -> Response:
            lic = await service.start_free(self.core, owner, instance_id, ctx.field("tariff"))
            return self.web.redirect(
                ctx, "/billing", f"{lic['tariff']['name']} started on instance {instance_id}."
            )

        return await self.web.attempt(ctx, run, self.section)

    async def buy(self, ctx: Ctx) -> Response:
        owner = self._tenant(ctx)

        async def run() -> Response:
            checks = Checks()  # every error of the form at once, before the service is asked
            instance = _int(ctx.field("instance"), "instance")
            periods = ctx.field("periods").strip() or "1"
            if not (periods.isascii() and periods.isdigit() and 1 <= int(periods[:4]) <= 120):
                checks.refuse(
                    BillingError(
                        400,
                        "periods: a whole number from 1 to 120",
                        errors={"periods": "a whole number from 1 to 120"},
                    )
                )
            promo = ctx.field("promo").strip() or None
            try:
                await billing.check_promo_code(self.core, promo)
            except BillingError as exc:
                checks.refuse(exc)
            checks.done(BillingError)
            item = {"instanceId": instance, "tariff": ctx.field("tariff"), "periods": int(periods)}
            invoice = await billing.issue_invoice(self.core, owner, [item], promo_code=promo)
            return self.web.redirect(
                ctx, f"/billing/invoices/{invoice['id']}", f"Invoice {invoice['number']} issued."
            )

        form = FormSpec(("tariff", "periods", "promo"), name=f"buy-{ctx.field('instance').strip()[:18]}")
        return await self.web.attempt(ctx, run, self.section, form)

    async def change_preview(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        owner = self._tenant(ctx)
        instance_id = self._id(ctx, "instance_id")
        query = ctx.request.query_params
        code = ctx.field("tariff") or query.get("tariff", "")
        promo = (ctx.field("promo") or query.get("promo", "")).strip()
        try:
            preview = await billing.preview_plan_change(
                self.core, owner, instance_id, code, promo_code=promo or None
            )
        except BillingError as exc:
            return await self.section(ctx, exc.message, exc.status)
        return self.web.render(
            ctx,
            "billing_change.html",
            status=status,
            error=error,
            preview=preview,
            promo=promo,
            zone=self.core.settings.operator_timezone,
        )

    async def change_confirm(self, ctx: Ctx) -> Response:
        owner = self._tenant(ctx)
        instance_id = self._id(ctx, "instance_id")

        async def run() -> Response:
            result = await billing.request_plan_change(
                self.core,
                owner,
                instance_id,
                ctx.field("tariff"),
                promo_code=ctx.field("promo").strip() or None,
            )
            invoice = result["invoice"]
            return self.web.redirect(
                ctx,
                f"/billing/invoices/{invoice['id']}",
                f"Invoice {invoice['number']} issued for the plan change; "
                "the extension is computed again on the day it is paid.",
            )

        return await self.web.attempt(ctx, run, self.change_preview)

    def _invoice_owner(self, ctx: Ctx) -> int | None:
        return None if ctx.account.is_operator else self._tenant(ctx)

    async def invoice_page(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        owner = self._invoice_owner(ctx)
        try:
            invoice = await billing.get_invoice(self.core, self._id(ctx, "invoice_id"), owner)
        except BillingError:
            raise NotFound() from None
        return self.web.render(
            ctx,
            "billing_invoice.html",
            status=status,
            error=error,
            invoice=invoice,
            operator_view=ctx.account.is_operator,
        )

    async def invoice_pdf(self, ctx: Ctx) -> Response:
        owner = self._invoice_owner(ctx)
        try:
            invoice = await billing.get_invoice(self.core, self._id(ctx, "invoice_id"), owner)
        except BillingError:
            raise NotFound() from None
        pdf = await asyncio.to_thread(render_invoice, invoice, self.core.settings.operator_timezone)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{invoice["number"]}.pdf"'},
        )

    async def cancel_invoice(self, ctx: Ctx) -> Response:
        owner = self._invoice_owner(ctx)
        invoice_id = self._id(ctx, "invoice_id")

        async def run() -> Response:
            invoice = await billing.cancel_invoice(self.core, invoice_id, owner)
            return self.web.redirect(
                ctx, f"/billing/invoices/{invoice_id}", f"{invoice['number']} withdrawn."
            )

        return await self.web.attempt(ctx, run, self.invoice_page)

    async def request_transfer(self, ctx: Ctx) -> Response:
        owner = self._tenant(ctx)

        async def run() -> Response:
            form = await ctx.request.form()
            ids = [_int(str(v), "license") for v in form.getlist("license")]
            to = ctx.field("to").strip()
            checks = Checks()
            if not ids:
                checks.refuse(BillingError(400, "choose at least one license to transfer", field="license"))
            if not to:
                checks.refuse(BillingError(400, "give the username of the receiving account", field="to"))
            checks.done(BillingError)
            result = await transfers.request_transfer(self.core, owner, to, ids)
            return self.web.redirect(
                ctx,
                "/billing",
                f"Transfer {result['id']} requested; it waits for the operator's approval.",
            )

        return await self.web.attempt(ctx, run, self.section, TRANSFER_FORM)

    async def accept_transfer(self, ctx: Ctx) -> Response:
        owner = self._tenant(ctx)
        transfer_id = self._id(ctx, "transfer_id")

        async def run() -> Response:
            await transfers.accept_transfer(self.core, owner, transfer_id)
            return self.web.redirect(ctx, "/billing", "Transfer accepted: the licenses are yours now.")

        return await self.web.attempt(ctx, run, self.section)

    # --- the operator's billing desk --------------------------------------------------------------

    async def desk(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        self._operator(ctx)
        today = dates.parse_date(self._today())
        query = ctx.request.query_params
        try:
            start = _date(query.get("from", ""), "from") or today.replace(day=1)
            end = _date(query.get("to", ""), "to") or today
            revenue = await reports.revenue(self.core, start, end)
        except BillingError as exc:
            error, status = exc.message, exc.status
            start, end = today.replace(day=1), today
            revenue = await reports.revenue(self.core, start, end)
        invoice_list = await billing.list_invoices(self.core, None)
        invoice_list.sort(key=lambda i: (i["status"] != "issued", -i["id"]))
        return self.web.render(
            ctx,
            "operator_billing.html",
            status=status,
            error=error,
            revenue=revenue,
            tariffs=await service.list_tariffs(self.core, public_only=False, all_versions=True),
            invoices=invoice_list[:200],
            licenses=(await reports.account_licenses(self.core, None))[-200:],
            rules=await billing.list_rules(self.core),
            transfers=await transfers.list_transfers(self.core, None),
            policy=await service.get_policy(self.core),
            zone=self.core.settings.operator_timezone,
            now=now_ms(),
        )

    async def _desk_action(self, ctx: Ctx, action: Any) -> Response:
        self._operator(ctx)

        async def run() -> Response:
            message = await action()
            return self.web.redirect(ctx, "/operator/billing", message)

        return await self.web.attempt(ctx, run, self.desk)

    async def publish_tariff(self, ctx: Ctx) -> Response:
        async def run() -> str:
            features = [f.strip() for f in ctx.field("features").split(",") if f.strip()]
            tariff = await service.publish_tariff(
                self.core,
                code=ctx.field("code").strip(),
                name=ctx.field("name").strip(),
                price=ctx.field("price").strip() or "0",
                currency=ctx.field("currency").strip().upper() or "USD",
                period_unit=ctx.field("period_unit", "month"),
                period_count=_int(ctx.field("period_count"), "period count", 1),
                kind=ctx.field("kind", "paid"),
                trial_days=_int(ctx.field("trial_days"), "trial days", 0),
                limits=_json_field(ctx.field("limits"), "limits", None),
                features=features,
                public=ctx.checked("public"),
                description=ctx.field("description").strip(),
            )
            return f"Tariff {tariff['code']} version {tariff['version']} published."

        return await self._desk_action(ctx, run)

    async def withdraw_tariff(self, ctx: Ctx) -> Response:
        async def run() -> str:
            await service.withdraw_tariff(self.core, ctx.param("code"))
            return f"Tariff {ctx.param('code')} withdrawn; its licenses stay."

        return await self._desk_action(ctx, run)

    async def mark_paid(self, ctx: Ctx) -> Response:
        """Record a bank transfer: the reference is required, and a confirmation page shows what
        will be recorded (the payment cannot be undone) before anything changes."""
        invoice_id = self._id(ctx, "invoice_id")
        reference = ctx.field("reference").strip()
        if ctx.field("confirm") != "yes":
            self._operator(ctx)
            if not reference:
                return await self.desk(
                    ctx,
                    "Not marked paid: give the bank reference of the transfer (it is kept with the payment).",
                    400,
                )
            try:
                invoice = await billing.get_invoice(self.core, invoice_id)
            except BillingError as exc:
                return await self.desk(ctx, exc.message, exc.status)
            return self.web.render(
                ctx,
                "operator_confirm_paid.html",
                invoice=invoice,
                reference=reference,
                amount=ctx.field("amount"),
            )

        async def run() -> str:
            if not reference:
                raise BillingError(400, "Not marked paid: give the bank reference of the transfer.")
            invoice = await billing.record_payment(
                self.core,
                invoice_id,
                method="manual",
                reference=reference,
                amount=ctx.field("amount").strip() or None,
                currency=None,
                recorded_by=ctx.account.id,
            )
            return f"{invoice['number']} marked paid; its licenses start the day after today."

        return await self._desk_action(ctx, run)

    async def grant(self, ctx: Ctx) -> Response:
        async def run() -> str:
            lic = await service.grant(
                self.core,
                instance_id=_int(ctx.field("instance"), "instance"),
                code=ctx.field("tariff").strip(),
                starts_on=_date(ctx.field("starts_on"), "starts on"),
                days=_optional_int(ctx.field("days"), "days"),
                unlimited=ctx.checked("unlimited"),
            )
            return f"License {lic['id']} granted to instance {lic['instanceId']}."

        return await self._desk_action(ctx, run)

    async def extend(self, ctx: Ctx) -> Response:
        license_id = self._id(ctx, "license_id")

        async def run() -> str:
            lic = await service.extend(self.core, license_id, _int(ctx.field("days"), "days"))
            return f"License {license_id} now ends on {lic['endsOn']}."

        return await self._desk_action(ctx, run)

    async def revoke(self, ctx: Ctx) -> Response:
        license_id = self._id(ctx, "license_id")

        async def run() -> str:
            await service.revoke(self.core, license_id)
            return f"License {license_id} revoked."

        return await self._desk_action(ctx, run)

    async def create_rule(self, ctx: Ctx) -> Response:
        async def run() -> str:
            tiers = _json_field(ctx.field("tiers"), "tiers", [])
            if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
                raise BillingError(400, "tiers must be a JSON list of {minQuantity, percent}")
            rule = await billing.create_rule(
                self.core,
                name=ctx.field("name"),
                kind=ctx.field("kind"),
                effect=ctx.field("effect", "discount"),
                value=ctx.field("value").strip() or "0",
                tiers=tiers,
                promo_code=ctx.field("promo").strip() or None,
                tariff_code=ctx.field("tariff").strip() or None,
                priority=_int(ctx.field("priority"), "priority", 100),
            )
            return f"Loyalty rule {rule['name']!r} created."

        return await self._desk_action(ctx, run)

    async def deactivate_rule(self, ctx: Ctx) -> Response:
        rule_id = self._id(ctx, "rule_id")

        async def run() -> str:
            await billing.deactivate_rule(self.core, rule_id)
            return f"Loyalty rule {rule_id} deactivated."

        return await self._desk_action(ctx, run)

    async def decide_transfer(self, ctx: Ctx) -> Response:
        transfer_id = self._id(ctx, "transfer_id")
        approve = ctx.param("decision") == "approve"

        async def run() -> str:
            await transfers.decide_transfer(self.core, ctx.account.id, transfer_id, approve)
            return f"Transfer {transfer_id} {'approved' if approve else 'rejected'}."

        return await self._desk_action(ctx, run)

    async def set_policy(self, ctx: Ctx) -> Response:
        async def run() -> str:
            policy = await service.set_policy(self.core, ctx.field("unlicensed").strip())
            return f"Unlicensed instances: {policy['unlicensed']}."

        return await self._desk_action(ctx, run)

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/tariffs", page(self.tariffs_page, login=False)),
            ("GET", "/billing", page(self.section)),
            ("POST", "/billing/instances/{instance_id}/start", page(self.start_free)),
            ("POST", "/billing/buy", page(self.buy)),
            ("GET", "/billing/instances/{instance_id}/change", page(self.change_preview)),
            ("POST", "/billing/instances/{instance_id}/change", page(self.change_confirm)),
            ("GET", "/billing/invoices/{invoice_id}", page(self.invoice_page)),
            ("GET", "/billing/invoices/{invoice_id}/pdf", page(self.invoice_pdf)),
            ("POST", "/billing/invoices/{invoice_id}/cancel", page(self.cancel_invoice)),
            ("POST", "/billing/transfers", page(self.request_transfer)),
            ("POST", "/billing/transfers/{transfer_id}/accept", page(self.accept_transfer)),
            ("GET", "/operator/billing", page(self.desk)),
            ("POST", "/operator/billing/tariffs", page(self.publish_tariff)),
            ("POST", "/operator/billing/tariffs/{code}/withdraw", page(self.withdraw_tariff)),
            ("POST", "/operator/billing/invoices/{invoice_id}/paid", page(self.mark_paid)),
            ("POST", "/operator/billing/licenses", page(self.grant)),
            ("POST", "/operator/billing/licenses/{license_id}/extend", page(self.extend)),
            ("POST", "/operator/billing/licenses/{license_id}/revoke", page(self.revoke)),
            ("POST", "/operator/billing/rules", page(self.create_rule)),
            ("POST", "/operator/billing/rules/{rule_id}/deactivate", page(self.deactivate_rule)),
            ("POST", "/operator/billing/transfers/{transfer_id}/{decision}", page(self.decide_transfer)),
            ("POST", "/operator/billing/policy", page(self.set_policy)),
        ]
