"""The partner API (spec 9.10) through the official SDK's GreenApiPartner and over raw HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import Server, cli, wait_for

EXAMPLE_TOKEN = "gac.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst"  # the SDK examples' token
UNAUTHORIZED = b'{"code":401,"description":"Unauthorized"}'
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def partner(server: Server, token: str | None = None) -> Any:
    from whatsapp_api_client_python import API

    return API.GreenApiPartner(token or server.demo["partnerToken"], host=server.url)


def listed(server: Server, token: str | None = None) -> dict[int, dict[str, Any]]:
    r = partner(server, token).partner.getInstances()
    assert r.code == 200, r.error
    assert isinstance(r.data, list)
    return {item["idInstance"]: item for item in r.data}


def test_get_instances_lists_the_accounts_instances(server: Server) -> None:
    items = listed(server)
    for inst in server.demo["instances"]:
        item = items[inst["idInstance"]]
        assert item["apiTokenInstance"] == inst["apiTokenInstance"]
        assert item["name"] == inst["name"]
        assert item["typeInstance"] == "whatsapp"
        assert item["deleted"] is False
        assert TIME.match(item["timeCreated"]), item["timeCreated"]
        assert item["timeDeleted"] == "0001-01-01T00:00:00"
        for key, kind in [
            ("typeAccount", str),
            ("partnerUserUiid", str),
            ("tariff", str),
            ("isFree", bool),
            ("isPartner", bool),
            ("expirationDate", str),
            ("isExpired", bool),
        ]:
            assert isinstance(item[key], kind), key


def test_create_use_and_delete_an_instance(server: Server) -> None:
    api = partner(server)
    created = api.partner.createInstance(
        {
            "name": "made by partner",
            "incomingWebhook": "yes",
            "stateWebhook": "yes",
            "delaySendMessagesMilliseconds": 1000,
        }
    )
    assert created.code == 200, created.error
    assert created.data["typeInstance"] == "whatsapp"
    new_id, new_token = created.data["idInstance"], created.data["apiTokenInstance"]
    assert isinstance(new_id, int) and isinstance(new_token, str) and len(new_token) >= 32

    # The new instance works with the official client and carries the settings from the body.
    inst = {"idInstance": new_id, "apiTokenInstance": new_token}
    client = server.api(inst)
    settings = client.account.getSettings()
    assert settings.code == 200, settings.error
    assert settings.data["incomingWebhook"] == "yes"
    assert settings.data["stateWebhook"] == "yes"
    assert settings.data["outgoingWebhook"] == "no"  # flags not given default to "no"
    assert settings.data["delaySendMessagesMilliseconds"] == 1000
    assert client.account.getStateInstance().data == {"stateInstance": "notAuthorized"}

    # It belongs to the token's account: listed with its name.
    item = listed(server)[new_id]
    assert item["name"] == "made by partner" and item["deleted"] is False

    # It can be linked like any instance and then receives messages.
    phone = "79995550101"
    server.new_phone(phone)
    qr = client.account.qr()
    assert qr.data["type"] == "qrCode"
    from harness import decode_qr

    linked = server.sandbox("POST", f"/phones/{phone}/link", json={"qr": decode_qr(qr.data["message"])})
    assert linked.status_code == 200, linked.text
    wait_for(client, lambda n: n.get("stateInstance") == "authorized")

    deleted = api.partner.deleteInstanceAccount(new_id)
    assert deleted.code == 200, deleted.error
    assert deleted.data == {"deleteInstanceAccount": True}

    # Deleted: every method answers 400 "Instance is deleted" (spec 4.1 / 8.1a) with the right token.
    r = server.wire(inst, "getStateInstance")
    assert r.status_code == 400
    assert r.json()["message"] == "Instance is deleted"
    # ...and a wrong token is still just unauthorized.
    r = server.wire({"idInstance": new_id, "apiTokenInstance": "0" * 50}, "getStateInstance")
    assert r.status_code == 401

    # Still listed (for three months), marked deleted, with its deletion time.
    item = listed(server)[new_id]
    assert item["deleted"] is True
    assert TIME.match(item["timeDeleted"]) and item["timeDeleted"] != "0001-01-01T00:00:00"

    # Deleting twice is refused and changes nothing.
    again = httpx.post(
        f"{server.url}/partner/deleteInstanceAccount/{server.demo['partnerToken']}",
        json={"idInstance": new_id},
    )
    assert again.status_code == 400
    assert again.json()["message"] == "Instance is deleted"


@pytest.mark.parametrize(
    "method,verb", [("getInstances", "GET"), ("createInstance", "POST"), ("deleteInstanceAccount", "POST")]
)
def test_bad_partner_token_is_a_200_with_code_401(server: Server, method: str, verb: str) -> None:
    before = listed(server)
    for token in ["gac.wrong", ""]:
        url = f"{server.url}/partner/{method}/{token}"
        r = httpx.request(verb, url, json={"idInstance": server.instance(0)["idInstance"], "name": "x"})
        assert r.status_code == 200
        assert r.content == UNAUTHORIZED  # byte-exact: the Go SDK compares the text
        assert r.headers["content-type"].startswith("application/json")
    assert listed(server) == before  # nothing was created or deleted
    r = getattr(partner(server, "gac.wrong").partner, method)(
        *([] if verb == "GET" else [{"name": "x"}] if method == "createInstance" else [1])
    )
    assert r.code == 200 and r.data == {"code": 401, "description": "Unauthorized"}


def test_routing_quirks(server: Server) -> None:
    token = server.demo["partnerToken"]
    # Method names in any case, doubled slashes collapsed, never a redirect.
    for path in [f"/partner/GetInstances/{token}", f"//partner//getinstances/{token}"]:
        r = httpx.get(server.url + path, follow_redirects=False)
        assert r.status_code == 200, (path, r.text)
        assert isinstance(r.json(), list)
    assert httpx.get(f"{server.url}/partner/noSuchMethod/{token}").status_code == 404
    assert httpx.get(f"{server.url}/partner/createInstance/{token}").status_code == 404  # wrong verb
    assert httpx.options(f"{server.url}/partner/createInstance/{token}").status_code == 204
    # Errors do not echo the whole partner token.
    r = httpx.get(f"{server.url}/partner/createInstance/{token}")
    assert token not in r.text


def test_bad_bodies_change_nothing(server: Server) -> None:
    token = server.demo["partnerToken"]
    before = listed(server)
    url = f"{server.url}/partner"
    cases: list[tuple[str, Any, str]] = [
        ("createInstance", b"{not json", "Unexpected token"),
        ("createInstance", {}, "'value' must have at least 1 key"),
        ("createInstance", {"unknownOnly": 1}, "at least one parameter"),
        ("createInstance", {"incomingWebhook": "maybe"}, "'incomingWebhook' must be one of"),
        ("createInstance", {"delaySendMessagesMilliseconds": -5}, "delaySendMessagesMilliseconds"),
        ("createInstance", {"webhookUrl": "ftp://x"}, "webhookUrl"),
        ("createInstance", {"name": "n" * 201}, "'name' length"),
        ("deleteInstanceAccount", {}, "'value' must have at least 1 key"),
        ("deleteInstanceAccount", {"idInstance": "abc"}, "'idInstance' must be a number"),
        ("deleteInstanceAccount", {"idInstance": 1}, "not an instance of this partner"),
    ]
    for method, body, expected in cases:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = httpx.post(f"{url}/{method}/{token}", headers={"Content-Type": "application/json"}, **kwargs)
        assert r.status_code == 400, (method, body, r.text)
        assert expected in r.json()["message"], (method, body, r.text)
    assert listed(server) == before


def test_instances_of_another_account_cannot_be_deleted(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    other = cli(srv.data_dir, "partner-token", "--token", EXAMPLE_TOKEN, "--account", "operator")
    assert other["partnerToken"] == EXAMPLE_TOKEN
    demo_id = srv.instance(0)["idInstance"]
    # The operator's partner token sees none of the demo licensee's instances...
    assert demo_id not in listed(srv, EXAMPLE_TOKEN)
    r = partner(srv, EXAMPLE_TOKEN).partner.deleteInstanceAccount(demo_id)
    assert r.code == 400
    # ...and the demo instance keeps working.
    assert srv.api(srv.instance(0)).account.getStateInstance().data == {"stateInstance": "authorized"}
    # Issuing the same token again is idempotent; giving it to another account is refused.
    assert cli(srv.data_dir, "partner-token", "--token", EXAMPLE_TOKEN, "--account", "operator") == other
    with pytest.raises(RuntimeError, match="another account"):
        cli(srv.data_dir, "partner-token", "--token", EXAMPLE_TOKEN)


def test_example_partner_token_can_be_provisioned(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    cli(srv.data_dir, "partner-token", "--token", EXAMPLE_TOKEN)
    api = partner(srv, EXAMPLE_TOKEN)
    # The settings the SDK's CreateInstance example sends.
    flags = [
        "markIncomingMessagesReaded",
        "markIncomingMessagesReadedOnReply",
        "outgoingWebhook",
        "outgoingMessageWebhook",
        "outgoingAPIMessageWebhook",
        "stateWebhook",
        "incomingWebhook",
        "deviceWebhook",
        "keepOnlineStatus",
        "pollMessageWebhook",
        "incomingBlockWebhook",
        "incomingCallWebhook",
        "editedMessageWebhook",
        "deletedMessageWebhook",
    ]
    body: dict[str, Any] = {
        "name": "from the SDK example",
        "webhookUrl": "https://webhook.example.test/hook",
        "webhookUrlToken": "auth_token",
        "delaySendMessagesMilliseconds": 5000,
        **{flag: "yes" for flag in flags},
    }
    created = api.partner.createInstance(body)
    assert created.code == 200, created.error
    settings = srv.api(created.data).account.getSettings().data
    for key, value in body.items():
        if key != "name":
            assert settings[key] == value, key
    items = listed(srv, EXAMPLE_TOKEN)
    assert created.data["idInstance"] in items
    for inst in srv.demo["instances"]:  # the same (demo) account
        assert inst["idInstance"] in items


def test_partner_methods_are_in_the_openapi_document(server: Server) -> None:
    paths = httpx.get(f"{server.url}/openapi.json", timeout=60).json()["paths"]
    assert "get" in paths["/partner/getInstances/{partnerToken}"]
    create = paths["/partner/createInstance/{partnerToken}"]["post"]
    assert "webhookUrl" in str(create["requestBody"])
    assert "post" in paths["/partner/deleteInstanceAccount/{partnerToken}"]


def test_partner_calls_are_rate_limited_without_effect(make_server: Callable[..., Server]) -> None:
    srv = make_server(
        env={
            "VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1",
            "VERDIGRIS_RATE_LIMIT_OVERRIDES": '{"createInstance": 0.001}',
        }
    )
    token = srv.demo["partnerToken"]
    url = f"{srv.url}/partner/createInstance/{token}"
    assert httpx.post(url, json={"name": "one"}).status_code == 200
    refused = httpx.post(url, json={"name": "two"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["message"] == "Too Many Requests"
    names = [item["name"] for item in listed(srv).values()]
    assert "one" in names and "two" not in names
    # A bad token is still answered the documented way, not with 429.
    assert (
        httpx.post(f"{srv.url}/partner/createInstance/gac.nope", json={"name": "x"}).content == UNAUTHORIZED
    )
