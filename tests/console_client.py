"""Drive the console over plain HTTP (for security tests) and read the mails it sends."""

from __future__ import annotations

import email
import email.policy
import html
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from harness import Server

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
ROW_RE = re.compile(
    r'<tr class="(?:ok|bad)">\s*<td[^>]*>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>'
    r"\s*<td>([^<]*)</td>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>([^<]*)</td>",
)


class Console:
    """A browser-like client: keeps cookies, takes the CSRF token from each page it reads."""

    def __init__(self, server: Server, user_agent: str = "console-test") -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, headers={"User-Agent": user_agent}, timeout=60)
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        r = self.http.get("/console" + path, **kwargs)
        found = CSRF_RE.search(r.text)
        if found:
            self.csrf = found.group(1)
        return r

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        return self.http.post("/console" + path, data=form)

    def login(self, username: str, password: str) -> httpx.Response:
        self.get("/login")
        return self.post("/login", {"username": username, "password": password, "next": ""})

    def logged_in(self) -> bool:
        r = self.http.get("/console/")
        return r.status_code == 200 and 'id="logout"' in r.text

    def events(self, path: str = "/events") -> list[dict[str, str]]:
        r = self.get(path)
        assert r.status_code == 200, r.text
        keys = ("at", "kind", "ok", "user", "ip", "agent", "detail")
        return [
            dict(zip(keys, (html.unescape(v) for v in m.groups()), strict=True))
            for m in ROW_RE.finditer(r.text)
        ]


def outbox_mail(
    data_dir: Path, to: str, subject_part: str = "", timeout: float = 30
) -> email.message.EmailMessage:
    """The newest mail to ``to`` that the server wrote to its outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = data_dir / "outbox"
        if folder.is_dir():
            for path in sorted(folder.glob("*.eml"), reverse=True):
                msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                if msg["To"] == to and subject_part in str(msg["Subject"]):
                    return msg  # type: ignore[return-value]
        time.sleep(0.2)
    raise AssertionError(f"no mail to {to} in the outbox")


def mail_text(msg: Any) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return str(part.get_content())


def credentials(text: str) -> tuple[str, str, str]:
    """(username, password, verification link) from the credentials mail."""
    username = re.search(r"username: (\S+)", text)
    password = re.search(r"password: (\S+)", text)
    link = re.search(r"(http\S+/console/verify/\S+)", text)
    assert username and password and link, text
    return username.group(1), password.group(1), link.group(1)


def register(console: Console, username: str, email_address: str, **extra: str) -> httpx.Response:
    console.get("/register")
    form = {
        "name": extra.pop("name", "Test User"),
        "email": email_address,
        "phone": extra.pop("phone", "+79991112233"),
        "organisation": extra.pop("organisation", "Test Org"),
        "username": username,
        "accept_agreement": "on",
        "accept_privacy": "on",
    }
    form.update(extra)
    return console.post("/register", form)


def new_user(server: Server, username: str, **extra: str) -> tuple[Console, str]:
    """Register ``username`` through the console (``extra``: more form fields, e.g. marketing="on"),
    confirm the address, log in; returns (client, password)."""
    console = Console(server)
    address = f"{username}@example.test"
    r = register(console, username, address, **extra)
    assert r.status_code == 200 and "Check your mail" in r.text, r.text
    _, password, link = credentials(mail_text(outbox_mail(server.data_dir, address)))
    assert console.http.get(link).status_code in (200, 303)
    r = console.login(username, password)
    assert r.status_code == 303, r.text
    return console, password


def join_team(server: Server, owner: Console, role: str) -> tuple[Console, int]:
    """Invite a member with ``role`` by mail, accept the invitation, log in; returns (client, member id)."""
    address = f"m{uuid.uuid4().hex[:10]}@example.test"
    owner.get("/team")
    assert owner.post("/team/invite", {"email": address, "role": role}).status_code == 303
    link = re.search(r"(http\S+/console/invite/\S+)", mail_text(outbox_mail(server.data_dir, address)))
    assert link
    path = link.group(1).split("/console", 1)[1]
    member = Console(server)
    member.get(path)
    username = f"u{uuid.uuid4().hex[:10]}"
    r = member.post(
        path,
        {
            "username": username,
            "password": "Member-Pass-9999",
            "accept_agreement": "on",
            "accept_privacy": "on",
        },
    )
    assert r.status_code == 303, r.text
    assert member.login(username, "Member-Pass-9999").status_code == 303
    member_id = re.findall(r"/console/team/(\d+)/remove", owner.get("/team").text)
    return member, int(member_id[-1])
