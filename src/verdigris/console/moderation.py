"""Console pages of moderation and agreement versions (T-16, T-17).

Operator pages: the accounts list and one account's page with its measures (block, restrict,
suspend until, unblock, delete), the moderation audit log, and publishing agreement versions.
User pages: the public agreement page (current version and the operator's requisites) and the
accept page every logged-in page sends a user to while a new version waits for acceptance.

The guard (:meth:`ModerationPages.guard`) runs before every logged-in console page (``Web.guards``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.responses import Response

from verdigris import safetext
from verdigris.accounts.policy import Checks, PolicyError
from verdigris.compliance import agreements, moderation
from verdigris.console.web import PREFIX, Ctx, Forbidden, FormSpec, NotFound, Web
from verdigris.core import Core
from verdigris.errors import ServiceError
from verdigris.instances import service as instances
from verdigris.store.clock import now_ms

# Logged-in pages a user may open while an agreement version waits for acceptance.
OPEN_WHILE_PENDING = frozenset({"/agreement/accept", "/logout", "/account/close"})
_SEND = re.compile(r"^/instances/\d+/send$")
_UNTIL = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?$")

# The operator's forms on an account's page, each named (several are on the page at once).
MEASURE_FORMS = {
    moderation.BLOCKED: FormSpec(("reason",), name="block"),
    moderation.RESTRICTED: FormSpec(("reason",), name="restrict"),
    moderation.SUSPENDED: FormSpec(("until", "reason"), name="suspend"),
}
UNBLOCK_FORM = FormSpec(("reason",), name="unblock")
DELETE_FORM = FormSpec(("reason", "confirm"), name="delete")


def parse_until(text: str, zone: str) -> int:
    """Milliseconds of a date (start of that day) or ``YYYY-MM-DDTHH:MM`` in the operator's zone."""
    value = text.strip()
    if not _UNTIL.match(value):
        raise PolicyError("until: a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM)")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    try:
        moment = datetime.fromisoformat(value if "T" in value else value + "T00:00").replace(tzinfo=tz)
    except ValueError:
        raise PolicyError("until: not a valid date") from None
    return int(moment.timestamp() * 1000)


