"""A group message reaches an instance through the same door as a direct one (messaging.incoming
.receive): a customer's STOP written in a group withdraws their consent, and on a free tier the
group counts as a correspondent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from console_client import new_user
from harness import Server, drain
from sandbox_kit import fresh_number, wait_until
from test_customers import add, contact_rows


def group_with(server: Server, owner_phone: str, inst: dict[str, Any]) -> str:
    r = server.sandbox(
        "POST", f"/phones/{owner_phone}/groups", json={"name": "Customers", "participants": [inst["wid"]]}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def phone_says(server: Server, phone: str, chat_id: str, text: str) -> str:
    r = server.sandbox("POST", f"/phones/{phone}/messages", json={"chatId": chat_id, "message": text})
    assert r.status_code == 200, r.text
    return str(r.json()["idMessage"])


def test_stop_written_in_a_group_opts_the_customer_out(server: Server) -> None:
    owner_name = f"grp{uuid.uuid4().hex[:8]}"
    owner, _ = new_user(server, owner_name)
    shop, customer = fresh_number("7957"), fresh_number("7957")
    server.new_phone(shop, "Shop")
    server.new_phone(customer, "Eve")
    inst = server.new_instance("--link", shop, "--account", owner_name)
    assert add(owner, customer, name="Eve", consent="on", consent_source="form").status_code == 303
    assert contact_rows(owner)[customer] != "opted out"

    group_id = group_with(server, customer, inst)
    phone_says(server, customer, group_id, "Stop!")
    wait_until(lambda: contact_rows(owner)[customer] == "opted out")


def test_a_group_counts_toward_the_free_tier_correspondents(server: Server) -> None:
    operator = (server.demo["operator"]["username"], server.demo["operator"]["password"])
    licensee = (server.demo["console"]["username"], server.demo["console"]["password"])
    code = f"grp-{uuid.uuid4().hex[:8]}"
    r = httpx.post(
        f"{server.url}/api/v1/operator/tariffs",
        auth=operator,
        timeout=60,
        json={"code": code, "name": "Groups", "kind": "free", "price": "0", "limits": {"correspondents": 1}},
    )
    assert r.status_code == 201, r.text
    own, author, stranger = fresh_number("7958"), fresh_number("7958"), fresh_number("7958")
    for number in (author, stranger):
        server.new_phone(number, f"Phone {number[-4:]}")
    inst = server.new_instance("--link", own)
    license_path = f"{server.url}/api/v1/instances/{inst['idInstance']}/license"
    r = httpx.post(license_path, auth=licensee, timeout=60, json={"tariff": code})
    assert r.status_code == 200, r.text
    api = server.api(inst)
    drain(api)

    group_id = group_with(server, author, inst)
    said = phone_says(server, author, group_id, "hello group")

    def quota_used() -> int:
        status = httpx.get(license_path, auth=licensee, timeout=60).json()
        return int({q["method"]: q for q in status["quotas"]}["correspondents"]["used"])

    wait_until(lambda: quota_used() == 1)
    got = api.receiving.receiveNotification(5)
    assert got.code == 200 and got.data is not None, got.error
    body = got.data["body"]
    assert (body["typeWebhook"], body["idMessage"]) == ("incomingMessageReceived", said)
    assert body["senderData"]["chatId"] == group_id and body["senderData"]["chatName"] == "Customers"

    # The only correspondent is the group: a direct message from someone else is not announced.
    api.receiving.deleteNotification(got.data["receiptId"])
    phone_says(server, stranger, inst["wid"], "am I allowed?")
    quota = api.receiving.receiveNotification(5)
    assert quota.code == 200 and quota.data is not None, quota.error
    assert quota.data["body"]["typeWebhook"] == "quotaExceeded"
