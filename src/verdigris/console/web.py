"""Plumbing of the console: sessions from cookies, CSRF checks, templates, flash messages.

Every console endpoint is wrapped by :meth:`Web.page`, which resolves the session (or sends the
browser to the login page), checks the CSRF token of every POST, and turns the console's
exceptions into pages. Refusals are written to the auth-event journal.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from verdigris.accounts import journal
from verdigris.accounts import sessions as auth
from verdigris.accounts.journal import Origin
from verdigris.accounts.records import Account
from verdigris.config import Settings
from verdigris.core import Core
from verdigris.errors import ServiceError
from verdigris.words import duration, plural

SESSION_COOKIE = "vg_session"
ANON_COOKIE = "vg_form"  # double-submit CSRF token for forms shown before login
FLASH_COOKIE = "vg_flash"
ERROR_MARK = "!error:"  # a flash that starts with this is shown as an error
ERROR_AT = "!error@"  # "!error@NAME:text": a refusal shown at the form NAME of the page (error_at)
PREFIX = "/console"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

# Every console answer: never framed, never cached (pages show tokens), no URL leaks in Referer
# (verification and reset links carry secrets in the path), forms only post to this site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _localday(ms: int | None, zone: str) -> str:
    """The calendar day of ``ms`` in ``zone`` (license days are the operator's)."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).date().isoformat()


# Inputs a form never shows again after a refusal.
SECRET_FIELDS = frozenset({"csrf", "password", "new_password", "repeat_password", "current_password"})


def password_rules(settings: Settings) -> str:
    """The password rules, stated next to every field where one is chosen (before any failure)."""
    return (
        f"At least {settings.password_min_length} characters, hard to guess: not a common password, "
        "not containing your username or e-mail address. A few unrelated words with digits or signs "
        "between them work well."
    )


def dev_mailbox_on(settings: Settings) -> bool:
    """Whether the development mailbox (/console/mailbox, console/mailbox.py) is on: the embedded
    default only, with no SMTP server and a server that listens on a loopback address."""
    return settings.dev_mailbox and not settings.smtp_host and settings.host in LOOPBACK


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.globals["plural"] = plural
TEMPLATES.env.filters["duration"] = duration
# A missing value shows as nothing, never as the word "None".
TEMPLATES.env.finalize = lambda value: "" if value is None else value
TEMPLATES.env.filters["localday"] = _localday


class NotFound(Exception):
    """Nothing here, or not the user's: a 404 page. Unless ``journaled`` (the raiser wrote a more
    precise entry), a logged-in user's 404 is journalled as ``foreign_object``."""

    def __init__(self, journaled: bool = False) -> None:
        super().__init__()
        self.journaled = journaled


class Forbidden(Exception):
    pass


@dataclass
class Ctx:
    """One console request: who asks, from where, and the form it sent."""

    request: Request
    origin: Origin
    session: auth.Session | None = None
    form: dict[str, str] = field(default_factory=dict)
    anon_token: str = ""
    set_anon: bool = False

    @property
    def account(self) -> Account:
        assert self.session is not None
        return self.session.account

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default)

    def checked(self, name: str) -> bool:
        return self.form.get(name, "") in ("on", "yes", "true", "1")


@dataclass(frozen=True)
class FormSpec:
    """A form as a refusal shows it: its inputs' names, the rules' field names that differ from
    them (``rename``), and its name on a page with several forms."""

    fields: tuple[str, ...]
    rename: dict[str, str] = field(default_factory=dict)
    name: str = ""


Handler = Callable[[Ctx], Awaitable[Response]]
Guard = Callable[[Ctx], Awaitable[Response | None]]