class ModerationPages:
    def __init__(self, core: Core, web: Web) -> None:
        self.core = core
        self.web = web

    # --- the guard -------------------------------------------------------------------------------

    async def guard(self, ctx: Ctx) -> Response | None:
        path = ctx.request.url.path[len(PREFIX) :]
        if ctx.request.method == "POST" and _SEND.match(path):
            measure = moderation.runtime(self.core).of(ctx.account)
            if measure is not None:
                return self.web.problem(ctx, 403, "Not sent", measure.describe())
        if path in OPEN_WHILE_PENDING:
            return None
        pending = await agreements.pending_for(self.core, ctx.account)
        if pending is None:
            return None
        target = "/agreement/accept"
        back = self.web.return_path(ctx)
        if ctx.request.method == "GET" and back not in (PREFIX, PREFIX + "/"):
            target += "?next=" + quote(back)
        return self.web.redirect(ctx, target, "A new version of the user agreement needs your acceptance.")

    # --- agreement: public page and acceptance ---------------------------------------------------

    async def agreement_page(self, ctx: Ctx) -> Response:
        wanted = ctx.request.query_params.get("version", "")
        if wanted and safetext.problem(wanted):
            raise NotFound()
        shown = await agreements.get(self.core, wanted) if wanted else await agreements.latest(self.core)
        if wanted and shown is None:
            raise NotFound()
        return self.web.render(
            ctx,
            "agreement_public.html",
            shown=shown,
            versions=await agreements.versions(self.core),
            fallback=self.core.settings.agreement_version,
            requisites=agreements.requisites(self.core),
        )

    async def accept_form(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        pending = await agreements.pending_for(self.core, ctx.account)
        if pending is None:
            return self.web.redirect(ctx, "/")
        async with self.core.read() as conn:
            accepted = await agreements.accepted_version(conn, ctx.account.id)
        return self.web.render(
            ctx,
            "agreement_accept.html",
            status=status,
            error=error,
            shown=pending,
            accepted=accepted,
            next=ctx.request.query_params.get("next", "") or ctx.field("next"),
            requisites=agreements.requisites(self.core),
        )

    async def accept(self, ctx: Ctx) -> Response:
        if not ctx.checked("accept"):
            return await self.accept_form(ctx, "Tick the box to accept, or log out.", 400)
        try:
            await agreements.accept(self.core, ctx.account, ctx.field("version"), ctx.origin)
        except PolicyError as exc:
            return await self.accept_form(ctx, str(exc), 409)
        target = ctx.field("next")
        if not target.startswith(PREFIX + "/") or target.startswith(PREFIX + "//"):
            target = PREFIX + "/"
        return self.web.redirect(ctx, target[len(PREFIX) :], "Thank you: your acceptance is recorded.")

    # --- operator: agreement versions ------------------------------------------------------------

    def _operator(self, ctx: Ctx) -> None:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")

    async def versions_page(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        self._operator(ctx)
        return self.web.render(
            ctx,
            "agreement_versions.html",
            status=status,
            error=error,
            versions=await agreements.versions(self.core),
            fallback=self.core.settings.agreement_version,
            values=ctx.form,
        )

    async def publish(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        try:
            published = await agreements.publish(
                self.core,
                ctx.account,
                ctx.field("version"),
                ctx.field("title"),
                ctx.field("text"),
                ctx.checked("requires_acceptance"),
                ctx.origin,
            )
        except PolicyError as exc:
            return await self.versions_page(ctx, str(exc), 400)
        note = " Users are asked to accept it at their next page." if published.requires_acceptance else ""
        return self.web.redirect(ctx, "/operator/agreements", f"Version {published.version} published.{note}")

    # --- operator: accounts and measures ---------------------------------------------------------

    async def accounts_page(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        search = ctx.request.query_params.get("q", "")
        rows = await moderation.accounts_overview(self.core, search)
        return self.web.render(ctx, "moderation_accounts.html", rows=rows, q=search, now=now_ms())

    def _account_id(self, ctx: Ctx) -> int:
        raw = ctx.param("account_id")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise NotFound()
        return int(raw)

    async def account_page(
        self,
        ctx: Ctx,
        error: str = "",
        status: int = 200,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
    ) -> Response:
        self._operator(ctx)
        found = await moderation.account_with_team(self.core, self._account_id(ctx))
        if found is None:
            raise NotFound()
        target, members = found
        async with self.core.read() as conn:
            measure = await moderation.measure_in_store(conn, target)
        instances_count = 0
        if target.tenant_id is None:
            instances_count = len(await instances.list_for_account(self.core, target.id))
        return self.web.show(
            ctx,
            "moderation_account.html",
            refusal,
            form,
            status=status,
            error=error,
            target=target,
            members=members,
            measure=measure,
            instances_count=instances_count,
            entries=await moderation.log_entries(self.core, target.id, 100),
            zone=self.core.settings.operator_timezone,
        )

    async def _measure(self, ctx: Ctx, kind: str) -> Response:
        self._operator(ctx)
        account_id = self._account_id(ctx)
        form = MEASURE_FORMS[kind]
        try:
            # Every field's problem at once, before the measure is asked for.
            checks = Checks()
            checks.run(moderation.check_reason, ctx.field("reason"))
            until = None
            if kind == moderation.SUSPENDED:
                until = self._until(checks, ctx.field("until"))
            checks.done()
            measure = await moderation.apply(
                self.core, ctx.account, account_id, kind, ctx.field("reason"), ctx.origin, until
            )
        except LookupError:
            raise NotFound() from None
        except PolicyError as exc:
            return await self.account_page(ctx, refusal=exc, form=form)
        return self.web.redirect(ctx, f"/operator/accounts/{account_id}", f"Done. {measure.describe()}")

    def _until(self, checks: Checks, text: str) -> int | None:
        try:
            until = parse_until(text, self.core.settings.operator_timezone)
        except PolicyError as exc:
            checks.refuse(exc)
            return None
        if until <= now_ms():
            checks.refuse(PolicyError("until: a moment in the future"))
        return until

    async def block(self, ctx: Ctx) -> Response:
        return await self._measure(ctx, moderation.BLOCKED)

    async def restrict(self, ctx: Ctx) -> Response:
        return await self._measure(ctx, moderation.RESTRICTED)

    async def suspend(self, ctx: Ctx) -> Response:
        return await self._measure(ctx, moderation.SUSPENDED)

    async def unblock(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        account_id = self._account_id(ctx)
        try:
            await moderation.lift(self.core, ctx.account, account_id, ctx.field("reason"), ctx.origin)
        except LookupError:
            raise NotFound() from None
        except PolicyError as exc:
            return await self.account_page(ctx, refusal=exc, form=UNBLOCK_FORM)
        return self.web.redirect(ctx, f"/operator/accounts/{account_id}", "The measure is lifted.")

    async def delete(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        account_id = self._account_id(ctx)
        found = await moderation.account_with_team(self.core, account_id)
        if found is None:
            raise NotFound()
        try:
            # The reason and the confirmation are checked together, so both show at once.
            checks = Checks()
            checks.run(moderation.check_reason, ctx.field("reason"))
            if ctx.field("confirm").strip() != found[0].username:
                checks.refuse(
                    PolicyError(
                        f"type the account's username to confirm the deletion (exactly: {found[0].username})",
                        field="confirm",
                    )
                )
            checks.done()
            done = await moderation.delete_account(
                self.core, ctx.account, account_id, ctx.field("reason"), ctx.field("confirm"), ctx.origin
            )
        except LookupError:
            raise NotFound() from None
        except PolicyError as exc:
            return await self.account_page(ctx, refusal=exc, form=DELETE_FORM)
        return self.web.redirect(
            ctx, "/operator/moderation", f"Account deleted for good ({done.reference}): {done.summary()}."
        )

    async def log_page(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        return self.web.render(ctx, "moderation_log.html", entries=await moderation.log_entries(self.core))


def routes(core: Core, web: Web) -> list[tuple[str, str, Any]]:
    """The pages of this module for ``build_routes``; installs the guard on ``web``."""
    m = ModerationPages(core, web)
    web.guards.append(m.guard)
    page = web.page
    return [
        ("GET", "/agreement", page(m.agreement_page, login=False)),
        ("GET", "/agreement/accept", page(m.accept_form)),
        ("POST", "/agreement/accept", page(m.accept)),
        ("GET", "/operator/agreements", page(m.versions_page)),
        ("POST", "/operator/agreements", page(m.publish)),
        ("GET", "/operator/accounts", page(m.accounts_page)),
        ("GET", "/operator/accounts/{account_id}", page(m.account_page)),
        ("POST", "/operator/accounts/{account_id}/block", page(m.block)),
        ("POST", "/operator/accounts/{account_id}/restrict", page(m.restrict)),
        ("POST", "/operator/accounts/{account_id}/suspend", page(m.suspend)),
        ("POST", "/operator/accounts/{account_id}/unblock", page(m.unblock)),
        ("POST", "/operator/accounts/{account_id}/delete", page(m.delete)),
        ("GET", "/operator/moderation", page(m.log_page)),
    ]
