"""The outgoing-queue policy engine: quiet hours, a daily cap and auto-pause after failed sends,
set on the instance page; held messages wait in the queue and go out when the hold ends (the
server's sandbox clock moves time forward); bad input changes nothing."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from console_client import Console
from harness import Server, drain
from sandbox_kit import wait_until


def flash_of(console: Console, path: str) -> str:
    found = re.search(r'class="(?:flash|error)"[^>]*>([^<]*)<', console.get(path).text)
    return html.unescape(found.group(1)) if found else ""


def inbox(srv: Server, phone: str) -> list[str]:
    r = srv.sandbox("GET", f"/phones/{phone}/messages", params={"direction": "incoming"})
    return [m["content"].get("text", "") for m in r.json()]


def settle() -> None:
    """Give the send worker time to act on what it was just asked (a hold must keep holding)."""
    time.sleep(2)


def test_quiet_hours_daily_cap_and_auto_pause(make_server: Any) -> None:
    srv: Server = make_server(env={"VERDIGRIS_SANDBOX_CLOCK": "true", "VERDIGRIS_SEND_DELAY_MIN_MS": "0"})
    inst = srv.instance(0)
    path = f"/instances/{inst['idInstance']}"
    api = srv.api(inst)
    drain(api)
    lee = Console(srv)
    assert lee.login("demo", srv.demo["console"]["password"]).status_code == 303

    def save(**form: str) -> str:
        lee.get(path)
        values = {
            "quiet_from": "",
            "quiet_to": "",
            "timezone": "UTC",
            "daily_limit": "",
            "pause_after_failures": "",
        }
        assert lee.post(path + "/policy", {**values, **form}).status_code == 303
        return flash_of(lee, path)

    # Bad input is refused with the reason and saves nothing.
    assert "both a start and an end" in save(quiet_from="22:00")
    assert "not a time of day" in save(quiet_from="25:00", quiet_to="07:00")
    assert "unknown time zone" in save(timezone="Mars/Olympus")
    assert "a whole number" in save(daily_limit="lots")
    assert 'id="queue-paused"' not in lee.get(path).text and 'value="22:00"' not in lee.get(path).text

    # Quiet hours around "now" (UTC): a message waits in the queue until the window ends.
    now = datetime.now(UTC) + timedelta(seconds=srv.sandbox("GET", "/clock").json()["offsetSeconds"])
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")
    assert save(quiet_from=start, quiet_to=end) == "Sending policy saved."
    ben = "79990000002"
    assert api.sending.sendMessage(f"{ben}@c.us", "after the quiet hours").code == 200
    settle()
    assert "after the quiet hours" not in inbox(srv, ben)
    assert [m["body"]["message"] for m in api.queues.showMessagesQueue().data] == ["after the quiet hours"]
    srv.sandbox("POST", "/clock", json={"advanceSeconds": 3 * 3600})
    wait_until(lambda: "after the quiet hours" in inbox(srv, ben))

    # A daily cap of 2: the third message waits for the next day.
    assert save(daily_limit="2") == "Sending policy saved."
    sent_before = len(inbox(srv, ben))
    # Today's count includes what was already sent today (one message); one more fits.
    for n in range(3):
        assert api.sending.sendMessage(f"{ben}@c.us", f"capped {n}").code == 200
    wait_until(lambda: "capped 0" in inbox(srv, ben))
    settle()
    assert "capped 1" not in inbox(srv, ben) and len(inbox(srv, ben)) == sent_before + 1
    # Just past the next midnight (a full day would also pass the queue's 24-hour retention).
    now = datetime.fromtimestamp(srv.sandbox("GET", "/clock").json()["nowMs"] / 1000, UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    srv.sandbox("POST", "/clock", json={"advanceSeconds": int((midnight - now).total_seconds()) + 60})
    wait_until(lambda: "capped 1" in inbox(srv, ben) and "capped 2" in inbox(srv, ben))

    # Auto-pause after two failed sends in a row; resuming sends what waited.
    assert save(pause_after_failures="2") == "Sending policy saved."
    for number in ("79990099001", "79990099002"):  # not on the network: noAccount
        assert api.sending.sendMessage(f"{number}@c.us", "nobody here").code == 200
    wait_until(lambda: 'id="queue-paused"' in lee.get(path).text)
    assert "paused automatically after 2 failed sends" in html.unescape(lee.get(path).text)
    assert api.sending.sendMessage(f"{ben}@c.us", "waits for resume").code == 200
    settle()
    assert "waits for resume" not in inbox(srv, ben)
    lee.get(path)
    assert lee.post(path + "/resume").status_code == 303
    wait_until(lambda: "waits for resume" in inbox(srv, ben))
    assert 'id="queue-paused"' not in lee.get(path).text

    # A manual pause holds too; a viewer cannot change the policy.
    lee.get(path)
    assert lee.post(path + "/pause").status_code == 303
    assert api.sending.sendMessage(f"{ben}@c.us", "held by hand").code == 200
    settle()
    assert "held by hand" not in inbox(srv, ben)
    assert [m["body"]["message"] for m in api.queues.showMessagesQueue().data] == ["held by hand"]
    lee.get(path)
    assert lee.post(path + "/resume").status_code == 303
    wait_until(lambda: "held by hand" in inbox(srv, ben))
