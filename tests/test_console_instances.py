"""Instance pages and team management in the console, over plain HTTP."""

from __future__ import annotations

import re
import uuid

from console_client import Console, join_team, new_user
from harness import Server


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_instance(console: Console, name: str = "bot") -> int:
    console.get("/")
    r = console.post("/instances", {"name": name})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def token_of(console: Console, instance_id: int) -> str:
    r = console.get(f"/instances/{instance_id}/token")
    assert r.status_code == 200, r.text
    found = re.search(r">([0-9a-f]{50})<", r.text)
    assert found
    return found.group(1)


def test_settings_form_saves_every_kind_and_refuses_bad_values(server: Server) -> None:
    console, _ = new_user(server, unique("st"))
    instance_id = create_instance(console)
    page = console.get(f"/instances/{instance_id}").text
    for name in (
        "webhookUrl",
        "delaySendMessagesMilliseconds",
        "incomingWebhook",
        "linkPreview",
        "autoTyping",
    ):
        assert f'name="{name}"' in page
    inst = {"idInstance": instance_id, "apiTokenInstance": token_of(console, instance_id)}
    form = {
        "webhookUrl": "https://hooks.example.test/in",
        "webhookUrlToken": "secret-1",
        "delaySendMessagesMilliseconds": "1500",
        "incomingWebhook": "yes",
        "linkPreview": "false",
        "autoTyping": "2",
    }
    r = console.post(f"/instances/{instance_id}/settings", form)
    assert r.status_code == 303
    settings = server.wire(inst, "getSettings").json()
    assert settings["webhookUrl"] == "https://hooks.example.test/in"
    assert settings["delaySendMessagesMilliseconds"] == 1500
    assert settings["incomingWebhook"] == "yes"
    assert settings["linkPreview"] is False
    assert settings["autoTyping"] == 2
    console.get(f"/instances/{instance_id}")
    r = console.post(
        f"/instances/{instance_id}/settings", {**form, "webhookUrl": "ftp://nope", "autoTyping": "0"}
    )
    assert r.status_code == 303
    assert "Settings not saved" in console.get(f"/instances/{instance_id}").text
    after = server.wire(inst, "getSettings").json()
    assert after["webhookUrl"] == "https://hooks.example.test/in" and after["autoTyping"] == 2


def test_pairing_code_links_the_instance(server: Server) -> None:
    console, _ = new_user(server, unique("pc"))
    instance_id = create_instance(console)
    number = "7999" + str(uuid.uuid4().int)[:7]
    server.new_phone(number)
    console.get(f"/instances/{instance_id}")
    r = console.post(f"/instances/{instance_id}/pairing", {"phone": "+" + number})
    assert r.status_code == 303
    page = console.get(r.headers["location"].removeprefix("/console")).text
    code = re.search(r'id="pairing-code">([A-Z0-9]{4}-[A-Z0-9]{4})<', page)
    assert code, page
    r = server.sandbox("POST", f"/phones/{number}/pair", json={"code": code.group(1)})
    assert r.status_code == 200, r.text
    link = console.get(f"/instances/{instance_id}/link").text
    assert 'id="state">authorized<' in link and "hx-trigger" not in link  # stops refreshing
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/logout").status_code == 303
    link = console.get(f"/instances/{instance_id}/link").text
    assert 'id="state">notAuthorized<' in link and 'id="qr"' in link


def test_queues_are_counted_and_cleared(server: Server) -> None:
    console, _ = new_user(server, unique("qu"))
    instance_id = create_instance(console)
    inst = {"idInstance": instance_id, "apiTokenInstance": token_of(console, instance_id)}
    for text in ("one", "two", "three"):  # not linked: the messages wait in the queue
        assert (
            server.wire(
                inst, "sendMessage", verb="POST", json={"chatId": "79990000003@c.us", "message": text}
            ).status_code
            == 200
        )
    activity = console.get(f"/instances/{instance_id}/activity").text
    assert 'id="queued">3<' in activity and "two" in activity
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/queue/clear").status_code == 303
    assert server.wire(inst, "getMessagesCount").json() == {"count": 0}
    assert 'id="queued">0<' in console.get(f"/instances/{instance_id}/activity").text
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/notifications/clear").status_code == 303
    assert server.wire(inst, "getWebhooksCount").json() == {"count": 0}


def test_delete_instance_needs_confirmation(server: Server) -> None:
    console, _ = new_user(server, unique("dl"))
    instance_id = create_instance(console)
    inst = {"idInstance": instance_id, "apiTokenInstance": token_of(console, instance_id)}
    console.get(f"/instances/{instance_id}")
    console.post(f"/instances/{instance_id}/delete", {"confirm": "nope"})
    assert server.wire(inst, "getStateInstance").status_code == 200
    console.get(f"/instances/{instance_id}")
    assert console.post(f"/instances/{instance_id}/delete", {"confirm": str(instance_id)}).status_code == 303
    gone = server.wire(inst, "getStateInstance")  # documented answer for a deleted instance
    assert gone.status_code == 400 and gone.json()["message"] == "Instance is deleted"
    assert console.get(f"/instances/{instance_id}").status_code == 404


