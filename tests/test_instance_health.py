"""Per-instance health where people look for it (issue 18, point 5): the console's instance page,
Prometheus at /metrics (totals by state plus the worst few instances), and the operator's list of
instances that are authorized but silent."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from console_client import Console
from harness import Server, wait_for
from sandbox_kit import wait_until
from webhook_receivers import ScriptedReceiver

_numbers = itertools.count(79997420001)
TOP = 2


def metrics(srv: Server) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of /metrics: name → {sorted labels: value}."""
    r = httpx.get(f"{srv.url}/metrics", timeout=30)
    assert r.status_code == 200
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_instance(samples: dict[tuple[tuple[str, str], ...], float]) -> dict[int, float]:
    return {int(dict(labels)["instance"]): value for labels, value in samples.items()}


@pytest.fixture
def failing_hook() -> Iterator[ScriptedReceiver]:
    receiver = ScriptedReceiver(fail_first=10**9).start()  # answers 500, always
    yield receiver
    receiver.stop()


@pytest.fixture
def srv(make_server: Callable[..., Server]) -> Server:
    return make_server(env={"VERDIGRIS_METRICS_TOP_INSTANCES": str(TOP), "VERDIGRIS_SANDBOX_CLOCK": "true"})


def linked(srv: Server) -> tuple[dict[str, Any], Any]:
    inst = srv.new_instance("--link", str(next(_numbers)))
    return inst, srv.api(inst)


def health_card(console: Console, instance_id: int) -> dict[str, str]:
    page = console.get(f"/instances/{instance_id}").text
    assert 'id="instance-health"' in page
    fragment = console.get(f"/instances/{instance_id}/health")
    assert fragment.status_code == 200
    values = {}
    for key in ("queued", "notifications", "lag", "webhook-error"):
        found = re.search(rf'<dd id="health-{key}"[^>]*>(.*?)</dd>', fragment.text, re.S)
        assert found, key
        values[key] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()
    lag = re.search(r'data-lag-ms="(\d+)"', fragment.text)
    assert lag
    values["lag_ms"] = lag.group(1)
    return values


def test_health_on_the_console_and_in_metrics(srv: Server, failing_hook: ScriptedReceiver) -> None:
    hooked, hooked_api = linked(srv)  # its webhook answers 500: notifications pile up, lag grows
    queued, queued_api = linked(srv)  # a long send delay: messages wait in its outgoing queue
    polled, polled_api = linked(srv)  # nobody polls it
    customer = str(next(_numbers))
    srv.new_phone(customer, "Customer")

    queued_api.account.setSettings({"delaySendMessagesMilliseconds": 600000, "outgoingWebhook": "yes"})
    first = queued_api.sending.sendMessage(f"{customer}@c.us", "first").data["idMessage"]
    wait_for(queued_api, lambda n: n.get("idMessage") == first and n.get("status") == "delivered")
    for i in range(3):
        assert queued_api.sending.sendMessage(f"{customer}@c.us", f"waits {i}").code == 200
    assert queued_api.queues.getMessagesCount().data == {"count": 3}

    polled_api.account.setSettings({"stateWebhook": "yes"})
    assert polled_api.account.reboot().code == 200
    wait_until(lambda: polled_api.queues.getWebhooksCount().data["count"] == 2)

    hooked_api.account.setSettings({"stateWebhook": "yes"})
    assert hooked_api.account.reboot().code == 200
    wait_until(lambda: hooked_api.queues.getWebhooksCount().data["count"] == 2)
    hooked_api.account.setSettings({"webhookUrl": failing_hook.url})
    wait_until(lambda: failing_hook.requests.snapshot())

    # The console's instance page, for its owner (the demo account).
    console = Console(srv)
    assert console.login("demo", srv.demo["console"]["password"]).status_code == 303
    card = wait_until(
        lambda: (c := health_card(console, hooked["idInstance"]))["webhook-error"] != "none" and c
    )
    assert card["queued"] == "0" and card["notifications"].startswith("2 (pushed to the webhook)")
    assert "HTTP 500" in card["webhook-error"] and "still failing since" in card["webhook-error"]
    assert int(card["lag_ms"]) > 0
    card = health_card(console, queued["idInstance"])
    assert card["queued"] == "3" and card["webhook-error"] == "none"
    card = health_card(console, polled["idInstance"])
    assert card["notifications"].startswith("2 (taken by receiveNotification)")
    # Someone else's instance has no card for this account (404, as its page).
    other = Console(srv)
    assert other.login("operator", srv.demo["operator"]["password"]).status_code == 303
    assert other.get(f"/instances/{hooked['idInstance']}/health").status_code == 404

    # /metrics: totals by state, and only the TOP worst instances by id.
    found = metrics(srv)
    authorized = (("state", "authorized"),)
    assert found["verdigris_instances"][authorized] >= 5  # the demo's two and these three
    assert found["verdigris_outgoing_queued_messages"][authorized] >= 3
    assert found["verdigris_notifications_waiting"][authorized] >= 4
    assert found["verdigris_webhooks_failing_instances"][authorized] == 1
    lags = by_instance(found["verdigris_instance_webhook_lag_seconds"])
    queues = by_instance(found["verdigris_instance_outgoing_queued_messages"])
    assert len(lags) <= TOP and len(queues) <= TOP
    # The oldest waiting notifications are those of the instances rebooted first (polled, then hooked).
    assert set(lags) == {polled["idInstance"], hooked["idInstance"]}
    assert lags[polled["idInstance"]] >= lags[hooked["idInstance"]] > 0
    assert queues[queued["idInstance"]] == 3

    # Taking the notifications away clears the lag; the totals follow.
    polled_api.queues.clearWebhooksQueue()
    after = metrics(srv)
    assert polled["idInstance"] not in by_instance(after["verdigris_instance_webhook_lag_seconds"])
    assert health_card(console, polled["idInstance"])["lag"].startswith("none")


