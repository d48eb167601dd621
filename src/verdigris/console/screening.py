"""The operator's content screening page (T-23): rules, the review queue, recent blocks."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from verdigris.accounts.policy import Checks
from verdigris.console.web import Ctx, Forbidden, FormSpec, NotFound, Web
from verdigris.core import Core
from verdigris.errors import ServiceError
from verdigris.screening import service as screening
from verdigris.screening.service import ScreeningError

RULE_FORM = FormSpec(("kind", "value", "action", "note"), name="rule")
REMOVE_FORM = FormSpec(("instance", "id_message", "reason"), name="remove")


class ScreeningPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    def _operator(self, ctx: Ctx) -> None:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")

    def _id(self, ctx: Ctx, name: str) -> int:
        raw = ctx.param(name)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
            raise NotFound()
        return int(raw)

    async def page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        self._operator(ctx)
        cases = await screening.list_cases(self.core)
        return self.web.show(
            ctx,
            "screening.html",
            refusal,
            form,
            status=status,
            error=error,
            rules=await screening.list_rules(self.core),
            waiting=[c for c in cases if c["action"] == "held" and not c["decision"]],
            cases=cases,
        )

    async def _act(self, ctx: Ctx, action: Any, form: FormSpec | None = None) -> Response:
        self._operator(ctx)
        try:
            message = await action()
        except ScreeningError as exc:
            if form is not None:
                return await self.page(ctx, refusal=exc, form=form)
            return await self.page(ctx, exc.message, exc.status)
        return self.web.redirect(ctx, "/operator/screening", message)

    async def add_rule(self, ctx: Ctx) -> Response:
        async def run() -> str:
            rule = await screening.add_rule(
                self.core,
                ctx.account.id,
                kind=ctx.field("kind"),
                value=ctx.field("value"),
                action=ctx.field("action"),
                note=ctx.field("note"),
            )
            return f"Rule {rule['id']} ({rule['kind']} {rule['value']!r}, {rule['action']}) is active."

        return await self._act(ctx, run, RULE_FORM)

    async def deactivate_rule(self, ctx: Ctx) -> Response:
        rule_id = self._id(ctx, "rule_id")

        async def run() -> str:
            await screening.deactivate_rule(self.core, rule_id)
            return f"Rule {rule_id} deactivated."

        return await self._act(ctx, run)

    async def decide(self, ctx: Ctx) -> Response:
        case_id = self._id(ctx, "case_id")
        decision = ctx.param("decision")
        if decision not in ("approve", "reject"):
            raise NotFound()

        async def run() -> str:
            await screening.decide(self.core, ctx.account.id, case_id, decision == "approve")
            return f"Message {case_id} {'approved: it is queued' if decision == 'approve' else 'rejected'}."

        return await self._act(ctx, run)

    async def remove_message(self, ctx: Ctx) -> Response:
        async def run() -> str:
            raw = ctx.field("instance").strip()
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                checks = Checks()  # the other fields' problems too, at once
                checks.refuse(ScreeningError(400, "give the instance's id (idInstance)", field="instance"))
                screening.check_removal(checks, ctx.field("id_message"), ctx.field("reason"))
                checks.done(ScreeningError)
            done = await screening.remove_message(
                self.core, ctx.account.id, int(raw), ctx.field("id_message"), ctx.field("reason")
            )
            return f"Message {done['idMessage']} of instance {done['instanceId']} removed."

        return await self._act(ctx, run, REMOVE_FORM)

    def routes(self) -> list[tuple[str, str, Any]]:
        page = self.web.page
        return [
            ("GET", "/operator/screening", page(self.page)),
            ("POST", "/operator/screening/rules", page(self.add_rule)),
            ("POST", "/operator/screening/rules/{rule_id}/deactivate", page(self.deactivate_rule)),
            ("POST", "/operator/screening/cases/{case_id}/{decision}", page(self.decide)),
            ("POST", "/operator/screening/remove", page(self.remove_message)),
        ]