def test_the_link_card_of_a_deleted_instance_stops_refreshing(server: Server) -> None:
    """A page left open on an instance deleted meanwhile (or a card pointed at an instance that
    is not the user's) is told to stop: the refresh reloads the page, which says it is gone."""
    console, _ = new_user(server, unique("gl"))
    instance_id = create_instance(console)
    page = console.get(f"/instances/{instance_id}").text
    assert 'hx-trigger="every 3s"' in page  # not linked: the card refreshes itself
    assert console.post(f"/instances/{instance_id}/delete", {"confirm": str(instance_id)}).status_code == 303
    poll = f"/instances/{instance_id}/link?seen=notAuthorized&round=1"
    r = console.get(poll, headers={"HX-Request": "true"})
    # htmx swaps nothing on a 404 and polls on: it must be told to reload (or stop, 286).
    assert r.headers.get("hx-refresh") == "true" or r.status_code == 286, (r.status_code, r.text)
    other, _ = new_user(server, unique("go"))
    r = other.get(
        poll.replace(str(instance_id), str(create_instance(console))), headers={"HX-Request": "true"}
    )
    assert r.headers.get("hx-refresh") == "true" or r.status_code == 286, (r.status_code, r.text)
    assert other.get(f"/instances/{instance_id}").status_code == 404


def test_team_roles_decide_what_members_do(server: Server) -> None:
    owner, _ = new_user(server, unique("ow"))
    instance_id = create_instance(owner)
    developer, developer_id = join_team(server, owner, "developer")
    # A developer sees tokens and changes settings, but neither creates instances nor manages the team.
    token = token_of(developer, instance_id)
    assert len(token) == 50
    developer.get("/")
    assert developer.post("/instances", {"name": "x"}).status_code == 403
    developer.get("/team")
    assert developer.post("/team/invite", {"email": "z@example.test", "role": "admin"}).status_code == 403
    # The owner makes the developer a viewer: tokens disappear at once.
    owner.get("/team")
    assert owner.post(f"/team/{developer_id}/role", {"role": "viewer"}).status_code == 303
    assert developer.get(f"/instances/{instance_id}/token").status_code == 403
    developer.get(f"/instances/{instance_id}")
    assert developer.post(f"/instances/{instance_id}/settings", {"incomingWebhook": "yes"}).status_code == 403
    # Removing the member ends its sessions.
    owner.get("/team")
    assert owner.post(f"/team/{developer_id}/remove").status_code == 303
    assert not developer.logged_in()
    kinds = [e["kind"] for e in owner.events()]
    for kind in ("member_invited", "member_joined", "member_role_changed", "member_removed", "forbidden"):
        assert kind in kinds, kind
    # Another tenant's member ids are not found.
    stranger, _ = new_user(server, unique("st"))
    stranger.get("/team")
    assert stranger.post(f"/team/{developer_id}/role", {"role": "admin"}).status_code == 404


def test_username_change_and_marketing_consent(server: Server) -> None:
    console, password = new_user(server, unique("un"))
    console.get("/account")
    assert console.post("/account/username", {"username": "root", "password": password}).status_code == 400
    new_name = unique("renamed")
    assert console.post("/account/username", {"username": new_name, "password": password}).status_code == 303
    assert Console(server).login(new_name, password).status_code == 303
    page = console.get("/account").text
    assert "Give marketing consent" in page
    assert console.post("/account/marketing", {"granted": "yes"}).status_code == 303
    page = console.get("/account").text
    assert "Withdraw marketing consent" in page
    kinds = [e["kind"] for e in console.events()]
    assert "username_changed" in kinds and "consent_changed" in kinds


def test_operator_reads_the_outbox(server: Server) -> None:
    name = unique("ob")
    new_user(server, name)
    operator = Console(server)
    assert operator.login("operator", server.demo["operator"]["password"]).status_code == 303
    page = operator.get("/operator/outbox").text
    assert f"{name}@example.test" in page and "Your Verdigris account" in page
    # The phone number given at registration got an SMS through the default (outbox) transport.
    assert f"Verdigris: your username is {name}. The password was sent to {name}@example.test." in page
    demo = Console(server)
    demo.login("demo", server.demo["console"]["password"])
    assert demo.get("/operator/outbox").status_code == 403


def test_token_rotation_through_the_api_is_in_the_journal(server: Server) -> None:
    console, _ = new_user(server, unique("ra"))
    instance_id = create_instance(console)
    inst = {"idInstance": instance_id, "apiTokenInstance": token_of(console, instance_id)}
    r = server.wire(inst, "updateApiToken", headers={"User-Agent": "rotating-bot"})
    assert r.status_code == 200
    new_token = r.json()["apiTokenInstance"]
    assert token_of(console, instance_id) == new_token
    rotated = [e for e in console.events() if e["kind"] == "token_rotated"]
    assert rotated and rotated[0]["user"] == "(API)" and rotated[0]["agent"] == "rotating-bot"
    assert rotated[0]["detail"] == f"instance {instance_id} via updateApiToken"
