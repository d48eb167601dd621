"""Odd input found by the OpenAPI fuzzer (tests/test_openapi_fuzz.py), kept as plain regression tests.

Bad input gets a 4xx in the face's own format and changes nothing: never a 5xx, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from harness import Server

SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() is true for it, int() refuses it
ARABIC_DIGITS = "\u0661\u0662\u0663\u0664\u0665\u0666\u0667"  # int() takes these, chat ids must not


def patient(send: Callable[..., httpx.Response], *args: Any, **kwargs: Any) -> httpx.Response:
    """Send, waiting out a 429 (rate limits stay on in tests; raw HTTP does not retry by itself)."""
    deadline = time.monotonic() + 60
    while True:
        r = send(*args, **kwargs)
        if r.status_code != 429 or time.monotonic() > deadline:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))


def wire_url(srv: Server, inst: dict[str, Any], method: str, *, id_instance: Any = None) -> str:
    ident = inst["idInstance"] if id_instance is None else id_instance
    return f"{srv.url}/waInstance{ident}/{method}/{inst['apiTokenInstance']}"


def assert_wire_error(r: httpx.Response, status: int, text: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert text in r.json()["message"], r.json()


def test_id_instance_must_be_ascii_digits_within_range(server: Server) -> None:
    inst = server.instance(0)
    for ident in (SUPERSCRIPT_TWO, "7" + SUPERSCRIPT_TWO, ARABIC_DIGITS, "9" * 20, str(2**63)):
        r = patient(httpx.get, wire_url(server, inst, "getSettings", id_instance=ident), timeout=30)
        assert_wire_error(r, 400, "Parameter idInstance not an integer")
    # The largest 64-bit id is a well-formed id of no instance.
    r = patient(httpx.get, wire_url(server, inst, "getSettings", id_instance=2**63 - 1), timeout=30)
    assert_wire_error(r, 403, "Forbidden")


def test_receipt_id_must_be_ascii_digits(server: Server) -> None:
    inst = server.new_instance("--link", "79996660001")
    for receipt in (SUPERSCRIPT_TWO, ARABIC_DIGITS):
        r = patient(httpx.delete, wire_url(server, inst, "deleteNotification") + "/" + receipt, timeout=30)
        assert_wire_error(r, 400, "receiptId must be a Number")
        r = patient(server.wire, inst, "deleteNotification", verb="DELETE", json={"receiptId": receipt})
        assert_wire_error(r, 400, "receiptId must be a Number")
    # Beyond the store's 64-bit ids (the documented int64): refused like any other non-number.
    r = patient(httpx.delete, wire_url(server, inst, "deleteNotification") + "/" + "9" * 30, timeout=30)
    assert_wire_error(r, 400, "receiptId must be a Number")
    r = patient(httpx.delete, wire_url(server, inst, "deleteNotification") + "/" + str(2**63 - 1), timeout=30)
    assert r.status_code == 200 and r.json() == {"result": False}


def test_chat_ids_take_ascii_digits_only(server: Server) -> None:
    inst = server.new_instance("--link", "79996660002")
    for chat_id in (f"{ARABIC_DIGITS}@c.us", "79990000003@c.us\n", f"7999{SUPERSCRIPT_TWO}0000003@c.us"):
        r = patient(server.wire, inst, "sendMessage", verb="POST", json={"chatId": chat_id, "message": "hi"})
        assert_wire_error(r, 400, "'chatId' must be a chat id")
    assert patient(server.wire, inst, "getMessagesCount").json() == {"count": 0}
    assert patient(server.wire, inst, "lastOutgoingMessages").json() == []


def test_pairing_phone_number_takes_ascii_digits_only(server: Server) -> None:
    inst = server.new_instance()
    r = patient(
        server.wire, inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": ARABIC_DIGITS * 2}
    )
    assert_wire_error(r, 400, "'phoneNumber' must contain only digits")


def test_sandbox_refuses_odd_digits_in_phone_numbers_and_qr_codes(server: Server) -> None:
    r = patient(server.sandbox, "POST", "/phones", json={"number": ARABIC_DIGITS * 2})
    assert r.status_code == 400 and "7 to 15 digits" in r.json()["detail"]
    for qr in (f"verdigris-link:{SUPERSCRIPT_TWO}:1:x", f"verdigris-link:1:{SUPERSCRIPT_TWO}:x"):
        r = patient(server.sandbox, "POST", "/phones/79990000003/link", json={"qr": qr})
        assert r.status_code == 400, r.text
        assert "not a Verdigris QR code" in r.json()["detail"]


def test_integer_parameters_are_strict(server: Server) -> None:
    inst = server.new_instance("--link", "79996660003")
    base = wire_url(server, inst, "lastIncomingMessages")
    for query in (
        "minutes=%D9%A3",
        "minutes=5_000",
        "minutes=%205",
        "minutes=1.5",
        "minutes=",
        "minutes=" + "9" * 40,
    ):
        assert_wire_error(patient(httpx.get, f"{base}?{query}", timeout=30), 400, "'minutes' must be")
    assert_wire_error(
        patient(httpx.get, f"{base}?minutes=5&minutes=", timeout=30), 400, "'minutes' must be given once"
    )
    # The async SDK sends the parameter as a JSON body on the GET: JSON integers only.
    for body in ({"minutes": "x"}, {"minutes": False}, {"minutes": 5.5}, {"minutes": [5]}):
        r = patient(server.wire, inst, "lastIncomingMessages", json=body)
        assert_wire_error(r, 400, "'minutes' must be a number")
    assert patient(server.wire, inst, "lastIncomingMessages", params={"minutes": "60"}).json() == []
    assert patient(server.wire, inst, "lastIncomingMessages", json={"minutes": 60}).json() == []


def test_nul_characters_and_lone_surrogates_are_refused_everywhere(server: Server) -> None:
    inst = server.new_instance("--link", "79996660004")
    nul = '{"chatId": "79990000003@c.us", "message": "a\\u0000b"}'
    r = patient(server.wire, inst, "sendMessage", verb="POST", content=nul)
    assert_wire_error(r, 400, "NUL character")
    r = patient(server.wire, inst, "setSettings", verb="POST", content='{"webhookUrlToken": "x\\u0000"}')
    assert_wire_error(r, 400, "NUL character")
    r = patient(
        server.wire,
        inst,
        "sendMessage",
        verb="POST",
        content='{"chatId": "79990000003@c.us", "message": "\\ud800"}',
    )
    assert_wire_error(r, 400, "in JSON at position")
    assert patient(server.wire, inst, "getMessagesCount").json() == {"count": 0}
    assert patient(server.wire, inst, "getSettings").json()["webhookUrlToken"] == ""

    partner = server.demo["partnerToken"]
    r = patient(
        httpx.post,
        f"{server.url}/partner/createInstance/{partner}",
        content='{"name": "a\\u0000"}',
        timeout=30,
    )
    assert r.status_code == 400 and "NUL character" in r.json()["message"]
    r = patient(httpx.get, f"{server.url}/partner/getInstances/{partner}%00", timeout=30)
    assert r.status_code == 200 and r.json() == {"code": 401, "description": "Unauthorized"}

    r = patient(server.sandbox, "GET", "/phones/7999%00")
    assert r.status_code == 400 and "NUL character" in r.json()["detail"]
    r = patient(server.sandbox, "GET", "/phones/79990000001/messages", params={"chatId": "a\x00"})
    assert r.status_code == 400 and "NUL character" in r.json()["detail"]
    for name in ('"a\\u0000"', '"a\\udc00"'):
        r = patient(
            server.sandbox, "POST", "/phones", content='{"number": "79996669999", "name": ' + name + "}"
        )
        assert r.status_code == 400, r.text
    assert patient(server.sandbox, "GET", "/phones/79996669999").status_code == 404


def test_body_fields_take_their_documented_json_types_only(server: Server) -> None:
    inst = server.new_instance("--link", "79996660005")
    before = patient(server.wire, inst, "getSettings").json()
    for body, detail in (
        ({"linkPreview": 0}, "'linkPreview' must be a boolean"),
        ({"enableLidMode": "yes"}, "'enableLidMode' must be a boolean"),
        ({"autoTyping": True}, "'autoTyping' must be a number"),
        ({"delaySendMessagesMilliseconds": "1000"}, "'delaySendMessagesMilliseconds' must be a number"),
        ({"webhookUrl": 5}, "'webhookUrl' must be a string"),
    ):
        r = patient(server.wire, inst, "setSettings", verb="POST", json=body)
        assert_wire_error(r, 400, detail)
    assert patient(server.wire, inst, "getSettings").json() == before
    send = {"chatId": "79990000003@c.us", "message": "hi"}
    for extra, detail in (
        ({"linkPreview": 1}, "'linkPreview' must be a boolean"),
        ({"typingTime": "5000"}, "'typingTime' must be a number"),
        ({"typingTime": 5000.5}, "'typingTime' must be"),
        ({"customPreview": {"title": 5}}, "'customPreview.title' must be a string"),
    ):
        r = patient(server.wire, inst, "sendMessage", verb="POST", json={**send, **extra})
        assert_wire_error(r, 400, detail)
    assert patient(server.wire, inst, "getMessagesCount").json() == {"count": 0}
    # Well-typed bodies still work, nested objects included.
    r = patient(
        server.wire, inst, "sendMessage", verb="POST", json={**send, "typingTime": 1000, "linkPreview": False}
    )
    assert r.status_code == 200 and "idMessage" in r.json()
    r = patient(server.wire, inst, "setSettings", verb="POST", json={"linkPreview": False, "autoTyping": 2})
    assert r.json() == {"saveSettings": True}


def test_deleting_a_receipt_id_beyond_32_bits_is_a_plain_miss(server: Server) -> None:
    """A receiptId past 32 bits (the store's ids are 64-bit) that is not in the queue is a plain miss."""
    inst = server.new_instance("--link", "79996660006")
    for receipt in (2**31, 2**63 - 2):
        r = patient(httpx.delete, f"{wire_url(server, inst, 'deleteNotification')}/{receipt}", timeout=30)
        assert r.status_code == 200 and r.json() == {"result": False}, r.text


def test_webhook_settings_must_be_deliverable(server: Server) -> None:
    inst = server.new_instance()
    before = patient(server.wire, inst, "getSettings").json()
    for body, detail in (
        ({"webhookUrl": "http://"}, "'webhookUrl' must be an http"),
        ({"webhookUrl": "http://exa mple.com/hook"}, "'webhookUrl' must be an http"),
        ({"webhookUrl": "http://\x01x/"}, "'webhookUrl' must be an http"),
        ({"webhookUrl": "http://x:99999/"}, "'webhookUrl' must be an http"),
        ({"webhookUrlToken": "Bearer a\r\nX-Injected: 1"}, "'webhookUrlToken' must be printable ASCII"),
        ({"webhookUrlToken": "caf\u00e9"}, "'webhookUrlToken' must be printable ASCII"),
    ):
        assert_wire_error(patient(server.wire, inst, "setSettings", verb="POST", json=body), 400, detail)
    assert patient(server.wire, inst, "getSettings").json() == before
    ok = {"webhookUrl": "https://example.test:8443/hook?a=1", "webhookUrlToken": "Bearer abc-123"}
    assert patient(server.wire, inst, "setSettings", verb="POST", json=ok).json() == {"saveSettings": True}
    assert patient(server.wire, inst, "setSettings", verb="POST", json={"webhookUrl": ""}).json() == {
        "saveSettings": True
    }


def test_oversized_json_bodies_are_refused_before_they_fill_memory(server: Server) -> None:
    inst = server.new_instance("--link", "79996660007")
    huge = b'{"chatId": "79990000003@c.us", "message": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = patient(server.wire, inst, "sendMessage", verb="POST", content=huge)
    assert_wire_error(r, 413, "Payload Too Large")

    def chunked() -> Any:  # no Content-Length: the limit applies while the body streams in
        yield b'{"chatId": "79990000003@c.us", "message": "'
        for _ in range(80):
            yield b"y" * 65536
        yield b'"}'

    r = patient(server.wire, inst, "sendMessage", verb="POST", content=chunked())
    assert_wire_error(r, 413, "Payload Too Large")
    assert patient(server.wire, inst, "getMessagesCount").json() == {"count": 0}
    partner = server.demo["partnerToken"]
    r = patient(httpx.post, f"{server.url}/partner/createInstance/{partner}", content=huge, timeout=30)
    assert r.status_code == 413 and "Payload Too Large" in r.json()["message"]
