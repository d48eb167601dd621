"""Issue 13 items 8 and 9: refusals read as written for people, and forms keep what was typed
with each error next to its field."""

from __future__ import annotations

import html
import re
import uuid

from console_client import Console, new_user
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
