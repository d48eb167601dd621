"""The personal area: login and registration, instances, team, account settings, journals.

Handlers are thin: they read the form, call a service (accounts, instances, messaging) and render
a template. Tenant isolation is one function (:func:`Console.instance`): an instance that is not
the tenant's answers 404, exactly like one that does not exist, and the attempt is journalled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from verdigris import mail
from verdigris.accounts import closing as accounts_closing
from verdigris.accounts import credentials as accounts_credentials
from verdigris.accounts import journal
from verdigris.accounts import registration as accounts_registration
from verdigris.accounts import service as accounts
from verdigris.accounts import sessions as auth
from verdigris.accounts import team as accounts_team
from verdigris.accounts.policy import PolicyError
from verdigris.accounts.records import INVITABLE_ROLES
from verdigris.console import mailbox
from verdigris.console import moderation as moderation_pages
from verdigris.console.announcements import AnnouncementPages
from verdigris.console.billing import BillingPages
from verdigris.console.cloud import CloudPages
from verdigris.console.customers import CustomerPages
from verdigris.console.health import HealthPages, instance_values
from verdigris.console.journal import MessageJournal
from verdigris.console.labels import SETTING_WORDS
from verdigris.console.linking import LinkCard
from verdigris.console.overview import Overview
from verdigris.console.sandbox import SandboxPhones
from verdigris.console.screening import ScreeningPages
from verdigris.console.web import PREFIX, Ctx, Forbidden, FormSpec, NotFound, Web
from verdigris.core import Core
from verdigris.greenapi.methods.account import SettingsBody
from verdigris.instances import service as instances
from verdigris.instances.service import InstanceRecord
from verdigris.instances.settings import CATALOGUE, MESSAGE_FLAGS, SETTABLE, delay_error
from verdigris.licensing import service as license_service
from verdigris.messaging import notifications
from verdigris.messaging import service as messaging
from verdigris.messaging.content import plain_text, text_content, text_type
from verdigris.outbound import url_problem, webhooks_may_go_private
from verdigris.sendpolicy import service as send_policy
from verdigris.words import cleaned, duration, plural

STATIC = Path(__file__).parent / "static"
_CHAT = re.compile(r"^(\d{5,20}@c\.us|\d{5,20}(-\d{6,12})?@g\.us)$")


def _error_text(exc: Exception) -> str:
    """A validation failure in words: each setting by its plain name, without pydantic's prefixes."""
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"])
            name = SETTING_WORDS.get(key, key).split(" (")[0]
            parts.append(f"{name} ({key}): {cleaned(str(e['msg']))}")
        return "; ".join(parts)
    return cleaned(str(exc))


REGISTER_FORM = FormSpec(
    ("name", "email", "phone", "organisation", "username", "accept_agreement", "accept_privacy")
)
# The account page's forms (the current password is "password"; the rules call it so).
ACCOUNT_FORMS = {
    "password": FormSpec(
        ("password", "new_password", "repeat_password"),
        {"current password": "password", "password": "new_password"},
        "password",
    ),
    "username": FormSpec(("username", "password"), name="username"),
    "close": FormSpec(("confirm", "password"), name="close"),
}


