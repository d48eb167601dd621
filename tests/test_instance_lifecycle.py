"""Settings, the state machine, QR and pairing-code linking, logout, reboot, token rotation."""

from __future__ import annotations

import base64
import time

from harness import Server, decode_qr, drain, wait_for


def test_settings_round_trip(server: Server) -> None:
    inst = server.new_instance("--no-message-notifications")
    api = server.api(inst)
    settings = api.account.getSettings().data
    flags = [k for k, v in settings.items() if v in ("yes", "no")]
    assert len(flags) >= 15 and all(settings[k] == "no" for k in flags)
    for key in (
        "incomingWebhook",
        "outgoingMessageWebhook",
        "outgoingAPIMessageWebhook",
        "wid",
        "webhookUrl",
        "webhookUrlToken",
        "delaySendMessagesMilliseconds",
    ):
        assert key in settings
    change = {
        "incomingWebhook": "yes",
        "stateWebhook": "yes",
        "webhookUrlToken": "s3cret",
        "delaySendMessagesMilliseconds": 1500,
    }
    assert api.account.setSettings(change).data == {"saveSettings": True}
    after = api.account.getSettings().data
    assert {k: after[k] for k in change} == change
    # Partial update: untouched keys keep their values.
    assert api.account.setSettings({"outgoingWebhook": "yes"}).data == {"saveSettings": True}
    again = api.account.getSettings().data
    assert (
        again["incomingWebhook"] == "yes"
        and again["outgoingWebhook"] == "yes"
        and again["webhookUrlToken"] == "s3cret"
    )


def test_qr_link_authorized_logout(server: Server) -> None:
    inst = server.new_instance("--no-message-notifications")
    api = server.api(inst)
    api.account.setSettings({"stateWebhook": "yes"})
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
    qr = api.account.qr().data
    assert qr["type"] == "qrCode"
    png = base64.b64decode(qr["message"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    payload = decode_qr(qr["message"])
    server.new_phone("79991130001", "Erin")
    linked = server.sandbox("POST", "/phones/79991130001/link", json={"qr": payload})
    assert linked.status_code == 200, linked.text
    assert linked.json() == {
        "idInstance": inst["idInstance"],
        "wid": "79991130001@c.us",
        "stateInstance": "authorized",
    }
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}
    assert api.account.qr().data == {
        "type": "alreadyLogged",
        "message": "instance account already authorized",
    }
    assert api.account.getSettings().data["wid"] == "79991130001@c.us"
    assert api.account.getStatusInstance().data == {"statusInstance": "online"}
    wa = api.account.getWaSettings().data
    assert wa["phone"] == "79991130001" and wa["stateInstance"] == "authorized"
    states = [n["stateInstance"] for n in drain(api) if n["typeWebhook"] == "stateInstanceChanged"]
    assert states == ["starting", "authorized"]
    # The same QR cannot link a second phone.
    server.new_phone("79991130002")
    again = server.sandbox("POST", "/phones/79991130002/link", json={"qr": payload})
    assert again.status_code == 400

    assert api.account.logout().data == {"isLogout": True}
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
    body = wait_for(api, lambda n: n["typeWebhook"] == "stateInstanceChanged")
    assert body["stateInstance"] == "notAuthorized" and body["instanceData"]["wid"] == ""
    history = api.account.getStateInstanceHistory().data
    assert [h["stateInstance"] for h in history[:3]] == ["notAuthorized", "authorized", "starting"]
    assert all(isinstance(h["timestamp"], int) for h in history)


def test_forged_or_stale_qr_is_refused(server: Server) -> None:
    inst = server.new_instance()
    server.new_phone("79991130003")
    for payload in ("hello", f"verdigris-link:{inst['idInstance']}:1:AAAA", ""):
        r = server.sandbox("POST", "/phones/79991130003/link", json={"qr": payload})
        assert r.status_code == 400, r.text
    assert server.api(inst).account.getStateInstance().data == {"stateInstance": "notAuthorized"}


def test_pairing_code(server: Server) -> None:
    inst = server.new_instance()
    api = server.api(inst)
    server.new_phone("79991130004", "Finn")
    r = api.account.getAuthorizationCode(79991130004)
    assert r.code == 200 and r.data["status"] is True and len(r.data["code"]) == 8
    wrong_phone = server.sandbox("POST", "/phones/79990000003/pair", json={"code": r.data["code"]})
    assert wrong_phone.status_code == 400
    assert server.sandbox("POST", "/phones/79991130004/pair", json={"code": "WRONG123"}).status_code == 400
    ok = server.sandbox("POST", "/phones/79991130004/pair", json={"code": r.data["code"]})
    assert ok.status_code == 200 and ok.json()["stateInstance"] == "authorized"
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}
    refused = api.account.getAuthorizationCode(79991130004)
    assert refused.code == 400
    bad = server.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": "+7999"})
    assert bad.status_code == 400 and "phoneNumber" in bad.json()["message"]


def test_reboot_passes_through_starting(server: Server) -> None:
    inst = server.new_instance("--link", "79991130005")
    api = server.api(inst)
    api.account.setSettings({"stateWebhook": "yes"})
    drain(api)
    assert api.account.reboot().data == {"isReboot": True}
    deadline = time.monotonic() + 30
    while api.account.getStateInstance().data["stateInstance"] != "authorized":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    states = [n["stateInstance"] for n in drain(api) if n["typeWebhook"] == "stateInstanceChanged"]
    assert states == ["starting", "authorized"]


def test_update_api_token(server: Server) -> None:
    inst = server.new_instance()
    api = server.api(inst)
    new = api.account.updateApiToken().data["apiTokenInstance"]
    assert len(new) == 50 and new != inst["apiTokenInstance"]
    assert api.account.getStateInstance().code == 401
    # A rotation with the old token answers the documented soft failure, byte for byte.
    r = server.wire(inst, "updateApiToken")
    assert r.status_code == 200 and r.content == b'{"code":401,"description":"Unauthorized"}'
    fresh = server.api({**inst, "apiTokenInstance": new})
    assert fresh.account.getStateInstance().data == {"stateInstance": "notAuthorized"}


def test_sandbox_api_requires_credentials(server: Server) -> None:
    import httpx

    r = httpx.get(f"{server.url}/sandbox/phones")
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    r = httpx.get(f"{server.url}/sandbox/phones", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert server.sandbox("GET", "/phones").status_code == 200
    assert server.sandbox("POST", "/phones", json={"number": "12ab"}).status_code == 400
    assert server.sandbox("GET", "/phones/70000000000").status_code == 404


def test_sandbox_api_can_be_switched_off(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(env={"VERDIGRIS_SANDBOX_API_ENABLED": "false"})
    assert srv.sandbox("GET", "/phones").status_code == 404
    # The network itself still works for the instances.
    assert srv.api(srv.instance(0)).sending.sendMessage(srv.instance(1)["wid"], "still works").code == 200
