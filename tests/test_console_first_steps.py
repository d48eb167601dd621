"""Issue 13 over plain HTTP: what a new user meets in the console, one fix per test.

The browser walk is tests/test_console_journey_browser.py; these check each fix's page answers.
"""

from __future__ import annotations

import html
import re
import uuid

from console_client import Console, new_user
from harness import Server


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_instance(console: Console, **form: str) -> int:
    console.get("/")
    r = console.post("/instances", {"name": "bot", **form})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def shown(page: str, kind: str) -> str:
    """The text of the page's flash ("flash") or error ("error") box, or ""."""
    found = re.search(rf'class="{kind}"[^>]*>([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def test_a_refusal_after_a_redirect_looks_like_an_error(server: Server) -> None:
    console, _ = new_user(server, unique("err"))
    instance_id = create_instance(console)
    console.get(f"/instances/{instance_id}")
    r = console.post(f"/instances/{instance_id}/send", {"chat": "not a number", "message": "hi"})
    assert r.status_code == 303
    page = console.get(f"/instances/{instance_id}").text
    assert shown(page, "error").startswith("Not sent:") and shown(page, "flash") == ""
    r = console.post(f"/instances/{instance_id}/send", {"chat": "79990000003", "message": "hi"})
    page = console.get(f"/instances/{instance_id}").text
    assert shown(page, "flash") == "Message queued." and shown(page, "error") == ""
