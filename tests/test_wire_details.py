"""Wire details a migrating bot trips over: file links on a separate media origin, the URLs
`verdigris demo --json` prints, and what a 401 answer gives away."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from console_client import Console
from contract import notifications as contract
from harness import Server, cli, create_postgres_database, free_port, wait_for

_numbers = itertools.count(79997310001)

# What GREEN-API serves on its media host: the upload methods and the file links.
MEDIA_PATH = re.compile(r"^/(media/|waInstance\d+/(uploadFile|sendFileByUpload)/)")


class MediaHost:
    """A separate origin in front of the server (as a CDN or a files-only proxy would be) that
    forwards the media paths and refuses everything else, and remembers what it forwarded."""

    def __init__(self, upstream: Callable[[], str]) -> None:
        self.forwarded: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                if not MEDIA_PATH.match(self.path):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                host.forwarded.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                r = httpx.request(
                    self.command, upstream() + self.path, content=body, headers=headers, timeout=60
                )
                self.send_response(r.status_code)
                for key in ("Content-Type", "Content-Disposition"):
                    if key in r.headers:
                        self.send_header(key, r.headers[key])
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = _forward  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def media_host() -> Iterator[tuple[MediaHost, list[Server]]]:
    servers: list[Server] = []
    host = MediaHost(lambda: servers[0].url)
    yield host, servers
    host.httpd.shutdown()


def test_files_live_on_the_configured_media_origin(
    make_server: Callable[..., Server], media_host: tuple[MediaHost, list[Server]], tmp_path: Path
) -> None:
    host, servers = media_host
    srv = make_server(env={"VERDIGRIS_PUBLIC_MEDIA_URL": host.url + "/"})
    servers.append(srv)
    a_inst = srv.new_instance("--link", str(next(_numbers)))
    b_inst = srv.new_instance("--link", str(next(_numbers)))
    assert a_inst["apiUrl"] == srv.url and a_inst["mediaUrl"] == host.url
    from whatsapp_api_client_python import API

    # The SDK as GREEN-API's examples use it: API calls to apiUrl, media methods to mediaUrl.
    a = API.GreenAPI(str(a_inst["idInstance"]), a_inst["apiTokenInstance"], host=srv.url, media=host.url)
    path = tmp_path / "invoice.pdf"
    path.write_bytes(os.urandom(30_000))
    sent = a.sending.sendFileByUpload(b_inst["wid"], str(path), caption="on the media host")
    assert sent.code == 200, sent.error
    assert sent.data["urlFile"].startswith(host.url + "/media/")
    uploaded = a.sending.uploadFile(str(path))
    assert uploaded.code == 200, uploaded.error
    assert uploaded.data["urlFile"].startswith(host.url + "/media/")
    assert any("/sendFileByUpload/" in p for p in host.forwarded)
    assert any("/uploadFile/" in p for p in host.forwarded)

    # The receiving side's link, its journal and downloadFile all point at the media origin.
    body = wait_for(
        srv.api(b_inst),
        lambda n: (
            n.get("idMessage") == sent.data["idMessage"] and n["typeWebhook"] == "incomingMessageReceived"
        ),
    )
    link = body["messageData"]["fileMessageData"]["downloadUrl"]
    assert link.startswith(host.url + "/media/")
    assert httpx.get(link, timeout=30).content == path.read_bytes()
    download = srv.api(b_inst).receiving.downloadFile(a_inst["wid"], sent.data["idMessage"])
    assert download.code == 200 and download.data["downloadUrl"] == link
    # The demo and the partner API say where media live too.
    assert cli(srv.data_dir, "demo", "--json", env=srv.env)["mediaUrl"] == host.url


def test_demo_json_prints_the_running_servers_urls(make_server: Callable[..., Server]) -> None:
    port = free_port()
    srv = make_server(port=port)
    info = cli(srv.data_dir, "demo", "--json", env=srv.env)  # no --port: the server's own URLs
    assert info["apiUrl"] == f"http://127.0.0.1:{port}" and info["mediaUrl"] == info["apiUrl"]
    assert all(i["apiUrl"] == info["apiUrl"] for i in info["instances"])
    assert info["sandbox"]["url"] == f"http://127.0.0.1:{port}/sandbox"
    # An explicit --port still wins (for a server that is not running yet).
    assert cli(srv.data_dir, "demo", "--json", "--port", "7800", env=srv.env)["apiUrl"].endswith(":7800")


def test_a_wrong_token_is_not_echoed(server: Server) -> None:
    inst = server.instance(0)
    wrong = "f" * 50
    for method in ("getSettings", "getStateInstance", "sendMessage", "uploadFile"):
        verb = "POST" if method in ("sendMessage", "uploadFile") else "GET"
        r = httpx.request(verb, f"{server.url}/waInstance{inst['idInstance']}/{method}/{wrong}", timeout=30)
        assert r.status_code == 401
        assert wrong not in r.text and wrong[:5] not in r.json()["path"]
    from whatsapp_api_client_python import API

    answer = API.GreenAPI(str(inst["idInstance"]), wrong, host=server.url).account.getSettings()
    assert answer.code == 401 and wrong not in str(answer.error)


def test_a_queued_status_is_known_to_the_status_methods(server: Server) -> None:
    inst = server.new_instance("--link", str(next(_numbers)))
    friend = str(next(_numbers))
    server.new_phone(friend, "Friend")
    api = server.api(inst)
    api.account.setSettings({"delaySendMessagesMilliseconds": 600000, "outgoingWebhook": "yes"})
    first = api.sending.sendMessage(f"{friend}@c.us", "hello").data["idMessage"]
    wait_for(api, lambda n: n.get("idMessage") == first and n.get("status") == "delivered")
    # The message went out; the pacing gap now holds everything queued behind it.
    answers = {
        "extendedTextMessage": api.statuses.sendTextStatus("Queued text", "#228B22", "SERIF"),
        "audioMessage": api.statuses.sendVoiceStatus("https://example.com/v.mp3", "v.mp3"),
        "imageMessage": api.statuses.sendMediaStatus("https://example.com/p.jpg", "p.jpg", "cap"),
    }
    posted = {r.data["idMessage"]: type_message for type_message, r in answers.items()}
    assert api.queues.getMessagesCount().data == {"count": 3}

    listed = {s["idMessage"]: s for s in api.statuses.getOutgoingStatuses().data}
    for id_message, type_message in posted.items():
        assert listed[id_message]["statusMessage"] == "pending"
        assert listed[id_message]["typeMessage"] == type_message
        assert listed[id_message]["sendByApi"] is True
        stats = api.statuses.getStatusStatistic(id_message)
        assert stats.code == 200 and stats.data == []
    text = next(i for i, t in posted.items() if t == "extendedTextMessage")
    assert listed[text]["extendedTextMessage"]["text"] == "Queued text"
    # An id the server never issued is still unknown.
    assert api.statuses.getStatusStatistic("BAE5F4886F6F2D05").code == 400

    # Once they leave the queue they are listed once each, with the network's state.
    api.account.setSettings({"delaySendMessagesMilliseconds": 0})
    for id_message in posted:
        wait_for(api, lambda n, i=id_message: n.get("idMessage") == i and n.get("status") == "delivered")
    after = [s for s in api.statuses.getOutgoingStatuses().data if s["idMessage"] in posted]
    assert sorted(s["idMessage"] for s in after) == sorted(posted)
    assert all(s["statusMessage"] == "delivered" for s in after)
    assert api.statuses.getStatusStatistic(text).data[0]["participant"] == f"{friend}@c.us"


def test_reboot_shows_starting_to_a_client_polling_once_a_second(server: Server) -> None:
    inst = server.new_instance("--link", str(next(_numbers)))
    api = server.api(inst)
    assert api.account.reboot().data == {"isReboot": True}
    seen: list[str] = []
    for _ in range(60):  # a bot's loop: wait a second, ask getStateInstance, until it is back
        time.sleep(1)
        state = api.account.getStateInstance().data["stateInstance"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "authorized":
            break
    assert seen == ["starting", "authorized"]


def _instance_events(api: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` notifications, each checked against the official webhook schema."""
    bodies: list[dict[str, Any]] = []
    while len(bodies) < count:
        bodies.append(wait_for(api, lambda n: True))
        contract.validate(bodies[-1])
    return bodies


