"""Wire API rules: paths, verbs, status codes, error bodies; bad input changes nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from harness import Server


def _url(server: Server, inst: dict, method: str, token: str | None = None) -> str:
    return f"{server.url}/waInstance{inst['idInstance']}/{method}/{token if token is not None else inst['apiTokenInstance']}"


def _is_error(r: httpx.Response, status: int, fragment: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert body["statusCode"] == status and fragment in body["message"]


def test_method_names_any_case_v3_prefix_and_double_slashes(server: Server) -> None:
    inst = server.instance(0)
    for path in (
        f"/waInstance{inst['idInstance']}/getStateInstance/{inst['apiTokenInstance']}",
        f"/waInstance{inst['idInstance']}/GETSTATEINSTANCE/{inst['apiTokenInstance']}",
        f"/v3/waInstance{inst['idInstance']}/getstateinstance/{inst['apiTokenInstance']}",
        f"//waInstance{inst['idInstance']}//getStateInstance/{inst['apiTokenInstance']}",
        f"/waInstance{inst['idInstance']}/getStateInstance/{inst['apiTokenInstance']}/",
    ):
        r = httpx.get(server.url + path, follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.json() == {"stateInstance": "authorized"}
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)


def test_status_codes(server: Server) -> None:
    inst = server.instance(0)
    _is_error(httpx.get(_url(server, inst, "getStateInstance", "0" * 50)), 401, "Unauthorized")
    _is_error(httpx.get(f"{server.url}/waInstance1234567890/getStateInstance/{'0' * 50}"), 403, "Forbidden")
    _is_error(httpx.get(f"{server.url}/waInstanceABC/getStateInstance/x"), 400, "idInstance not an integer")
    _is_error(httpx.get(_url(server, inst, "noSuchMethod")), 404, "Not Found")
    _is_error(httpx.post(_url(server, inst, "getSettings")), 404, "GET")  # wrong verb
    _is_error(httpx.get(_url(server, inst, "sendMessage")), 404, "POST")
    _is_error(httpx.get(f"{server.url}/waInstance{inst['idInstance']}/getSettings"), 400, "apiTokenInstance")
    assert httpx.options(_url(server, inst, "sendMessage")).status_code == 204
    # An error never redirects, whatever the path looks like.
    assert (
        httpx.get(
            f"{server.url}/waInstance{inst['idInstance']}/getSettings//", follow_redirects=False
        ).status_code
        != 307
    )


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (b"{not json", 400, "Unexpected token"),
        (b"[1,2]", 400, "'value' must be of type object"),
        (b"{}", 400, "'value' must have at least 1 key"),
        (b'{"chatId": "79990000002@c.us"}', 400, "'message' is required"),
        (b'{"message": "x"}', 400, "'chatId' is required"),
        (b'{"chatId": 79990000002, "message": "x"}', 400, "'chatId' must be a string"),
        (b'{"chatId": "79990000002@c.us", "message": ""}', 400, "'message'"),
        (b'{"chatId": "7999000\xd1\x81@c.us", "message": "x"}', 400, "chatId"),
        (b'{"chatId": "79990000002@\xd1\x81.us", "message": "x"}', 400, "chatId"),
        (b'{"chatId": "79990000002@c.us", "message": "x", "typingTime": 10}', 400, "typingTime"),
        (b'{"chatId": "79990000002@c.us", "message": "x", "linkPreview": "maybe"}', 400, "linkPreview"),
    ],
)
def test_bad_send_bodies_answer_400_and_queue_nothing(
    server: Server, payload: bytes, status: int, fragment: str
) -> None:
    inst = server.instance(0)
    before = _outgoing(server, inst)
    r = httpx.post(
        _url(server, inst, "sendMessage"), content=payload, headers={"Content-Type": "application/json"}
    )
    _is_error(r, status, fragment)
    assert _outgoing(server, inst) == before


def _outgoing(server: Server, inst: dict[str, Any]) -> Any:
    """lastOutgoingMessages, waiting out its 429 (1 rps, ×10 in tests: the cases above run faster)."""
    for _ in range(60):
        r = server.wire(inst, "lastOutgoingMessages")
        if r.status_code != 429:
            return r.json()
        time.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError("lastOutgoingMessages stayed rate limited")


def test_too_long_message_is_refused(server: Server) -> None:
    inst = server.instance(0)
    r = httpx.post(
        _url(server, inst, "sendMessage"), json={"chatId": "79990000002@c.us", "message": "x" * 20001}
    )
    _is_error(r, 400, "'message' length must be less than or equal to 20000 characters long")


def test_unknown_fields_are_ignored(server: Server) -> None:
    inst = server.new_instance("--link", "79991120001")
    r = httpx.post(
        _url(server, inst, "sendMessage"),
        json={"chatId": "79990000003@c.us", "message": "hi", "archiveChat": False, "somethingNew": 1},
    )
    assert r.status_code == 200 and r.json()["idMessage"]


def test_get_bodies_are_tolerated(server: Server) -> None:
    """Java and the async Python SDK send JSON bodies on GET requests."""
    inst = server.instance(0)
    r = httpx.request("GET", _url(server, inst, "lastIncomingMessages"), json={"minutes": 5})
    assert r.status_code == 200 and isinstance(r.json(), list)
    r = httpx.request("GET", _url(server, inst, "GetStateInstanceHistory"), content=b"7")
    assert r.status_code == 200 and isinstance(r.json(), list)


def test_set_settings_validation_changes_nothing(server: Server) -> None:
    inst = server.new_instance()
    before = server.wire(inst, "getSettings").json()
    for body, fragment in [
        ({}, "at least 1 key"),
        ({"incomingWebhook": True}, "incomingWebhook"),
        ({"incomingWebhook": "maybe"}, "incomingWebhook"),
        ({"delaySendMessagesMilliseconds": "soon"}, "delaySendMessagesMilliseconds"),
        ({"delaySendMessagesMilliseconds": 600001}, "less than or equal to 600000"),
        ({"webhookUrl": "ftp://example.org"}, "webhookUrl"),
        ({"autoTyping": 9}, "autoTyping"),
    ]:
        _is_error(server.wire(inst, "setSettings", verb="POST", json=body), 400, fragment)
    assert server.wire(inst, "getSettings").json() == before


def test_delay_minimum_is_enforced_by_default(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(env={"VERDIGRIS_SEND_DELAY_MIN_MS": "500", "VERDIGRIS_SEND_DELAY_DEFAULT_MS": "500"})
    inst = srv.instance(0)
    _is_error(
        srv.wire(inst, "setSettings", verb="POST", json={"delaySendMessagesMilliseconds": 100}), 400, "500"
    )
    assert srv.wire(inst, "setSettings", verb="POST", json={"delaySendMessagesMilliseconds": 500}).json() == {
        "saveSettings": True
    }


def test_receive_timeout_bounds(server: Server) -> None:
    inst = server.instance(0)
    _is_error(server.wire(inst, "receiveNotification", params={"receiveTimeout": 61}), 400, "receiveTimeout")
    _is_error(server.wire(inst, "receiveNotification", params={"receiveTimeout": 0}), 400, "receiveTimeout")
    _is_error(server.wire(inst, "receiveNotification", params={"receiveTimeout": "x"}), 400, "receiveTimeout")


def test_delete_notification_errors(server: Server) -> None:
    inst = server.instance(0)
    _is_error(
        httpx.delete(_url(server, inst, "deleteNotification") + "/abc"), 400, "receiptId must be a Number"
    )
    r = httpx.delete(_url(server, inst, "deleteNotification") + "/999999999")
    assert r.status_code == 200 and r.json() == {"result": False}


def test_token_of_another_instance_is_refused(server: Server) -> None:
    a, b = server.instance(0), server.instance(1)
    _is_error(httpx.get(_url(server, a, "getSettings", b["apiTokenInstance"])), 401, "Unauthorized")


def test_openapi_lists_wire_methods(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=60).json()  # built on first call: slow under load
    assert "/waInstance{idInstance}/sendMessage/{apiTokenInstance}" in spec["paths"]
    assert "/sandbox/phones" in spec["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_metrics_count_wire_calls_and_messages(server: Server) -> None:
    inst = server.new_instance("--link", "79991150001")
    server.api(inst).sending.sendMessage("79990000003@c.us", "counted")
    text = httpx.get(f"{server.url}/metrics").text
    assert 'verdigris_wire_requests_total{method="sendMessage",status="200"}' in text
    assert "verdigris_messages_accepted_total" in text
    httpx.get(f"{server.url}/waInstance{inst['idInstance']}/zzzNotAMethod{inst['idInstance']}/x")
    after = httpx.get(f"{server.url}/metrics").text
    assert f"zzzNotAMethod{inst['idInstance']}" not in after  # unknown names never become labels
    assert 'verdigris_wire_requests_total{method="unknown",status="404"}' in after
