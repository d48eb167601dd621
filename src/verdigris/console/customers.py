"""The customer database and campaigns in the console (T-21, T-22).

Every team member sees the team's contacts and campaigns; owners, admins and developers change
them (the ``customers`` permission). A refused action re-renders its page with the reason and the
status, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from verdigris.console.web import Ctx, FormSpec, NotFound, Web
from verdigris.core import Core
from verdigris.customers import campaigns
from verdigris.customers import service as customers
from verdigris.customers.service import CustomerError
from verdigris.errors import ServiceError
from verdigris.instances import service as instances

MAX_CSV_BYTES = 10 * 1024 * 1024

# The forms of these pages, as a refusal shows them (each error at its field).
CONTACT_FORM = FormSpec(("phone", "name", "tags", "note", "consent", "consent_source"), name="add")
IMPORT_FORM = FormSpec(("file",), name="import")
EDIT_FORM = FormSpec(("name", "tags", "note"), name="edit")
CONSENT_FORM = FormSpec(("source",), name="consent")
CAMPAIGN_FORM = FormSpec(("name", "instance", "tag", "text", "interval"), name="campaign")


class CustomerPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    def _id(self, ctx: Ctx, name: str) -> int:
        raw = ctx.param(name)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
            raise NotFound()
        return int(raw)

    async def _attempt(
        self,
        ctx: Ctx,
        action: Callable[[], Awaitable[Response]],
        back: Callable[..., Awaitable[Response]],
        form: FormSpec | None = None,
    ) -> Response:
        self.web.require(ctx, "customers")
        return await self.web.attempt(ctx, action, back, form)

    # --- contacts --------------------------------------------------------------------------------

    async def contacts_page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        query = ctx.request.query_params
        tag, search = query.get("tag", "").strip().lower()[:60], query.get("q", "").strip()[:100]
        items = await customers.list_contacts(self.core, ctx.account.tenant, tag=tag, search=search)
        return self.web.show(
            ctx,
            "customers.html",
            refusal,
            form,
            status=status,
            error=error,
            items=items,
            tag=tag,
            search=search,
        )

    async def add_contact(self, ctx: Ctx) -> Response:
        async def run() -> Response:
            contact = await customers.add_contact(
                self.core,
                ctx.account.tenant,
                phone=ctx.field("phone"),
                name=ctx.field("name"),
                tags=ctx.field("tags"),
                note=ctx.field("note"),
                consent=ctx.checked("consent"),
                consent_source=ctx.field("consent_source"),
            )
            return self.web.redirect(
                ctx, f"/customers/{contact['id']}", f"Contact +{contact['phone']} added."
            )

        return await self._attempt(ctx, run, self.contacts_page, CONTACT_FORM)

    async def import_csv(self, ctx: Ctx) -> Response:
        async def run() -> Response:
            form = await ctx.request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise CustomerError(400, "choose a CSV file", field="file")
            raw = await upload.read(MAX_CSV_BYTES + 1)
            if len(raw) > MAX_CSV_BYTES:
                raise CustomerError(400, "the file is larger than 10 MB", field="file")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CustomerError(400, "the file is not UTF-8 text", field="file") from None
            try:
                result = await customers.import_csv(self.core, ctx.account.tenant, text)
            except CustomerError as exc:  # about the file as a whole: shown at the file's field
                raise CustomerError(exc.status, exc.message, field="file") from None
            return self.web.redirect(
                ctx, "/customers", f"Imported: {result['added']} added, {result['updated']} updated."
            )

        return await self._attempt(ctx, run, self.contacts_page, IMPORT_FORM)

    async def export_csv(self, ctx: Ctx) -> Response:
        text = await customers.export_csv(self.core, ctx.account.tenant)
        return Response(
            text.encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
        )

    async def contact_page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        try:
            contact = await customers.get_contact(self.core, ctx.account.tenant, self._id(ctx, "contact_id"))
        except CustomerError:
            raise NotFound() from None
        return self.web.show(ctx, "customer.html", refusal, form, status=status, error=error, c=contact)

    async def update_contact(self, ctx: Ctx) -> Response:
        contact_id = self._id(ctx, "contact_id")

        async def run() -> Response:
            await customers.update_contact(
                self.core,
                ctx.account.tenant,
                contact_id,
                name=ctx.field("name"),
                tags=ctx.field("tags"),
                note=ctx.field("note"),
            )
            return self.web.redirect(ctx, f"/customers/{contact_id}", "Saved.")

        return await self._attempt(ctx, run, self.contact_page, EDIT_FORM)

    async def consent(self, ctx: Ctx) -> Response:
        contact_id = self._id(ctx, "contact_id")
        granted = ctx.field("granted") == "yes"

        async def run() -> Response:
            await customers.set_consent(
                self.core, ctx.account.tenant, contact_id, granted=granted, source=ctx.field("source")
            )
            return self.web.redirect(
                ctx, f"/customers/{contact_id}", "Consent recorded." if granted else "Consent withdrawn."
            )

        return await self._attempt(ctx, run, self.contact_page, CONSENT_FORM)

    async def delete_contact(self, ctx: Ctx) -> Response:
        contact_id = self._id(ctx, "contact_id")

        async def run() -> Response:
            await customers.delete_contact(self.core, ctx.account.tenant, contact_id)
            return self.web.redirect(ctx, "/customers", "Contact deleted.")

        return await self._attempt(ctx, run, self.contact_page)

    # --- campaigns -------------------------------------------------------------------------------

    async def campaigns_page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        return self.web.show(
            ctx,
            "campaigns.html",
            refusal,
            form,
            status=status,
            error=error,
            items=await campaigns.list_campaigns(self.core, ctx.account.tenant),
            instances=await instances.list_for_account(self.core, ctx.account.tenant),
            footer=self.core.settings.customers_optout_footer,
            min_interval=self.core.settings.customers_min_interval_seconds,
        )

    async def create_campaign(self, ctx: Ctx) -> Response:
        async def run() -> Response:
            campaign = await campaigns.create(
                self.core,
                ctx.account.tenant,
                instance=ctx.field("instance"),
                name=ctx.field("name"),
                text=ctx.field("text"),
                tag=ctx.field("tag"),
                interval=ctx.field("interval").strip() or "60",
            )
            return self.web.redirect(ctx, f"/campaigns/{campaign['id']}", "Campaign saved as a draft.")

        return await self._attempt(ctx, run, self.campaigns_page, CAMPAIGN_FORM)

    async def campaign_page(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        try:
            campaign = await campaigns.get(self.core, ctx.account.tenant, self._id(ctx, "campaign_id"))
        except CustomerError:
            raise NotFound() from None
        return self.web.render(ctx, "campaign.html", status=status, error=error, camp=campaign)

    async def campaign_action(self, ctx: Ctx) -> Response:
        campaign_id = self._id(ctx, "campaign_id")
        actions: dict[str, Any] = {
            "start": (campaigns.start, "Campaign started."),
            "pause": (campaigns.pause, "Campaign paused."),
            "resume": (campaigns.resume, "Campaign resumed."),
            "cancel": (campaigns.cancel, "Campaign cancelled."),
        }
        action = actions.get(ctx.param("action"))
        if action is None:
            raise NotFound()

        async def run() -> Response:
            await action[0](self.core, ctx.account.tenant, campaign_id)
            return self.web.redirect(ctx, f"/campaigns/{campaign_id}", action[1])

        return await self._attempt(ctx, run, self.campaign_page)

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/customers", page(self.contacts_page)),
            ("POST", "/customers", page(self.add_contact)),
            ("POST", "/customers/import", page(self.import_csv)),
            ("GET", "/customers/export.csv", page(self.export_csv)),
            ("GET", "/customers/{contact_id}", page(self.contact_page)),
            ("POST", "/customers/{contact_id}", page(self.update_contact)),
            ("POST", "/customers/{contact_id}/consent", page(self.consent)),
            ("POST", "/customers/{contact_id}/delete", page(self.delete_contact)),
            ("GET", "/campaigns", page(self.campaigns_page)),
            ("POST", "/campaigns", page(self.create_campaign)),
            ("GET", "/campaigns/{campaign_id}", page(self.campaign_page)),
            ("POST", "/campaigns/{campaign_id}/{action}", page(self.campaign_action)),
        ]
