"""The operator's announcements (T-20) and the unsubscribe page their marketing mails link to."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from verdigris.accounts import registration as accounts_registration
from verdigris.accounts import service as accounts
from verdigris.compliance import announcements
from verdigris.compliance.announcements import AnnouncementError
from verdigris.console.web import Ctx, Forbidden, FormSpec, Web
from verdigris.core import Core
from verdigris.errors import ServiceError
from verdigris.words import plural

WRITE_FORM = FormSpec(("kind", "subject", "text", "test_to"), name="announce")


class AnnouncementPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    def _operator(self, ctx: Ctx) -> None:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")

    async def page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        self._operator(ctx)
        return self.web.show(
            ctx,
            "announcements.html",
            refusal,
            form,
            status=status,
            error=error,
            items=await announcements.list_all(self.core),
            counts=await announcements.count_recipients(self.core),
        )

    async def send(self, ctx: Ctx) -> Response:
        """Three steps, none of them one click from everyone's inbox: *Preview* shows the mail as
        recipients read it and how many they are; *Send a test to me* mails the operator alone;
        only the preview's *Send to N users*, ticked as confirmed, sends to everyone."""
        self._operator(ctx)
        fields = {"kind": ctx.field("kind"), "subject": ctx.field("subject"), "text": ctx.field("text")}
        action = ctx.field("action", "preview")
        try:
            if action == "test":
                address = await announcements.send_test(
                    self.core, ctx.account, ctx.field("test_to"), **fields
                )
                return await self._preview(ctx, f"A test went to {address}; nobody else received it.")
            if action != "send" or ctx.field("confirmed") != "yes":
                return await self._preview(ctx)
            result = await announcements.create(self.core, ctx.account, **fields)
        except AnnouncementError as exc:
            return await self.page(ctx, refusal=exc, form=WRITE_FORM)
        return self.web.redirect(
            ctx,
            "/operator/announcements",
            f"Sending to {plural(result['recipients'], 'user')} ({result['kind']}).",
        )

    async def _preview(self, ctx: Ctx, note: str = "") -> Response:
        shown = await announcements.preview(
            self.core,
            ctx.account,
            kind=ctx.field("kind"),
            subject=ctx.field("subject"),
            text=ctx.field("text"),
        )
        return self.web.render(
            ctx,
            "announcements.html",
            items=await announcements.list_all(self.core),
            counts=await announcements.count_recipients(self.core),
            posted=WRITE_FORM.name,  # the draft stays in its fields
            preview=shown,
            flash=note,
        )

    async def unsubscribe_form(self, ctx: Ctx) -> Response:
        account_id = await announcements.account_of_token(self.core, ctx.param("token"))
        if account_id is None:
            return self.web.problem(ctx, 404, "Link not valid", "This unsubscribe link is not one of ours.")
        return self.web.render(ctx, "unsubscribe.html", token=ctx.param("token"), done=False)

    async def unsubscribe(self, ctx: Ctx) -> Response:
        account_id = await announcements.account_of_token(self.core, ctx.param("token"))
        account = await accounts.get_account(self.core, account_id) if account_id is not None else None
        if account is None:
            return self.web.problem(ctx, 404, "Link not valid", "This unsubscribe link is not one of ours.")
        await accounts_registration.set_marketing_consent(self.core, account, False, ctx.origin)
        return self.web.render(ctx, "unsubscribe.html", token=ctx.param("token"), done=True)

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/operator/announcements", page(self.page)),
            ("POST", "/operator/announcements", page(self.send)),
            ("GET", "/unsubscribe/{token}", page(self.unsubscribe_form, login=False)),
            ("POST", "/unsubscribe/{token}", page(self.unsubscribe, login=False)),
        ]
