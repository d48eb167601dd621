"""The outgoing queue: pacing, inspection, clearing, durability; the notification queue's counters."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import Server, drain, run_on, wait_for


def test_pacing_spaces_sends_by_the_configured_delay(server: Server) -> None:
    a = server.new_instance("--link", "79991140001")
    b = server.new_instance("--link", "79991140002")
    api, bapi = server.api(a), server.api(b)
    api.account.setSettings({"delaySendMessagesMilliseconds": 1500})
    drain(api), drain(bapi)
    started = time.monotonic()
    ids = [api.sending.sendMessage(b["wid"], f"paced {i}").data["idMessage"] for i in range(3)]
    queue = api.queues.showMessagesQueue().data
    # The first goes out at once; the others wait their turn, in order.
    assert [item["messageID"] for item in queue] == ids[len(ids) - len(queue) :]
    assert len(queue) >= 1
    assert queue[-1]["type"] == "sendMessage" and queue[-1]["body"]["message"] == "paced 2"
    arrived = [
        wait_for(bapi, lambda n: n["typeWebhook"] == "incomingMessageReceived")["idMessage"] for _ in ids
    ]
    elapsed = time.monotonic() - started
    assert arrived == ids  # FIFO
    assert elapsed >= 2.5  # loosely: two gaps of 1.5 s; never asserted tightly
    assert api.queues.getMessagesCount().data == {"count": 0}


def test_the_first_send_in_a_process_keeps_the_pace_of_the_last_send_in_the_store(make_server) -> None:  # type: ignore[no-untyped-def]
    """A process that has not sent for an instance yet (just started, or the instance's partition
    just moved to it) takes the last send's time from the store, whatever wakes the instance
    first: a wake-up that came before the start-up planning once let the next message go at once."""
    srv = make_server()
    a, b = srv.instance(0), srv.instance(1)
    api = srv.api(a)
    assert api.account.setSettings({"delaySendMessagesMilliseconds": 600000}).code == 200
    first = api.sending.sendMessage(b["wid"], "now").data["idMessage"]
    deadline = time.monotonic() + 30
    while api.queues.getMessagesCount().data["count"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.journals.getMessage(b["wid"], first).data["statusMessage"] in ("sent", "delivered", "read")
    # This process forgets the instance's last send, as a fresh one knows nothing of it.
    run_on(srv.loop, _forget(srv.core.sender, int(a["idInstance"])))
    second = api.sending.sendMessage(b["wid"], "in ten minutes").data["idMessage"]
    time.sleep(1)  # the wrongly planned send went out within milliseconds
    assert [item["messageID"] for item in api.queues.showMessagesQueue().data] == [second]


def test_the_first_send_in_a_process_keeps_the_file_gap_of_the_last_file_in_the_store(
    make_server: Any, tmp_path: Any
) -> None:
    """After a start or a partition move the gap between two files of an instance is still the
    file gap: the store says whether the last send was a file."""
    srv = make_server(env={"VERDIGRIS_FILE_SEND_GAP_MS": "600000"})
    a, b = srv.instance(0), srv.instance(1)
    api = srv.api(a)
    assert api.account.setSettings({"delaySendMessagesMilliseconds": 500}).code == 200
    upload = tmp_path / "report.txt"
    upload.write_text("quarterly figures")
    first = api.sending.sendFileByUpload(b["wid"], str(upload)).data["idMessage"]
    deadline = time.monotonic() + 30
    while api.queues.getMessagesCount().data["count"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.journals.getMessage(b["wid"], first).data["statusMessage"] in ("sent", "delivered", "read")
    run_on(srv.loop, _forget(srv.core.sender, int(a["idInstance"])))  # as a fresh process knows nothing
    second = api.sending.sendFileByUpload(b["wid"], str(upload)).data["idMessage"]
    time.sleep(2)  # a wrongly planned file goes after half a second
    assert [item["messageID"] for item in api.queues.showMessagesQueue().data] == [second]


def test_a_wake_up_during_the_typing_time_does_not_cut_it_short(make_server) -> None:  # type: ignore[no-untyped-def]
    """A message with a typing time waits all of it, whatever wakes its instance meanwhile (the
    periodic sweep of a worker, another accepted message): such a wake-up once sent it at once."""
    srv = make_server()
    a, b = srv.instance(0), srv.instance(1)
    api = srv.api(a)
    sent = api.sending.sendMessage(b["wid"], "after typing", typingTime=20000)
    assert sent.code == 200, sent.error
    time.sleep(0.5)  # its typing time has begun
    run_on(srv.loop, srv.core.sender.plan_queued())  # the sweep's wake-up
    time.sleep(1)  # the wrongly woken send went out within milliseconds
    assert [item["messageID"] for item in api.queues.showMessagesQueue().data] == [sent.data["idMessage"]]


async def _forget(sender: Any, instance_id: int) -> None:
    sender.forget(instance_id)


def test_clear_messages_queue_withdraws_unsent(server: Server) -> None:
    a = server.new_instance("--link", "79991140003")
    b = server.new_instance("--link", "79991140004")
    api, bapi = server.api(a), server.api(b)
    api.account.setSettings({"delaySendMessagesMilliseconds": 600000})
    drain(bapi)
    ids = [api.sending.sendMessage(b["wid"], f"m{i}").data["idMessage"] for i in range(3)]
    wait_for(bapi, lambda n: n.get("idMessage") == ids[0])  # the first went out at once
    assert api.queues.getMessagesCount().data == {"count": 2}
    assert [i["messageID"] for i in api.queues.showMessagesQueue().data] == ids[1:]
    assert api.queues.clearMessagesQueue().data == {"isCleared": True}
    assert api.queues.getMessagesCount().data == {"count": 0}
    assert api.queues.showMessagesQueue().data == []
    assert bapi.receiving.receiveNotification(1).data is None


def test_unauthorized_instance_queues_until_linked(server: Server) -> None:
    inst = server.new_instance()
    b = server.new_instance("--link", "79991140005")
    api, bapi = server.api(inst), server.api(b)
    drain(bapi)
    sent = api.sending.sendMessage(b["wid"], "waiting for a phone").data["idMessage"]
    assert api.queues.getMessagesCount().data == {"count": 1}
    assert bapi.receiving.receiveNotification(1).data is None
    code = api.account.getAuthorizationCode(79991140006).data["code"]
    server.new_phone("79991140006")
    assert server.sandbox("POST", "/phones/79991140006/pair", json={"code": code}).status_code == 200
    assert wait_for(bapi, lambda n: n.get("idMessage") == sent)["senderData"]["sender"] == "79991140006@c.us"


def test_webhooks_count_and_clear(server: Server) -> None:
    a = server.new_instance("--link", "79991140007")
    b = server.new_instance("--link", "79991140008")
    api, bapi = server.api(a), server.api(b)
    drain(bapi)
    for i in range(3):
        api.sending.sendMessage(b["wid"], f"n{i}")
    deadline = time.monotonic() + 30
    while bapi.queues.getWebhooksCount().data["count"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = bapi.queues.clearWebhooksQueue()
    assert r.code == 200 and r.data == {"isCleared": True, "reason": ""}
    assert bapi.queues.getWebhooksCount().data == {"count": 0}
    again = bapi.queues.clearWebhooksQueue().data
    assert again["isCleared"] is False and again["reason"] == "Too many requests" and again["leftTime"] > 0


@pytest.mark.subprocess
def test_accepted_messages_and_notifications_survive_kill_9(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(subprocess=True)  # killed below
    a, b = srv.instance(0), srv.instance(1)
    api = srv.api(a)
    paced = api.account.setSettings({"delaySendMessagesMilliseconds": 600000})
    assert paced.code == 200, paced.error
    ids = [api.sending.sendMessage(b["wid"], f"durable {i}").data["idMessage"] for i in range(3)]
    waiting = srv.api(b).queues.getWebhooksCount().data["count"]
    srv.kill()  # kill -9 right after the 200s

    again = make_server(env=srv.env, data_dir=srv.data_dir, port=srv.port)  # same store
    api2 = again.api(a)
    queued = [item["messageID"] for item in api2.queues.showMessagesQueue().data]
    sent_first = api2.journals.getMessage(b["wid"], ids[0]).data
    # Nothing accepted is lost: the first left the queue (before the kill, or at once after the
    # restart) and is in the journal as sent; the rest waits its pace, in order. (A wake-up at the
    # restart once let the second go too: the pace now counts from the store's last send.)
    gone = [i for i in ids if i not in queued]
    assert queued == ids[len(gone) :] and gone == ids[: len(gone)] and len(gone) <= 1, (queued, ids)
    for id_message in gone:
        assert api2.journals.getMessage(b["wid"], id_message).data["statusMessage"] in (
            "sent",
            "delivered",
            "read",
        )
    assert sent_first["idMessage"] == ids[0]
    assert again.api(b).queues.getWebhooksCount().data["count"] >= waiting
    # After the restart the queue keeps its pace and order: shorten the gap and everything arrives.
    api2.account.setSettings({"delaySendMessagesMilliseconds": 0})
    got = []
    deadline = time.monotonic() + 60
    bapi = again.api(b)
    while len(got) < len(ids) and time.monotonic() < deadline:
        r = bapi.receiving.receiveNotification(5)
        if r.data is None:
            continue
        body = r.data["body"]
        if body["typeWebhook"] == "incomingMessageReceived" and body["idMessage"] not in got:
            got.append(body["idMessage"])
        bapi.receiving.deleteNotification(r.data["receiptId"])
    assert got == ids