def test_socket_status_changes_are_notified(server: Server) -> None:
    inst = server.new_instance("--link", str(next(_numbers)))
    api = server.api(inst)
    api.account.setSettings({"statusInstanceWebhook": "yes"})
    # reboot: the socket closes and opens again.
    assert api.account.reboot().data == {"isReboot": True}
    bodies = _instance_events(api, 2)
    assert [b["typeWebhook"] for b in bodies] == ["statusInstanceChanged"] * 2
    assert [b["statusInstance"] for b in bodies] == ["offline", "online"]
    assert bodies[0]["instanceData"]["idInstance"] == inst["idInstance"]
    # logout closes it; linking a phone opens it.
    assert api.account.logout().data == {"isLogout": True}
    assert [b["statusInstance"] for b in _instance_events(api, 1)] == ["offline"]
    assert api.account.getStatusInstance().data == {"statusInstance": "offline"}
    number = str(next(_numbers))
    server.new_phone(number)
    code = api.account.getAuthorizationCode(int(number)).data["code"]
    assert server.sandbox("POST", f"/phones/{number}/pair", json={"code": code}).status_code == 200
    assert [b["statusInstance"] for b in _instance_events(api, 1)] == ["online"]
    assert api.account.getStatusInstance().data == {"statusInstance": "online"}
    # Switched off, nothing comes.
    api.account.setSettings({"statusInstanceWebhook": "no", "stateWebhook": "yes"})
    assert api.account.reboot().code == 200
    assert {b["typeWebhook"] for b in _instance_events(api, 2)} == {"stateInstanceChanged"}


