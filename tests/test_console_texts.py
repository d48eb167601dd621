"""Issue 13 items 8 and 9: refusals read as written for people, and forms keep what was typed
with each error next to its field."""

from __future__ import annotations

import html
import re
import uuid

from console_client import Console, mail_text, new_user, outbox_mail
from harness import Server
from verdigris.words import cleaned, duration, plural


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_box(page: str) -> str:
    found = re.search(r'class="error"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else ""


def test_counts_and_durations_read_naturally() -> None:
    assert plural(1, "session") == "1 session"
    assert plural(0, "payment") == "0 payments"
    assert plural(2, "entry", "entries") == "2 entries"
    assert duration(30 * 86400) == "30 days"
    assert duration(86400) == "1 day"
    assert duration(5400) == "1.5 hours"
    assert duration(90) == "1.5 minutes"
    assert duration(1) == "1 second"
    assert cleaned("Value error, must be a URL") == "must be a URL"
    assert cleaned("b'missing ): (abc'") == "missing ): (abc"


def test_refusals_carry_no_library_internals(server: Server) -> None:
    console, _ = new_user(server, unique("txt"))
    console.get("/")
    r = console.post("/instances", {"name": "bot"})
    instance_id = int(r.headers["location"].rsplit("/", 1)[1])
    page = f"/instances/{instance_id}"
    console.get(page)
    console.post(f"{page}/settings", {"delaySendMessagesMilliseconds": "soon"})
    error = error_box(console.get(page).text)
    assert error.startswith("Settings not saved: Pause between two sent messages"), error
    assert "Value error" not in error and "None" not in error

    op = Console(server)
    op.login(server.demo["operator"]["username"], server.demo["operator"]["password"])
    op.get("/operator/screening")
    r = op.post("/operator/screening/rules", {"kind": "pattern", "value": "(abc", "action": "block"})
    error = error_box(r.text)
    assert r.status_code == 400 and error.endswith("missing ): (abc"), error
    assert "b'" not in error and "(?i)" not in error


def field_error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error"[^>]*>([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def input_value(page: str, field_id: str) -> str | None:
    found = re.search(rf'<input id="{field_id}"[^>]*?value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def test_the_sign_up_form_shows_every_error_at_its_field_and_keeps_the_input(server: Server) -> None:
    console = Console(server)
    page = console.get("/register").text
    # Required fields are marked before anything is sent.
    for name in ("name", "email", "username"):
        assert re.search(
            rf'<label for="f-{name}"[^>]*>\s*<span class="label-text">[^<]*<span class="req"', page
        ), name
    assert not re.search(
        r'<label for="f-phone"[^>]*>\s*<span class="label-text">[^<]*<span class="req"', page
    )
    taken = server.demo["console"]["username"]
    r = console.post(
        "/register",
        {
            "name": "Lee Example",
            "email": "not-an-address",
            "phone": "12",
            "username": taken,
            "organisation": "Lee & Co",
        },
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 5 marked fields."
    assert field_error(r.text, "f-email") == "Not a valid address"
    assert "7 to 15 digits" in field_error(r.text, "f-phone")
    assert "is taken" in field_error(r.text, "f-username")
    assert "user agreement" in field_error(r.text, "f-accept_agreement")
    assert "personal data" in field_error(r.text, "f-accept_privacy")
    assert field_error(r.text, "f-name") == ""
    # What was typed is still there.
    assert input_value(r.text, "f-name") == "Lee Example"
    assert input_value(r.text, "f-email") == "not-an-address"
    assert input_value(r.text, "f-organisation") == "Lee & Co"
    assert input_value(r.text, "f-username") == taken
    assert "username: " not in error_box(r.text)


def test_the_password_rules_are_stated_up_front_and_errors_stay_at_their_form(server: Server) -> None:
    console, password = new_user(server, unique("pw"))
    page = console.get("/account").text
    rules = re.search(r'id="password-new_password-hint">([^<]*)<', page)
    assert rules and "At least 10 characters" in rules.group(1)
    r = console.post(
        "/account/password",
        {"password": "not-my-password", "new_password": "short", "repeat_password": "short"},
    )
    assert r.status_code == 400
    assert field_error(r.text, "password-password") == "Wrong"
    assert field_error(r.text, "username-password") == ""  # the other form on the page is untouched
    r = console.post(
        "/account/password",
        {
            "password": password,
            "new_password": "Tulip-Anchor-Violin-42",
            "repeat_password": "Tulip-Anchor-Violin-4",
        },
    )
    assert (
        r.status_code == 400 and field_error(r.text, "password-repeat_password") == "The two entries differ"
    )
    r = console.post("/account/username", {"username": "root", "password": password})
    assert r.status_code == 400 and "reserved" in field_error(r.text, "username-username")
    assert input_value(r.text, "username-username") == "root"


def test_the_join_form_keeps_what_was_typed_and_shows_each_error(server: Server) -> None:
    owner, _ = new_user(server, unique("own"))
    address = f"{unique('m')}@example.test"
    owner.get("/team")
    assert "selected>viewer<" in owner.get("/team").text  # the least powerful role first
    assert owner.post("/team/invite", {"email": address, "role": "viewer"}).status_code == 303
    link = re.search(r"(http\S+/console/invite/\S+)", mail_text(outbox_mail(server.data_dir, address)))
    assert link
    path = link.group(1).split("/console", 1)[1]
    member = Console(server)
    page = member.get(path).text
    assert "At least 10 characters" in page  # the password rules before the first try
    wanted = unique("joiner")
    r = member.post(path, {"username": wanted, "password": "short"})
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert "At least 10 characters" in field_error(r.text, "f-password")
    assert "user agreement" in field_error(r.text, "f-accept_agreement")
    assert input_value(r.text, "f-username") == wanted
    assert 'value="short"' not in r.text  # a password is never sent back
    r = member.post(
        path,
        {
            "username": wanted,
            "password": "Member-Pass-9999",
            "accept_agreement": "on",
            "accept_privacy": "on",
        },
    )
    assert r.status_code == 303