def silent_ids(console: Console, hours: str | None = None) -> list[int]:
    r = console.get("/operator/silent" + (f"?hours={hours}" if hours is not None else ""))
    assert r.status_code == 200, r.text
    return [int(i) for i in re.findall(r'<tr data-instance="(\d+)">', r.text)]


def test_operator_sees_instances_authorized_but_silent(srv: Server) -> None:
    quiet, _ = linked(srv)
    chatty, _ = linked(srv)
    customer = str(next(_numbers))
    srv.new_phone(customer, "Customer")
    operator = Console(srv)
    assert operator.login("operator", srv.demo["operator"]["password"]).status_code == 303
    assert quiet["idInstance"] not in silent_ids(operator)  # just linked

    assert srv.sandbox("POST", "/clock", json={"advanceSeconds": 25 * 3600}).status_code == 200
    assert quiet["idInstance"] in silent_ids(operator)  # default: 24 hours
    # A reboot is no sign of life.
    quiet_api = srv.api(quiet)
    assert quiet_api.account.reboot().code == 200
    wait_until(lambda: quiet_api.account.getStateInstance().data["stateInstance"] == "authorized")
    assert quiet["idInstance"] in silent_ids(operator)
    assert quiet["idInstance"] not in silent_ids(operator, "48")
    # A message, either way, ends the silence.
    r = srv.sandbox("POST", f"/phones/{customer}/messages", json={"chatId": chatty["wid"], "message": "hi"})
    assert r.status_code == 200, r.text
    wait_until(lambda: chatty["idInstance"] not in silent_ids(operator))
    assert quiet["idInstance"] in silent_ids(operator, "1.5")
    # Unlinked instances are not zombies.
    assert quiet_api.account.logout().code == 200
    assert quiet["idInstance"] not in silent_ids(operator)

    # Bad input: a clear error, no list.
    for bad in ("abc", "0", "-3", "nan", "1e9"):
        r = operator.get(f"/operator/silent?hours={bad}")
        assert r.status_code == 400 and "Hours must be a number" in r.text
        assert 'id="silent-instances"' not in r.text
    # Operators only.
    demo = Console(srv)
    assert demo.login("demo", srv.demo["console"]["password"]).status_code == 303
    assert demo.get("/operator/silent").status_code == 403
    # The overview points at it.
    assert "/operator/silent" in operator.get("/").text