def test_simultaneous_blocks_of_one_pair_change_it_once(make_server: Any) -> None:
    """On PostgreSQL (where writers do not queue as on SQLite) eight blocks, then eight unblocks, of
    one pair at once: no error, exactly one of each reports a change, one notification each."""
    srv: Server = make_server(env={"VERDIGRIS_DATABASE_URL": create_postgres_database()})
    inst = srv.new_instance("--link", str(next(_numbers)))
    api = srv.api(inst)
    api.account.setSettings({"incomingBlockWebhook": "yes"})
    number = str(next(_numbers))
    srv.new_phone(number, "Blocker")
    headers = {"Authorization": f"Bearer {srv.demo['sandbox']['token']}"}
    for action in ("block", "unblock"):
        url = f"{srv.url}/sandbox/phones/{number}/{action}"
        with ThreadPoolExecutor(8) as pool:
            calls = [
                pool.submit(httpx.post, url, json={"chatId": inst["wid"]}, headers=headers, timeout=60)
                for _ in range(8)
            ]
            answers = [call.result() for call in calls]
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
        assert sorted(r.json()["changed"] for r in answers) == [False] * 7 + [True]
        event = _instance_events(api, 1)[0]
        assert event["chatState"] == ("blocked" if action == "block" else "unblocked")
    assert api.receiving.receiveNotification(1).data is None  # nothing announced twice


def test_a_phone_blocking_the_account_is_notified(server: Server) -> None:
    inst = server.new_instance("--link", str(next(_numbers)))
    api = server.api(inst)
    api.account.setSettings({"incomingBlockWebhook": "yes", "outgoingWebhook": "yes"})
    number = str(next(_numbers))
    server.new_phone(number, "Blocker")
    blocker = f"{number}@c.us"

    r = server.sandbox("POST", f"/phones/{number}/block", json={"chatId": inst["wid"]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "chatId": inst["wid"],
        "blocked": True,
        "changed": True,
        "blockedChats": [inst["wid"]],
    }
    body = _instance_events(api, 1)[0]
    assert body["typeWebhook"] == "incomingBlock"
    assert body["chatId"] == blocker and body["chatState"] == "blocked"
    # Blocking twice changes nothing and announces nothing.
    again = server.sandbox("POST", f"/phones/{number}/block", json={"chatId": inst["wid"]})
    assert again.status_code == 200 and again.json()["changed"] is False

    # While blocked, messages to the phone stay "sent" and never reach it; it cannot write back.
    sent = api.sending.sendMessage(blocker, "are you there?").data["idMessage"]
    wait_for(api, lambda n: n.get("idMessage") == sent and n.get("status") == "sent")
    assert api.journals.getMessage(blocker, sent).data["statusMessage"] == "sent"
    phone_messages = server.sandbox("GET", f"/phones/{number}/messages").json()
    assert sent not in [m["idMessage"] for m in phone_messages]
    refused = server.sandbox(
        "POST", f"/phones/{number}/messages", json={"chatId": inst["wid"], "message": "hi"}
    )
    assert refused.status_code == 400 and "unblock" in refused.json()["detail"]

    r = server.sandbox("POST", f"/phones/{number}/unblock", json={"chatId": inst["wid"]})
    assert r.status_code == 200 and r.json()["blockedChats"] == []
    body = _instance_events(api, 1)[0]
    assert body["typeWebhook"] == "incomingBlock" and body["chatState"] == "unblocked"
    delivered = api.sending.sendMessage(blocker, "back again").data["idMessage"]
    wait_for(api, lambda n: n.get("idMessage") == delivered and n.get("status") == "delivered")

    # Bad requests change nothing.
    for bad in ("123@g.us", "1" * 60 + "@c.us", "abc@c.us"):
        assert server.sandbox("POST", f"/phones/{number}/block", json={"chatId": bad}).status_code == 400
    assert server.sandbox("POST", f"/phones/{number}/block", json={"chatId": blocker}).status_code == 400
    assert (
        server.sandbox("POST", "/phones/70000000009/block", json={"chatId": inst["wid"]}).status_code == 404
    )
    assert server.sandbox("GET", f"/phones/{number}").status_code == 200


def test_device_info_is_declared_unsupported(server: Server) -> None:
    compatibility = (Path(__file__).parent.parent / "docs" / "compatibility.md").read_text()
    assert "| `deviceInfo` | `deviceWebhook` | **never**" in compatibility
    console = Console(server)
    assert console.login("demo", server.demo["console"]["password"]).status_code == 303
    page = console.get(f"/instances/{server.instance(0)['idInstance']}").text
    label = re.search(r'data-setting="deviceWebhook">([^<]*)<', page)
    assert label and "never sent by this server" in label.group(1)
