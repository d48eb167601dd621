"""Server processes on one PostgreSQL database: a change made through one process holds in the others
at once, on their very next request (issue 15, item 3: store/changes.py). No test waits between
the change and the request that must see it."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import pytest

from console_client import Console
from harness import Server, run_on

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("VERDIGRIS_TEST_DB") != "postgres", reason="several processes share a PostgreSQL store"
    ),
    pytest.mark.subprocess,
]


def join(make_server: Any, first: Server, **env: str) -> Server:
    """Another ``verdigris serve`` process on ``first``'s database (webhooks stay with ``first``)."""
    extra = {
        "VERDIGRIS_DATABASE_URL": first.env["VERDIGRIS_DATABASE_URL"],
        "VERDIGRIS_WEBHOOK_ENABLED": "false",
        **env,
    }
    server: Server = make_server(subprocess=True, env=extra)
    return server


def test_a_token_rotated_through_one_process_is_refused_by_the_others_at_once(make_server: Any) -> None:
    a: Server = make_server(subprocess=True)
    b = join(make_server, a)
    # The control: a process that neither reads the change log nor listens keeps its cached token,
    # which is the defect the change log removes (and shows that this test can fail).
    stale = join(make_server, a, VERDIGRIS_CLUSTER_SYNC="false", VERDIGRIS_CLUSTER_NOTIFY="false")
    inst = stale.instance(0)
    for server in (a, b, stale):
        assert server.wire(inst, "getStateInstance").status_code == 200  # cached in every process

    rotated = a.wire(inst, "updateApiToken")
    assert rotated.status_code == 200, rotated.text
    new = {**inst, "apiTokenInstance": rotated.json()["apiTokenInstance"]}

    refused = b.wire(inst, "getStateInstance")
    assert refused.status_code == 401, refused.text
    assert b.wire(new, "getStateInstance").status_code == 200
    assert stale.wire(inst, "getStateInstance").status_code == 200  # the control still says yes

    # And back the other way, through the console of process B this time.
    console = login(b, stale, "console")
    page = console.get(f"/instances/{inst['idInstance']}")
    assert page.status_code == 200
    assert console.post(f"/instances/{inst['idInstance']}/token").status_code == 303
    assert a.wire(new, "getStateInstance").status_code == 401


def test_a_token_rotated_before_another_process_first_serves_the_instance_is_refused_there(
    make_server: Any,
) -> None:
    """Process B has the instance only in the index it loaded at start (never asked for it yet):
    a rotation through A drops that entry, so B's very first request already sees the new token."""
    a: Server = make_server(subprocess=True)
    b = join(make_server, a)
    inst = b.instance(1)
    rotated = a.wire(inst, "updateApiToken")
    assert rotated.status_code == 200, rotated.text
    new = {**inst, "apiTokenInstance": rotated.json()["apiTokenInstance"]}

    refused = b.wire(inst, "getStateInstance")
    assert refused.status_code == 401, refused.text
    assert b.wire(new, "getStateInstance").status_code == 200


def login(server: Server, newest: Server, who: str = "operator") -> Console:
    """The demo's operator or licensee (``who``: "console") logged in to ``server``'s console; the
    password is the one the last ``demo --new-passwords`` (``newest``'s) set."""
    console = Console(server, user_agent="cluster-test")
    creds = newest.demo[who]
    assert console.login(creds["username"], creds["password"]).status_code == 303
    return console


def account_id(op: Console, username: str) -> int:
    page = op.get(f"/operator/accounts?q={username}").text
    found = re.search(rf'/console/operator/accounts/(\d+)">{re.escape(username)}<', page)
    assert found, page
    return int(found.group(1))


def test_a_blocked_account_is_refused_by_the_others_at_once(make_server: Any) -> None:
    a: Server = make_server(subprocess=True)
    b = join(make_server, a)
    inst = b.instance(0)
    assert b.wire(inst, "getStateInstance").status_code == 200
    op = login(a, b)
    demo = account_id(op, "demo")
    op.get(f"/operator/accounts/{demo}")

    assert op.post(f"/operator/accounts/{demo}/block", {"reason": "cluster check"}).status_code == 303
    refused = b.wire(inst, "getStateInstance")
    assert refused.status_code == 403, refused.text
    assert "blocked by the operator: cluster check" in refused.json()["message"]

    op.get(f"/operator/accounts/{demo}")
    assert op.post(f"/operator/accounts/{demo}/unblock", {"reason": "cleared"}).status_code == 303
    assert b.wire(inst, "getStateInstance").status_code == 200


def test_settings_changed_through_one_process_are_read_by_the_others(make_server: Any) -> None:
    a: Server = make_server(subprocess=True)
    b = join(make_server, a)
    inst = b.instance(1)
    before = b.wire(inst, "getSettings").json()
    assert before["delaySendMessagesMilliseconds"] != 4321
    changed = a.wire(inst, "setSettings", verb="POST", json={"delaySendMessagesMilliseconds": 4321})
    assert changed.status_code == 200, changed.text
    assert b.wire(inst, "getSettings").json()["delaySendMessagesMilliseconds"] == 4321