class Web:
    def __init__(self, core: Core) -> None:
        self.core = core
        # Checks run before every logged-in page (e.g. "accept the new agreement first"); one that
        # returns a response answers instead of the page.
        self.guards: list[Guard] = []

    # --- responses -------------------------------------------------------------------------------

    def render(self, ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
        flash = ctx.request.cookies.get(FLASH_COOKIE, "")
        shown = unquote(flash)
        if shown.startswith(ERROR_MARK):  # a refusal carried over a redirect looks like an error
            values["error"] = values.get("error") or shown[len(ERROR_MARK) :]
            shown = ""
        elif shown.startswith(ERROR_AT):  # ... and one that belongs to a form shows at that form
            form, _, text = shown[len(ERROR_AT) :].partition(":")
            values.setdefault("error_at", {form: text})
            shown = ""
        response = TEMPLATES.TemplateResponse(
            ctx.request,
            template,
            {
                "session": ctx.session,
                "me": ctx.session.account if ctx.session else None,
                "csrf": ctx.session.csrf if ctx.session else ctx.anon_token,
                "flash": shown,
                "prefix": PREFIX,
                "dev_mailbox": dev_mailbox_on(self.core.settings),
                "values": {k: v for k, v in ctx.form.items() if k not in SECRET_FIELDS},
                "errors": {},
                "error_at": {},
                "posted": "",
                "password_rules": password_rules(self.core.settings),
                **values,
            },
            status_code=status,
        )
        if flash and not template.startswith("_"):
            response.delete_cookie(FLASH_COOKIE, path=PREFIX)
        self._anon_cookie(ctx, response)
        return response

    def refused(
        self,
        ctx: Ctx,
        template: str,
        exc: ServiceError,
        form: FormSpec,
        status: int | None = None,
        **values: Any,
    ) -> Response:
        """Show a form again after a service refused it (a :class:`PolicyError` or any other
        :class:`ServiceError`, by its ``fields``): each error next to its field, the rest at the
        top, and what was typed kept (never a password). The status is the refusal's unless given."""
        errors: dict[str, str] = {}
        general: list[str] = []
        for key, text in exc.fields.items():
            name = form.rename.get(key, key.replace("-", ""))
            if key and name in form.fields:
                errors[name] = text[:1].upper() + text[1:]
            else:
                general.append(text[:1].upper() + text[1:])
        if errors:
            marked = "the marked field" if len(errors) == 1 else f"the {len(errors)} marked fields"
            general.insert(0, f"Not done yet: please correct {marked}.")
        values.setdefault("error", " ".join(t if t.endswith(".") else t + "." for t in general))
        return self.render(
            ctx, template, status=status or exc.status, errors=errors, posted=form.name, **values
        )

    def show(
        self,
        ctx: Ctx,
        template: str,
        refusal: ServiceError | None = None,
        form: FormSpec | None = None,
        **values: Any,
    ) -> Response:
        """A page with forms: as refused by ``refusal`` (each error at its field of ``form``), or
        as it is."""
        if refusal is not None and form is not None:
            values.pop("status", None)
            values.pop("error", None)
            return self.refused(ctx, template, refusal, form, **values)
        return self.render(ctx, template, **values)

    def redirect(
        self, ctx: Ctx, path: str, flash: str = "", *, error: bool = False, at: str = ""
    ) -> Response:
        """Go to ``path`` and show ``flash`` there (as an error when ``error``; beside the form
        ``at`` of that page when given, which the template reads from ``error_at``)."""
        target = PREFIX + path
        if error and flash:
            flash = (f"{ERROR_AT}{at}:" if at else ERROR_MARK) + flash
        if ctx.request.headers.get("hx-request"):
            response: Response = Response(status_code=204, headers={"HX-Redirect": target})
        else:
            response = RedirectResponse(target, status_code=303)
        if flash:
            response.set_cookie(
                FLASH_COOKIE,
                quote(flash),
                path=PREFIX,
                httponly=True,
                samesite="lax",
                secure=self.secure(ctx),
            )
        return response

    def return_path(self, ctx: Ctx) -> str:
        """Where to come back to after logging in or accepting the agreement: the page itself. An
        htmx request (a panel refreshing itself) names its page in HX-Current-URL; its own path is
        a bare fragment."""
        path = ctx.request.url.path
        if ctx.request.headers.get("hx-request"):
            current = urlsplit(ctx.request.headers.get("hx-current-url", ""))
            same_site = current.netloc in ("", ctx.request.url.netloc)
            if (
                same_site
                and current.path.startswith(PREFIX + "/")
                and not current.path.startswith(PREFIX + "//")
            ):
                return current.path
            return PREFIX + "/"
        return path

    def secure(self, ctx: Ctx) -> bool:
        mode = self.core.settings.cookie_secure
        return mode == "always" or (mode == "auto" and ctx.request.url.scheme == "https")

    def set_session_cookie(self, ctx: Ctx, response: Response, secret: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=self.core.settings.session_hours * 3600,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=self.secure(ctx),
        )

    def clear_session_cookie(self, ctx: Ctx, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=self.secure(ctx)
        )

    def _anon_cookie(self, ctx: Ctx, response: Response) -> None:
        if ctx.set_anon:
            response.set_cookie(
                ANON_COOKIE,
                ctx.anon_token,
                path=PREFIX,
                httponly=True,
                samesite="lax",
                secure=self.secure(ctx),
            )

    def problem(self, ctx: Ctx, status: int, title: str, text: str) -> Response:
        if ctx.request.headers.get("hx-request"):
            return HTMLResponse(f'<p class="error">{title}: {text}</p>', status_code=status)
        return self.render(ctx, "problem.html", status=status, title=title, text=text)

    # --- the wrapper -----------------------------------------------------------------------------

    def page(self, handler: Handler, *, login: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            address = request.client.host if request.client else ""
            ctx = Ctx(request, Origin(address, request.headers.get("user-agent", "")[:300]))
            response = await serve(ctx)
            response.headers.update(SECURITY_HEADERS)
            stale = request.cookies.get(SESSION_COOKIE) and ctx.session is None
            sets_session = any(
                value.startswith(SESSION_COOKIE.encode() + b"=")
                for name, value in response.raw_headers
                if name == b"set-cookie"
            )
            if stale and not sets_session:
                self.clear_session_cookie(ctx, response)  # an ended session's cookie is dropped once seen
            return response

        async def serve(ctx: Ctx) -> Response:
            request = ctx.request
            secret = request.cookies.get(SESSION_COOKIE, "")
            if secret:
                ctx.session = await auth.resolve(self.core, secret, ctx.origin)
            if login and ctx.session is None:
                return self.redirect(ctx, "/login?next=" + quote(self.return_path(ctx)), "Please log in.")
            if not login:
                ctx.anon_token = request.cookies.get(ANON_COOKIE, "")
                if not ctx.anon_token:
                    ctx.anon_token, ctx.set_anon = secrets.token_urlsafe(24), True
            if request.method == "POST":
                form = await request.form()
                ctx.form = {k: v for k, v in form.items() if isinstance(v, str)}
                if not self._csrf_ok(ctx):
                    await journal.note(
                        self.core,
                        journal.CSRF_REJECTED,
                        ok=False,
                        origin=ctx.origin,
                        account=ctx.session.account if ctx.session else None,
                        detail=f"POST {request.url.path}",
                    )
                    return self.problem(
                        ctx,
                        403,
                        "Form refused",
                        "The form expired or did not come from this site. Reload the page and try again.",
                    )
            try:
                if login:
                    for guard in self.guards:
                        stop = await guard(ctx)
                        if stop is not None:
                            return stop
                return await handler(ctx)
            except NotFound as exc:
                if ctx.session is not None and not exc.journaled:
                    await journal.note(
                        self.core,
                        journal.FOREIGN_OBJECT,
                        ok=False,
                        origin=ctx.origin,
                        account=ctx.session.account,
                        detail=f"{request.method} {request.url.path[:200]}",
                    )
                return self.problem(ctx, 404, "Not found", "There is nothing here, or it is not yours.")
            except Forbidden as exc:
                await journal.note(
                    self.core,
                    journal.FORBIDDEN,
                    ok=False,
                    origin=ctx.origin,
                    account=ctx.session.account if ctx.session else None,
                    detail=f"{request.method} {request.url.path}: {exc}",
                )
                return self.problem(ctx, 403, "Not allowed", f"Your role does not allow this ({exc}).")

        return endpoint

    def _csrf_ok(self, ctx: Ctx) -> bool:
        given = ctx.form.get("csrf") or ctx.request.headers.get("x-csrf-token", "")
        if ctx.session is not None:
            expected = ctx.session.csrf
        else:
            expected = ctx.request.cookies.get(ANON_COOKIE, "")
        return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())

    async def attempt(
        self,
        ctx: Ctx,
        action: Callable[[], Awaitable[Response]],
        back: Callable[..., Awaitable[Response]],
        form: FormSpec | None = None,
    ) -> Response:
        """Run a service call; a refusal (:class:`ServiceError`) re-renders the page ``back`` with its
        message and status (the service changed nothing), or, given the ``form`` that was sent,
        with each error at its field (``back(ctx, refusal=..., form=...)``, see :meth:`show`)."""
        try:
            return await action()
        except ServiceError as exc:
            if form is not None:
                return await back(ctx, refusal=exc, form=form)
            return await back(ctx, exc.message, exc.status)

    def require(self, ctx: Ctx, permission: str) -> None:
        if not ctx.account.can(permission):
            raise Forbidden(permission)