class Console:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.web = Web(core)
        self.cloud = CloudPages(core, self.web, self.instance)
        self.sandbox = SandboxPhones(core, self.web, self.instance)
        self.link = LinkCard(core, self.web, self.instance)
        self.overview = Overview(core, self.web)

    # --- helpers ---------------------------------------------------------------------------------

    async def instance(self, ctx: Ctx) -> InstanceRecord:
        """The instance named in the URL, if it is the tenant's; otherwise 404 (and journalled)."""
        raw = ctx.param("instance_id")
        rec = (
            await self.core.instances.get(int(raw))
            if raw.isascii() and raw.isdigit() and len(raw) < 19
            else None
        )
        if rec is None or rec.account_id != ctx.account.tenant:
            await journal.note(
                self.core,
                journal.FOREIGN_INSTANCE,
                ok=False,
                origin=ctx.origin,
                account=ctx.account,
                detail=f"instance {raw[:20]} ({'not theirs' if rec else 'does not exist'})",
            )
            raise NotFound(journaled=True)
        return rec

    def fragment(self, ctx: Ctx, template: str, **values: Any) -> Response:
        return self.web.render(ctx, template, **values)

    # --- login, logout, registration -------------------------------------------------------------

    async def login_form(self, ctx: Ctx) -> Response:
        if ctx.session is not None:
            return self.web.redirect(ctx, "/")
        return self.web.render(ctx, "login.html", next=ctx.request.query_params.get("next", ""))

    async def login(self, ctx: Ctx) -> Response:
        try:
            secret, _ = await auth.login(self.core, ctx.field("username"), ctx.field("password"), ctx.origin)
        except auth.LoginRefused as exc:
            return self.web.render(
                ctx,
                "login.html",
                status=401,
                error=str(exc),
                username=ctx.field("username"),
                next=ctx.field("next"),
            )
        target = ctx.field("next")
        if not target.startswith(PREFIX + "/") or target.startswith(PREFIX + "//"):
            target = PREFIX + "/"
        response = RedirectResponse(target, status_code=303)
        self.web.set_session_cookie(ctx, response, secret)
        return response

    async def logout(self, ctx: Ctx) -> Response:
        assert ctx.session is not None
        await auth.logout(self.core, ctx.session, ctx.origin)
        response = self.web.redirect(ctx, "/login", "You are logged out.")
        self.web.clear_session_cookie(ctx, response)
        return response

    async def register_form(self, ctx: Ctx) -> Response:
        return self.web.render(ctx, "register.html", values={}, settings=self.core.settings)

    async def register(self, ctx: Ctx) -> Response:
        form = accounts_registration.Registration(
            name=ctx.field("name"),
            email=ctx.field("email"),
            phone=ctx.field("phone"),
            organisation=ctx.field("organisation"),
            username=ctx.field("username"),
            accept_agreement=ctx.checked("accept_agreement"),
            accept_privacy=ctx.checked("accept_privacy"),
            marketing=ctx.checked("marketing"),
        )
        try:
            account = await accounts_registration.register(self.core, form, ctx.origin)
        except PolicyError as exc:
            return self.web.refused(ctx, "register.html", exc, REGISTER_FORM, settings=self.core.settings)
        return self.web.render(ctx, "registered.html", email=account.email)

    async def verify(self, ctx: Ctx) -> Response:
        try:
            await accounts_registration.verify_email(self.core, ctx.param("secret"), ctx.origin)
        except accounts.AccountError as exc:
            return self.web.problem(ctx, 400, "Link not valid", str(exc))
        return self.web.redirect(ctx, "/login", "Your e-mail address is confirmed. You can log in now.")

    async def reset_form(self, ctx: Ctx) -> Response:
        return self.web.render(ctx, "reset.html")

    async def reset_request(self, ctx: Ctx) -> Response:
        await accounts_credentials.request_password_reset(self.core, ctx.field("email"), ctx.origin)
        return self.web.render(ctx, "reset.html", sent=True, email=ctx.field("email").strip())

    async def reset_choose_form(self, ctx: Ctx) -> Response:
        return self.web.render(ctx, "reset_choose.html", secret=ctx.param("secret"))

    async def reset_choose(self, ctx: Ctx) -> Response:
        try:
            await accounts_credentials.reset_password(
                self.core, ctx.param("secret"), ctx.field("password"), ctx.origin
            )
        except accounts.AccountError as exc:
            return self.web.render(
                ctx, "reset_choose.html", status=400, error=str(exc), secret=ctx.param("secret")
            )
        except PolicyError as exc:
            return self.web.refused(
                ctx, "reset_choose.html", exc, FormSpec(("password",)), secret=ctx.param("secret")
            )
        return self.web.redirect(ctx, "/login", "Your password is changed. Log in with the new one.")

    async def invite_form(self, ctx: Ctx) -> Response:
        try:
            member = await accounts_team.invitation(self.core, ctx.param("secret"))
        except accounts.AccountError as exc:
            return self.web.problem(ctx, 400, "Link not valid", str(exc))
        return self.web.render(ctx, "invite.html", member=member, secret=ctx.param("secret"))

    async def invite_accept(self, ctx: Ctx) -> Response:
        secret = ctx.param("secret")
        try:
            await accounts_team.accept_invitation(
                self.core,
                secret,
                ctx.field("username"),
                ctx.field("password"),
                ctx.checked("accept_agreement") and ctx.checked("accept_privacy"),
                ctx.origin,
            )
        except (PolicyError, accounts.AccountError) as exc:
            try:
                member = await accounts_team.invitation(self.core, secret)
            except accounts.AccountError:
                return self.web.problem(ctx, 400, "Link not valid", str(exc))
            if isinstance(exc, accounts.AccountError):
                return self.web.problem(ctx, 400, "Link not valid", str(exc))
            return self.web.refused(
                ctx,
                "invite.html",
                exc,
                FormSpec(("username", "password", "accept_agreement"), {"accept": "accept_agreement"}),
                member=member,
                secret=secret,
            )
        return self.web.redirect(ctx, "/login", "Welcome to the team. Log in with your new username.")

    # --- instances -------------------------------------------------------------------------------

    async def home(self, ctx: Ctx) -> Response:
        """The first page: the operator's overview, or the team's instances."""
        if ctx.account.is_operator:
            return await self.overview.page(ctx)
        return await self.instance_list(ctx)

    async def instance_list(self, ctx: Ctx) -> Response:
        items = await instances.list_for_account(self.core, ctx.account.tenant)
        return self.web.render(
            ctx, "instances.html", items=items, licenses=await self._licenses([i.id for i in items])
        )

    async def _licenses(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Each instance's license state (current and upcoming), as the billing section shows it."""
        return {i: await license_service.instance_status(self.core, i) for i in ids}

    async def create_instance(self, ctx: Ctx) -> Response:
        self.web.require(ctx, "instance.create")
        name = ctx.field("name").strip()[:200]
        choice = ctx.field("notifications", "yes")
        if choice not in ("yes", "no"):
            return self.web.redirect(ctx, "/", "Receive notifications: choose yes or no.", error=True)
        # "yes" switches on the message notifications (as the demo instances have them); "no" keeps
        # GREEN-API's default, every notification off.
        flags = {flag: "yes" for flag in MESSAGE_FLAGS} if choice == "yes" else {}
        rec = await instances.create(self.core, account_id=ctx.account.tenant, name=name, settings=flags)
        return self.web.redirect(
            ctx, f"/instances/{rec.id}", f"Instance {rec.id} created. Link a phone to it."
        )

    async def instance_page(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        return self.web.render(
            ctx,
            "instance.html",
            inst=rec,
            api_url=self.core.public_url,
            media_url=self.core.media_url,
            catalogue=[(name, spec) for name, spec in CATALOGUE.items()],
            settable=SETTABLE,
            words=SETTING_WORDS,
            license=(await self._licenses([rec.id])).get(rec.id),
            policy=await send_policy.of_instance(self.core, rec.id),
            zone=self.core.settings.operator_timezone,
            **(await self._status_values(rec)),
            **(await instance_values(self.core, rec)),
            **(await self.cloud.values(rec)),
            **(await self.sandbox.values(ctx, rec)),
            **(await self.link.values(ctx, rec)),
        )

    async def _status_values(self, rec: InstanceRecord) -> dict[str, Any]:
        out_rows = await messaging.recent(self.core, rec.id, "out", 1440)
        in_rows = await messaging.recent(self.core, rec.id, "in", 1440)
        rows = sorted(out_rows[:50] + in_rows[:50], key=lambda m: m.row_id, reverse=True)[:50]
        return {
            "queued": await messaging.queued_count(self.core, rec.id),
            "waiting": await notifications.count(self.core, rec.id),
            "journal": [
                {
                    "at": m.created_ms,
                    "direction": m.direction,
                    "chat": m.chat_id,
                    "type": m.type_message,
                    "text": plain_text(m.type_message, m.content),
                    "status": m.status,
                    "id": m.id_message,
                }
                for m in rows
            ],
        }

    async def instance_activity(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        return self.fragment(ctx, "_activity.html", inst=rec, **(await self._status_values(rec)))

    async def reveal_token(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.token")
        await journal.note(
            self.core,
            journal.TOKEN_REVEALED,
            ok=True,
            origin=ctx.origin,
            account=ctx.account,
            detail=f"instance {rec.id}",
        )
        return HTMLResponse(
            f'<code id="token" class="token">{rec.token}</code> '
            '<button type="button" class="small copy" data-copy="#token" id="copy-token">Copy</button>'
        )

    async def rotate_token(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.token")
        await accounts_closing.rotate_instance_token(self.core, ctx.account, rec, ctx.origin)
        return self.web.redirect(
            ctx, f"/instances/{rec.id}", "The API token was replaced; the old one no longer works."
        )

    async def instance_settings(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        values: dict[str, Any] = {}
        for name, spec in CATALOGUE.items():
            if name not in SETTABLE or name not in ctx.form:
                continue
            raw = ctx.form[name].strip()
            if spec.kind == "bool":
                values[name] = raw == "true"
            elif spec.kind == "int":
                values[name] = raw if raw else spec.default
            else:
                values[name] = raw
        try:
            body = SettingsBody.model_validate(values)
        except ValidationError as exc:
            return self.web.redirect(
                ctx, f"/instances/{rec.id}", "Settings not saved: " + _error_text(exc), error=True
            )
        changes = {k: v for k, v in body.model_dump(exclude_none=True).items() if k in SETTABLE}
        problem = delay_error(self.core.settings, changes.get("delaySendMessagesMilliseconds"))
        problem = problem or await url_problem(
            str(changes.get("webhookUrl") or ""), webhooks_may_go_private(self.core.settings)
        )
        if problem:
            return self.web.redirect(
                ctx, f"/instances/{rec.id}", "Settings not saved: " + problem, error=True
            )
        if changes:
            await instances.update_settings(self.core, rec, changes)
        return self.web.redirect(ctx, f"/instances/{rec.id}", "Settings saved.")

    async def send_message(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        chat = ctx.field("chat").strip().lstrip("+")
        if chat.isascii() and chat.isdigit():
            chat += "@c.us"
        text = ctx.field("message")
        if not _CHAT.match(chat) or not text.strip() or len(text) > 20000:
            return self.web.redirect(
                ctx,
                f"/instances/{rec.id}",
                "Not sent: give a phone number (or chat id) and a text.",
                error=True,
            )
        content = text_content(text, link_preview=bool(rec.settings.get("linkPreview", True)))
        try:
            await messaging.send(
                self.core,
                rec,
                messaging.OutgoingMessage(
                    chat_id=chat,
                    kind="sendMessage",
                    type_message=text_type(content),
                    content=content,
                    request={"chatId": chat, "message": text},
                ),
                messaging.Origin.CONSOLE,
            )
        except messaging.MessageRefused as exc:
            return self.web.redirect(ctx, f"/instances/{rec.id}", f"Not sent: {exc.reason}.", error=True)
        return self.web.redirect(ctx, f"/instances/{rec.id}", "Message queued.")

    async def clear_queue(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        count = await messaging.clear_queue(self.core, rec.id)
        return self.web.redirect(ctx, f"/instances/{rec.id}", f"{plural(count, 'queued message')} withdrawn.")

    async def clear_notifications(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        count = await notifications.clear(self.core, rec.id)
        return self.web.redirect(
            ctx, f"/instances/{rec.id}", f"{plural(count, 'waiting notification')} dropped."
        )

    async def save_policy(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        try:
            await send_policy.save(
                self.core,
                rec,
                quiet_from=ctx.field("quiet_from"),
                quiet_to=ctx.field("quiet_to"),
                timezone=ctx.field("timezone"),
                daily_limit=ctx.field("daily_limit"),
                pause_after_failures=ctx.field("pause_after_failures"),
            )
        except send_policy.SendPolicyError as exc:
            return self.web.redirect(
                ctx, f"/instances/{rec.id}", f"Policy not saved: {exc.message}", error=True
            )
        return self.web.redirect(ctx, f"/instances/{rec.id}", "Sending policy saved.")

    async def pause_queue(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.manage")
        paused = ctx.request.url.path.endswith("/pause")
        await send_policy.set_paused(self.core, rec, paused, f"paused by {ctx.account.username}")
        return self.web.redirect(
            ctx, f"/instances/{rec.id}", "Sending paused." if paused else "Sending resumed."
        )

    async def delete_instance(self, ctx: Ctx) -> Response:
        rec = await self.instance(ctx)
        self.web.require(ctx, "instance.delete")
        if ctx.field("confirm").strip() != str(rec.id):
            return self.web.redirect(
                ctx, f"/instances/{rec.id}", "Type the instance id to confirm deletion.", error=True
            )
        await instances.delete(self.core, rec)
        return self.web.redirect(ctx, "/", f"Instance {rec.id} deleted.")

    # --- account ---------------------------------------------------------------------------------

    async def account_page(
        self, ctx: Ctx, refusal: PolicyError | None = None, status: int = 200, posted: str = ""
    ) -> Response:
        """The account page; after a refusal, the ``posted`` form shows its errors at its fields."""
        consents = await accounts_registration.consents_of(self.core, ctx.account)
        marketing = next((c for c in consents if c["kind"] == "marketing"), None)
        show: Callable[..., Response] = self.web.render
        if refusal is not None:
            show = partial(self.web.refused, exc=refusal, form=ACCOUNT_FORMS[posted])
        return show(
            ctx,
            "account.html",
            status=status,
            sessions=await auth.active_sessions(self.core, ctx.account),
            consents=consents,
            marketing=bool(marketing and marketing["granted"]),
            grace_days=duration(self.core.settings.account_delete_grace_seconds),
        )

    async def change_password(self, ctx: Ctx) -> Response:
        assert ctx.session is not None
        if ctx.field("new_password") != ctx.field("repeat_password"):
            return await self.account_page(
                ctx, PolicyError("the two entries differ", field="repeat_password"), 400, "password"
            )
        try:
            ended = await accounts_credentials.change_password(
                self.core,
                ctx.account,
                ctx.field("password"),
                ctx.field("new_password"),
                ctx.session.id,
                ctx.origin,
            )
        except PolicyError as exc:
            return await self.account_page(ctx, exc, 400, "password")
        return self.web.redirect(
            ctx, "/account", f"Password changed; {plural(ended, 'other session')} ended."
        )

    async def change_username(self, ctx: Ctx) -> Response:
        try:
            name = await accounts_credentials.change_username(
                self.core, ctx.account, ctx.field("username"), ctx.field("password"), ctx.origin
            )
        except PolicyError as exc:
            return await self.account_page(ctx, exc, 400, "username")
        return self.web.redirect(ctx, "/account", f"Your username is now {name}.")

    async def marketing(self, ctx: Ctx) -> Response:
        granted = ctx.field("granted") == "yes"
        await accounts_registration.set_marketing_consent(self.core, ctx.account, granted, ctx.origin)
        return self.web.redirect(
            ctx, "/account", "Marketing consent " + ("given." if granted else "withdrawn.")
        )

    async def end_session(self, ctx: Ctx) -> Response:
        assert ctx.session is not None
        await auth.revoke_one(self.core, ctx.session, ctx.param("sid"), ctx.origin)
        return self.web.redirect(ctx, "/account", "Session ended.")

    async def logout_everywhere(self, ctx: Ctx) -> Response:
        assert ctx.session is not None
        count = await auth.logout_everywhere(self.core, ctx.session, ctx.origin)
        response = self.web.redirect(ctx, "/login", f"{plural(count, 'session')} ended, this one included.")
        self.web.clear_session_cookie(ctx, response)
        return response

    async def compromise(self, ctx: Ctx) -> Response:
        ended, rotated = await accounts_closing.report_compromise(self.core, ctx.account, ctx.origin)
        response = self.web.redirect(
            ctx,
            "/login",
            f"Recorded. {plural(ended, 'session')} ended and {plural(rotated, 'API token')} replaced. "
            "Log in again and change your password.",
        )
        self.web.clear_session_cookie(ctx, response)
        return response

    async def close(self, ctx: Ctx) -> Response:
        try:
            await accounts_closing.close_account(
                self.core, ctx.account, ctx.field("password"), ctx.field("confirm"), ctx.origin
            )
        except PolicyError as exc:
            return await self.account_page(ctx, exc, 400, "close")
        response = self.web.redirect(ctx, "/login", "Your account is closed. Its data will be deleted.")
        self.web.clear_session_cookie(ctx, response)
        return response

    async def events(self, ctx: Ctx) -> Response:
        team = ctx.account.can("team")
        async with self.core.read() as conn:
            rows = await journal.entries(conn, ctx.account, team=team)
        return self.web.render(ctx, "events.html", rows=rows, team=team)

    # --- team ------------------------------------------------------------------------------------

    async def team(self, ctx: Ctx, error: str = "", status: int = 200) -> Response:
        members = await accounts_team.team_members(self.core, ctx.account)
        return self.web.render(
            ctx, "team.html", status=status, error=error, members=members, roles=INVITABLE_ROLES
        )

    async def invite(self, ctx: Ctx) -> Response:
        try:
            await accounts_team.invite_member(
                self.core, ctx.account, ctx.field("email"), ctx.field("role"), ctx.origin
            )
        except PolicyError as exc:
            if not ctx.account.can("team"):
                raise Forbidden("team") from None
            return self.web.refused(
                ctx,
                "team.html",
                exc,
                FormSpec(("email", "role"), name="invite"),
                members=await accounts_team.team_members(self.core, ctx.account),
                roles=INVITABLE_ROLES,
            )
        return self.web.redirect(ctx, "/team", f"Invitation sent to {ctx.field('email').strip()}.")

    def _member_id(self, ctx: Ctx) -> int:
        raw = ctx.param("member_id")
        if not (raw.isascii() and raw.isdigit()):
            raise NotFound()
        return int(raw)

    async def member_role(self, ctx: Ctx) -> Response:
        self.web.require(ctx, "team")
        try:
            await accounts_team.change_member_role(
                self.core, ctx.account, self._member_id(ctx), ctx.field("role"), ctx.origin
            )
        except accounts.AccountError:
            raise NotFound() from None
        except PolicyError as exc:
            return await self.team(ctx, str(exc), 400)
        return self.web.redirect(ctx, "/team", "Role changed.")

    async def member_remove(self, ctx: Ctx) -> Response:
        self.web.require(ctx, "team")
        try:
            await accounts_team.remove_member(self.core, ctx.account, self._member_id(ctx), ctx.origin)
        except accounts.AccountError:
            raise NotFound() from None
        except PolicyError as exc:
            return await self.team(ctx, str(exc), 400)
        return self.web.redirect(ctx, "/team", "Member removed; their sessions have ended.")

    async def unknown_page(self, ctx: Ctx) -> Response:
        raise NotFound()

    # --- operator --------------------------------------------------------------------------------

    def _operator(self, ctx: Ctx) -> None:
        if not ctx.account.is_operator:
            raise Forbidden("operator pages")

    async def outbox(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        return self.web.render(
            ctx, "outbox.html", items=mail.list_outbox(self.core), smtp=self.core.settings.smtp_host
        )

    async def all_events(self, ctx: Ctx) -> Response:
        self._operator(ctx)
        async with self.core.read() as conn:
            rows = await journal.entries(conn, None, limit=500)
        return self.web.render(ctx, "events.html", rows=rows, team=True, everyone=True)


def build_routes(core: Core) -> list[BaseRoute]:
    """The console's routes, to be appended to the application (all under ``/console``)."""
    c = Console(core)
    page = c.web.page

    def anon(handler: Any) -> Any:
        return page(handler, login=False)

    table: list[tuple[str, str, Any]] = [
        ("GET", "/login", anon(c.login_form)),
        ("POST", "/login", anon(c.login)),
        ("POST", "/logout", page(c.logout)),
        ("GET", "/register", anon(c.register_form)),
        ("POST", "/register", anon(c.register)),
        ("GET", "/verify/{secret}", anon(c.verify)),
        ("GET", "/reset", anon(c.reset_form)),
        ("POST", "/reset", anon(c.reset_request)),
        ("GET", "/reset/{secret}", anon(c.reset_choose_form)),
        ("POST", "/reset/{secret}", anon(c.reset_choose)),
        ("GET", "/invite/{secret}", anon(c.invite_form)),
        ("POST", "/invite/{secret}", anon(c.invite_accept)),
        ("GET", "", page(c.home)),
        ("GET", "/", page(c.home)),
        ("GET", "/instances", page(c.instance_list)),
        ("POST", "/instances", page(c.create_instance)),
        ("GET", "/instances/{instance_id}", page(c.instance_page)),
        ("GET", "/instances/{instance_id}/activity", page(c.instance_activity)),
        ("GET", "/instances/{instance_id}/token", page(c.reveal_token)),
        ("POST", "/instances/{instance_id}/token", page(c.rotate_token)),
        ("POST", "/instances/{instance_id}/settings", page(c.instance_settings)),
        ("POST", "/instances/{instance_id}/send", page(c.send_message)),
        ("POST", "/instances/{instance_id}/queue/clear", page(c.clear_queue)),
        ("POST", "/instances/{instance_id}/notifications/clear", page(c.clear_notifications)),
        ("POST", "/instances/{instance_id}/delete", page(c.delete_instance)),
        ("POST", "/instances/{instance_id}/policy", page(c.save_policy)),
        ("POST", "/instances/{instance_id}/pause", page(c.pause_queue)),
        ("POST", "/instances/{instance_id}/resume", page(c.pause_queue)),
        ("GET", "/account", page(c.account_page)),
        ("POST", "/account/password", page(c.change_password)),
        ("POST", "/account/username", page(c.change_username)),
        ("POST", "/account/marketing", page(c.marketing)),
        ("POST", "/account/sessions/{sid}/end", page(c.end_session)),
        ("POST", "/account/logout-everywhere", page(c.logout_everywhere)),
        ("POST", "/account/compromise", page(c.compromise)),
        ("POST", "/account/close", page(c.close)),
        ("GET", "/events", page(c.events)),
        ("GET", "/team", page(c.team)),
        ("POST", "/team/invite", page(c.invite)),
        ("POST", "/team/{member_id}/role", page(c.member_role)),
        ("POST", "/team/{member_id}/remove", page(c.member_remove)),
        ("GET", "/operator/outbox", page(c.outbox)),
        ("GET", "/operator/events", page(c.all_events)),
        *mailbox.routes(core, c.web),
        *c.sandbox.routes(),
        *c.link.routes(),
        *MessageJournal(core, c.web, c.instance).routes(),
        *c.cloud.routes(),
        *HealthPages(core, c.web, c.instance).routes(),
        *BillingPages(core, c.web).routes(),
        *CustomerPages(core, c.web).routes(),
        *AnnouncementPages(core, c.web).routes(),
        *ScreeningPages(core, c.web).routes(),
        *moderation_pages.routes(core, c.web),  # T-16, T-17: operator moderation, agreement versions
    ]
    routes: list[BaseRoute] = [
        Route(PREFIX + path, endpoint, methods=[verb], include_in_schema=False)
        for verb, path, endpoint in table
    ]
    routes.append(Mount(PREFIX + "/static", app=StaticFiles(directory=str(STATIC)), name="console-static"))
    # Anything else under /console is the console's own styled 404, not the API's JSON.
    routes.append(
        Route(PREFIX + "/{rest:path}", anon(c.unknown_page), methods=["GET", "POST"], include_in_schema=False)
    )
    return routes


async def root_redirect(request: Request) -> Response:
    """``/`` opens the console (only this path; the wire API never redirects)."""
    return RedirectResponse(PREFIX + "/", status_code=307)