# --- shared rate limits (issue 15, item 4) ----------------------------------------------------------

SLOW = {"VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1", "VERDIGRIS_RATE_LIMIT_OVERRIDES": '{"getSettings": 0.05}'}


def test_a_rate_limit_holds_in_total_across_processes(make_server: Any) -> None:
    # getSettings limited to one call per 20 seconds (burst 1), in every process.
    a: Server = make_server(subprocess=True, env=SLOW)
    b = join(make_server, a, **SLOW)
    # The control: a process that limits alone lets its own first call through.
    alone = join(make_server, a, VERDIGRIS_RATE_LIMIT_SHARED="false", **SLOW)
    inst = alone.instance(1)
    started = time.monotonic()
    answers = [server.wire(inst, "getSettings") for server in (a, b, a, b, a, b)]
    elapsed = time.monotonic() - started
    allowed = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(allowed) + len(refused) == len(answers), [r.text for r in answers]
    # The GCRA's bound over any stretch of time: the burst plus the rate times the stretch.
    assert 1 <= len(allowed) <= 1 + int(0.05 * elapsed), [r.status_code for r in answers]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert answers[0].status_code == 200  # the first call of a full bucket
    assert alone.wire(inst, "getSettings").status_code == 200  # each process alone: N times the rate


# --- licence quotas in total (issue 15, item 4) -----------------------------------------------------


def limit(server: Server, code: str, limits: dict[str, Any], instance_ids: list[int]) -> None:
    """A free tariff with ``limits`` (operator API), given to the instances (licensee API); the
    credentials are ``server``'s, the last process seeded on the shared database."""
    operator = (server.demo["operator"]["username"], server.demo["operator"]["password"])
    licensee = (server.demo["console"]["username"], server.demo["console"]["password"])
    tariff = {"code": code, "name": "Developer", "kind": "free", "price": "0", "limits": limits}
    made = server.http.post(f"{server.url}/api/v1/operator/tariffs", json=tariff, auth=operator)
    assert made.status_code == 201, made.text
    for instance_id in instance_ids:
        licensed = server.http.post(
            f"{server.url}/api/v1/instances/{instance_id}/license", json={"tariff": code}, auth=licensee
        )
        assert licensed.status_code == 200, licensed.text


def test_licence_quotas_hold_in_total_across_processes(make_server: Any) -> None:
    """A limited licence's monthly method quota and correspondents limit count every process's
    calls: checked and counted in one step in the store (licensing/enforce.py ``_usage_in``)."""
    a: Server = make_server(subprocess=True)
    b = join(make_server, a)
    inst = a.instance(0)
    limit(b, "cluster-dev", {"correspondents": 2, "methods": {"getSettings": 4}}, [int(inst["idInstance"])])

    answers = [server.wire(inst, "getSettings").status_code for server in (a, b, a, b, a, b)]
    assert answers == [200, 200, 200, 200, 466, 466]

    phones = [f"7999555{n:04d}" for n in range(1, 4)]
    for number in phones:
        a.new_phone(number)
    sent = [
        server.wire(inst, "sendMessage", verb="POST", json={"chatId": f"{number}@c.us", "message": "hi"})
        for server, number in zip((a, b, a), phones, strict=True)
    ]
    assert [r.status_code for r in sent] == [200, 200, 466], [r.text for r in sent]
    assert sent[2].json()["correspondentsStatus"]["used"] == 2


def test_deliveries_to_two_limited_instances_in_opposite_order_do_not_deadlock(make_server: Any) -> None:
    """One delivery may receive into several instances in one transaction (the sandbox's group
    and linked-device fan-outs read their instances with no ORDER BY, so two deliveries may take
    them in opposite order). Receiving into instances with a correspondents limit must not make
    two such deliveries wait on each other."""
    srv: Server = make_server()
    ids = [int(srv.instance(n)["idInstance"]) for n in (0, 1)]
    limit(srv, "deadlock-dev", {"correspondents": 5}, ids)

    async def deliveries() -> None:
        core = srv.core
        first, second = [await core.instances.get(i) for i in ids]
        assert first is not None and second is not None
        started = [asyncio.Event(), asyncio.Event()]

        async def deliver(me: int, order: list[Any], group: str) -> None:
            async with core.tx() as tx:
                assert await core.licensing.admit_incoming(tx, order[0], group)
                started[me].set()
                await started[1 - me].wait()  # both deliveries are under way
                assert await core.licensing.admit_incoming(tx, order[1], group)

        await asyncio.wait_for(
            asyncio.gather(
                deliver(0, [first, second], "120363000000000001@g.us"),
                deliver(1, [second, first], "120363000000000002@g.us"),
            ),
            60,
        )

    assert srv.loop is not None
    run_on(srv.loop, deliveries())
