"""The first thing a newcomer does: start the server, send from A to B with the official SDK."""

from __future__ import annotations

from harness import Server, wait_for


def test_demo_workspace_has_two_linked_instances(server: Server) -> None:
    demo = server.demo
    assert isinstance(demo["partnerToken"], str) and demo["partnerToken"]
    assert len(demo["instances"]) >= 2
    for inst in demo["instances"]:
        assert isinstance(inst["idInstance"], int)
        assert isinstance(inst["apiTokenInstance"], str)
        assert inst["wid"].endswith("@c.us")
        assert inst["stateInstance"] == "authorized"
    assert demo["console"]["username"] and demo["console"]["password"]


def test_a_sends_b_receives(server: Server) -> None:
    a, b = server.api(server.instance(0)), server.api(server.instance(1))
    sent = a.sending.sendMessage(server.instance(1)["wid"], "hello from A")
    assert sent.code == 200, sent.error
    body = wait_for(b, lambda n: n.get("idMessage") == sent.data["idMessage"])
    assert body["typeWebhook"] == "incomingMessageReceived"
    assert body["senderData"]["sender"] == server.instance(0)["wid"]
    assert body["messageData"]["textMessageData"]["textMessage"] == "hello from A"
