"""Files through the official SDK and the sandbox: upload, links, fetch by URL, download, limits.

One server for the module, with a 2 MB file limit (so oversized bodies stay cheap) and no 5 s gap
between file messages (the gap itself belongs to the send worker's tests). Each test makes its
own instances, so notification counts are its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from harness import Server, wait_for

LIMIT = 2 * 1024 * 1024
_numbers = itertools.count(79995550001)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("media"),
        env={
            "VERDIGRIS_MEDIA_MAX_FILE_BYTES": str(LIMIT),
            "VERDIGRIS_FILE_SEND_GAP_MS": "0",
            "VERDIGRIS_MEDIA_FETCH_ALLOW_PRIVATE": "true",  # the test web server is on 127.0.0.1
        },
    ).start()
    yield server
    server.stop()


class Files:
    """A little web server for sendFileByUrl: path → bytes."""

    def __init__(self) -> None:
        self.content: dict[str, bytes] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                data = files.content.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, data: bytes) -> str:
        self.content[path] = data
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture(scope="module")
def web() -> Iterator[Files]:
    files = Files()
    yield files
    files.httpd.shutdown()


def pair(srv: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two fresh linked instances that can message each other."""
    return srv.new_instance("--link", str(next(_numbers))), srv.new_instance("--link", str(next(_numbers)))


def make_file(tmp_path: Path, name: str, size: int = 20_000) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def received(srv: Server, inst: dict[str, Any], id_message: str) -> dict[str, Any]:
    return wait_for(
        srv.api(inst),
        lambda n: n.get("idMessage") == id_message and n["typeWebhook"] == "incomingMessageReceived",
    )


def status(srv: Server, inst: dict[str, Any], id_message: str, wanted: str) -> dict[str, Any]:
    return wait_for(
        srv.api(inst),
        lambda n: (
            n.get("idMessage") == id_message
            and n["typeWebhook"] == "outgoingMessageStatus"
            and n["status"] == wanted
        ),
        timeout=60,
    )


def fetch(url: str) -> bytes:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def queued_count(srv: Server, inst: dict[str, Any]) -> int:
    return int(srv.wire(inst, "getMessagesCount").json()["count"])


def stored_files(srv: Server) -> list[Path]:
    root = srv.data_dir / "media"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- sendFileByUpload ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "mime"),
    [
        ("photo.jpg", "imageMessage", "image/jpeg"),
        ("clip.mp4", "videoMessage", "video/mp4"),
        ("voice.mp3", "audioMessage", "audio/mpeg"),
        ("report.pdf", "documentMessage", "application/pdf"),
        ("data.unknownext", "documentMessage", "application/octet-stream"),
    ],
)
def test_sdk_sends_files_and_bytes_round_trip(
    srv: Server, tmp_path: Path, name: str, kind: str, mime: str
) -> None:
    a_inst, b_inst = pair(srv)
    a, b = srv.api(a_inst), srv.api(b_inst)
    path = make_file(tmp_path, name)
    sent = a.sending.sendFileByUpload(b_inst["wid"], str(path), caption="see attached")
    assert sent.code == 200, sent.error
    assert sent.data["urlFile"].endswith("/" + name)
    assert fetch(sent.data["urlFile"]) == path.read_bytes()

    body = received(srv, b_inst, sent.data["idMessage"])
    assert body["senderData"]["sender"] == a_inst["wid"]
    data = body["messageData"]
    assert data["typeMessage"] == kind
    file_data = data["fileMessageData"]
    assert file_data["fileName"] == name
    assert file_data["caption"] == "see attached"
    assert file_data["mimeType"] == mime
    assert fetch(file_data["downloadUrl"]) == path.read_bytes()

    # Both journals show the file; downloadFile answers its link on both sides.
    entry = b.journals.getMessage(a_inst["wid"], sent.data["idMessage"])
    assert entry.code == 200 and entry.data["typeMessage"] == kind
    assert entry.data["downloadUrl"] == file_data["downloadUrl"] and entry.data["fileName"] == name
    for api, chat in ((b, a_inst["wid"]), (a, b_inst["wid"])):
        link = api.receiving.downloadFile(chat, sent.data["idMessage"])
        assert link.code == 200, link.error
        assert fetch(link.data["downloadUrl"]) == path.read_bytes()
    history = a.journals.getChatHistory(b_inst["wid"], 10)
    assert any(m["idMessage"] == sent.data["idMessage"] and m["downloadUrl"] for m in history.data)


def test_sync_sdk_raw_utf8_file_name(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    path = make_file(tmp_path, "отчёт за май.pdf")
    sent = srv.api(a_inst).sending.sendFileByUpload(b_inst["wid"], str(path))
    assert sent.code == 200, sent.error
    assert unquote(sent.data["urlFile"]).endswith("/отчёт за май.pdf")
    file_data = received(srv, b_inst, sent.data["idMessage"])["messageData"]["fileMessageData"]
    assert file_data["fileName"] == "отчёт за май.pdf"
    assert fetch(file_data["downloadUrl"]) == path.read_bytes()


def test_async_sdk_percent_encoded_file_name_and_string_fields(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    path = make_file(tmp_path, "фото.jpg")
    sent = asyncio.run(
        srv.api(a_inst).sending.sendFileByUploadAsync(
            b_inst["wid"], str(path), caption="подпись", typingTime=1000
        )
    )
    assert sent.code == 200, sent.error
    data = received(srv, b_inst, sent.data["idMessage"])["messageData"]
    assert data["typeMessage"] == "imageMessage"
    assert data["fileMessageData"]["fileName"] == "фото.jpg"
    assert data["fileMessageData"]["caption"] == "подпись"
    assert fetch(data["fileMessageData"]["downloadUrl"]) == path.read_bytes()
    # downloadFileAsync too
    link = asyncio.run(srv.api(b_inst).receiving.downloadFileAsync(a_inst["wid"], sent.data["idMessage"]))
    assert link.code == 200 and fetch(link.data["downloadUrl"]) == path.read_bytes()


def test_multipart_variants(srv: Server) -> None:
    """fileName field overrides the part name; no part Content-Type; RFC 5987 filename*; typingTime as text."""
    a_inst, b_inst = pair(srv)
    payload = os.urandom(3000)
    boundary = "xXxBoundary42"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="chatId"\r\n\r\n{b_inst["wid"]}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="typingTime"\r\n\r\n1000\r\n'.encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%A9t%C3%A9.png\r\n\r\n".encode()
        + payload
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    r = srv.wire(
        a_inst,
        "sendFileByUpload",
        verb="POST",
        content=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 200, r.text
    data = received(srv, b_inst, r.json()["idMessage"])["messageData"]
    assert data["typeMessage"] == "imageMessage"
    assert data["fileMessageData"]["fileName"] == "été.png"
    assert fetch(data["fileMessageData"]["downloadUrl"]) == payload

    r = srv.wire(
        a_inst,
        "sendFileByUpload",
        verb="POST",
        data={"chatId": b_inst["wid"], "fileName": "renamed.ogg"},
        files={"file": ("original.bin", payload)},
    )
    assert r.status_code == 200, r.text
    data = received(srv, b_inst, r.json()["idMessage"])["messageData"]
    assert data["typeMessage"] == "audioMessage"
    assert data["fileMessageData"]["fileName"] == "renamed.ogg"


def test_reply_with_a_file_quotes_the_message(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    question = srv.api(b_inst).sending.sendMessage(a_inst["wid"], "send me the invoice")
    received(srv, a_inst, question.data["idMessage"])
    path = make_file(tmp_path, "invoice.pdf")
    sent = srv.api(a_inst).sending.sendFileByUpload(
        b_inst["wid"], str(path), caption="here", quotedMessageId=question.data["idMessage"]
    )
    assert sent.code == 200, sent.error
    data = received(srv, b_inst, sent.data["idMessage"])["messageData"]
    assert data["typeMessage"] == "documentMessage"
    assert data["quotedMessage"]["stanzaId"] == question.data["idMessage"]
    assert data["quotedMessage"]["textMessage"] == "send me the invoice"
    # quoting an unknown message is refused and queues nothing
    bad = srv.api(a_inst).sending.sendFileByUpload(b_inst["wid"], str(path), quotedMessageId="NOPE")
    assert bad.code == 400 and "quotedMessageId" in bad.error
    assert queued_count(srv, a_inst) == 0


# --- uploadFile + sendFileByUrl ------------------------------------------------------------------


def test_upload_file_then_send_by_url(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    a = srv.api(a_inst)
    path = make_file(tmp_path, "brochure.pdf")
    up = a.sending.uploadFile(str(path))
    assert up.code == 200, up.error
    url = up.data["urlFile"]
    assert url.endswith("/brochure.pdf")
    assert fetch(url) == path.read_bytes()

    head = httpx.head(url, timeout=30)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == path.stat().st_size
    assert head.headers["content-type"] == "application/pdf"
    expires = parsedate_to_datetime(head.headers["expires"]).timestamp()
    assert 14.9 * 86400 < expires - time.time() < 15.1 * 86400
    assert abs(int(head.headers["x-expires-at"]) - expires) <= 1
    assert "sandbox" in head.headers["content-security-policy"]
    assert head.headers["x-content-type-options"] == "nosniff"

    # The SDK example: the link's last segment becomes fileName.
    sent = a.sending.sendFileByUrl(b_inst["wid"], url, os.path.basename(url), caption="by link")
    assert sent.code == 200, sent.error
    data = received(srv, b_inst, sent.data["idMessage"])["messageData"]
    assert data["typeMessage"] == "documentMessage"
    assert data["fileMessageData"]["caption"] == "by link"
    assert fetch(data["fileMessageData"]["downloadUrl"]) == path.read_bytes()


def test_upload_file_encodings(srv: Server) -> None:
    a_inst, _ = pair(srv)
    payload = os.urandom(5000)
    # no Content-Type, no GA-Filename: stored as .bin
    r = srv.wire(a_inst, "uploadFile", verb="POST", content=payload)
    assert r.status_code == 200, r.text
    assert r.json()["urlFile"].endswith(".bin") and fetch(r.json()["urlFile"]) == payload
    # Content-Type only: the extension follows the type
    r = srv.wire(a_inst, "uploadFile", verb="POST", content=payload, headers={"Content-Type": "image/png"})
    assert r.json()["urlFile"].endswith(".png")
    # percent-encoded GA-Filename
    r = srv.wire(
        a_inst,
        "uploadFile",
        verb="POST",
        content=payload,
        headers={"GA-Filename": "%D0%BF%D0%BB%D0%B0%D0%BD.txt"},
    )
    assert unquote(r.json()["urlFile"]).endswith("/план.txt")
    # multipart, as JS SDKs send it
    r = srv.wire(a_inst, "uploadFile", verb="POST", files={"file": ("js.jpg", payload, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["urlFile"].endswith("/js.jpg") and fetch(r.json()["urlFile"]) == payload
    # multipart whose Content-Type header was overwritten with the file's type (boundary lost)
    request = httpx.Request("POST", "http://x", files={"file": ("lost.jpg", payload, "image/jpeg")})
    r = srv.wire(
        a_inst, "uploadFile", verb="POST", content=request.read(), headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["urlFile"].endswith("/lost.jpg") and fetch(r.json()["urlFile"]) == payload


def test_send_file_by_url_fetches_remote_files(srv: Server, web: Files) -> None:
    a_inst, b_inst = pair(srv)
    payload = os.urandom(50_000)
    url = web.url("/files/picture.png", payload)
    sent = srv.api(a_inst).sending.sendFileByUrl(b_inst["wid"], url, "picture.png")
    assert sent.code == 200, sent.error
    data = received(srv, b_inst, sent.data["idMessage"])["messageData"]
    assert data["typeMessage"] == "imageMessage"
    assert data["fileMessageData"]["mimeType"] == "image/png"
    assert fetch(data["fileMessageData"]["downloadUrl"]) == payload

    later = asyncio.run(srv.api(a_inst).sending.sendFileByUrlAsync(b_inst["wid"], url, "again.mp4"))
    assert later.code == 200, later.error
    data = received(srv, b_inst, later.data["idMessage"])["messageData"]
    assert data["typeMessage"] == "videoMessage"
    assert fetch(data["fileMessageData"]["downloadUrl"]) == payload


def test_send_file_by_url_unreachable_becomes_failed(srv: Server, web: Files) -> None:
    a_inst, b_inst = pair(srv)
    a = srv.api(a_inst)
    started = time.monotonic()
    dead = a.sending.sendFileByUrl(b_inst["wid"], "http://127.0.0.1:9/nothing.png", "nothing.png")
    missing_url = web.url("/present.pdf", b"x").replace("/present.pdf", "/nope.pdf")
    missing = a.sending.sendFileByUrl(b_inst["wid"], missing_url, "nope.pdf")
    assert dead.code == 200 and missing.code == 200
    assert time.monotonic() - started < 30  # answered at once, not after the fetch
    failed = status(srv, a_inst, dead.data["idMessage"], "failed")
    assert "could not be downloaded" in failed["description"]
    failed = status(srv, a_inst, missing.data["idMessage"], "failed")
    assert "HTTP 404" in failed["description"]
    # a message queued behind the failed ones still goes out
    ok = a.sending.sendMessage(b_inst["wid"], "after the failures")
    received(srv, b_inst, ok.data["idMessage"])
    entry = a.journals.getMessage(b_inst["wid"], dead.data["idMessage"])
    assert entry.data["statusMessage"] == "failed"
    link = a.receiving.downloadFile(b_inst["wid"], dead.data["idMessage"])
    assert link.code == 400 and "File message encrypted url not found" in link.error


# --- limits and bad input ------------------------------------------------------------------------


def test_oversized_files_are_refused_and_nothing_is_queued(srv: Server, tmp_path: Path, web: Files) -> None:
    a_inst, b_inst = pair(srv)
    a = srv.api(a_inst)
    before = len(stored_files(srv))
    big = make_file(tmp_path, "huge.mp4", LIMIT + 1)
    r = a.sending.sendFileByUpload(b_inst["wid"], str(big))
    assert r.code == 413
    assert "limit" in httpx.Response(413, content=r.error).json()["message"]
    r = a.sending.uploadFile(str(big))
    assert r.code == 413 and "limit" in r.error
    r = asyncio.run(a.sending.sendFileByUploadAsync(b_inst["wid"], str(big)))
    assert r.code == 413
    assert queued_count(srv, a_inst) == 0
    assert srv.wire(a_inst, "showMessagesQueue").json() == []
    assert len(stored_files(srv)) == before
    # exactly at the limit is fine
    edge = make_file(tmp_path, "edge.bin", LIMIT)
    assert a.sending.uploadFile(str(edge)).code == 200

    # A remote file over the limit fails the message with the documented description.
    url = web.url("/big.zip", os.urandom(LIMIT + 10))
    sent = a.sending.sendFileByUrl(b_inst["wid"], url, "big.zip")
    assert sent.code == 200
    failed = status(srv, a_inst, sent.data["idMessage"], "failed")
    assert failed["description"].startswith("File from url exceeded max upload size.")


def test_bad_input_answers_400_and_changes_nothing(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    path = make_file(tmp_path, "a.jpg", 100)
    before = len(stored_files(srv))
    cases = [
        ({"fileName": "a.jpg"}, {"file": ("a.jpg", b"x")}, "'chatId' is required"),
        ({"chatId": "nonsense"}, {"file": ("a.jpg", b"x")}, "chatId"),
        ({"chatId": b_inst["wid"]}, None, "'file' is required"),
        (
            {"chatId": b_inst["wid"], "typingTime": "fast"},
            {"file": ("a.jpg", b"x")},
            "'typingTime' must be a number",
        ),
        ({"chatId": b_inst["wid"]}, {"file": ("a.jpg", b"")}, "File is empty"),
    ]
    for data, files, message in cases:
        if files is None:
            r = srv.wire(a_inst, "sendFileByUpload", verb="POST", data=data, files={"other": ("x", b"x")})
        else:
            r = srv.wire(a_inst, "sendFileByUpload", verb="POST", data=data, files=files)
        assert r.status_code == 400, (data, r.text)
        assert message in r.json()["message"], (message, r.text)
    r = srv.wire(a_inst, "sendFileByUpload", verb="POST", json={"chatId": b_inst["wid"]})
    assert r.status_code == 400 and "multipart" in r.json()["message"]
    for body, message in [
        ({"chatId": b_inst["wid"], "fileName": "a.jpg"}, "'urlFile' is required"),
        (
            {"chatId": b_inst["wid"], "urlFile": "ftp://x/a.jpg", "fileName": "a.jpg"},
            "'urlFile' must be a valid uri",
        ),
        ({"chatId": b_inst["wid"], "urlFile": "http://example.com/a.jpg"}, "'fileName' is required"),
    ]:
        r = srv.wire(a_inst, "sendFileByUrl", verb="POST", json=body)
        assert r.status_code == 400 and message in r.json()["message"], r.text
    r = srv.wire(a_inst, "uploadFile", verb="POST", content=b"")
    assert r.status_code == 400 and r.json()["message"] == "File is empty"
    assert queued_count(srv, a_inst) == 0
    assert len(stored_files(srv)) == before
    assert path.exists()


def test_download_file_errors(srv: Server) -> None:
    a_inst, b_inst = pair(srv)
    a = srv.api(a_inst)
    r = srv.wire(a_inst, "downloadFile", verb="POST", json={})
    assert r.status_code == 400
    assert r.json()["message"] == "Validation failed. Details: 'value' must have at least 2 keys"
    r = srv.wire(a_inst, "downloadFile", verb="POST", json={"chatId": b_inst["wid"]})
    assert r.json()["message"] == "Validation failed. Details: 'value' must have at least 2 keys"
    r = srv.wire(a_inst, "downloadFile", verb="POST", json={"chatId": b_inst["wid"], "count": 1})
    assert r.json()["message"] == "Validation failed. Details: 'idMessage' is required"
    unknown = a.receiving.downloadFile(b_inst["wid"], "BAE5000000000000")
    assert unknown.code == 400
    assert (
        f"File message encrypted url not found by chatId {b_inst['wid']} and idMessage BAE5000000000000"
        in unknown.error
    )
    text = a.sending.sendMessage(b_inst["wid"], "not a file")
    not_file = a.receiving.downloadFile(b_inst["wid"], text.data["idMessage"])
    assert not_file.code == 400 and "File message encrypted url not found" in not_file.error


def test_unknown_and_tampered_links_answer_404(srv: Server, tmp_path: Path) -> None:
    a_inst, _ = pair(srv)
    up = srv.api(a_inst).sending.uploadFile(str(make_file(tmp_path, "x.pdf", 10)))
    url = up.data["urlFile"]
    assert httpx.get(url[: -len("x.pdf")] + "y.pdf").status_code == 404
    assert httpx.get(url.replace(f"/media/{a_inst['idInstance']}/", "/media/1/")).status_code == 404
    r = httpx.get(f"{srv.url}/media/1/{'0' * 32}/x.pdf")
    assert r.status_code == 404 and r.json()["message"]


# --- sandbox phones -----------------------------------------------------------------------------


def test_phones_send_and_receive_files(srv: Server) -> None:
    a_inst, _ = pair(srv)
    phone = str(next(_numbers))
    srv.new_phone(phone, "Zoe")
    payloads = {
        "pic.jpg": ("imageMessage", os.urandom(4000)),
        "film.mp4": ("videoMessage", os.urandom(4000)),
        "note.ogg": ("audioMessage", os.urandom(4000)),
        "list.xlsx": ("documentMessage", os.urandom(4000)),
    }
    for name, (kind, payload) in payloads.items():
        r = srv.sandbox(
            "POST",
            f"/phones/{phone}/files",
            data={"chatId": a_inst["wid"], "caption": f"from {phone}"},
            files={"file": (name, payload)},
        )
        assert r.status_code == 200, r.text
        assert r.json()["typeMessage"] == kind
        body = received(srv, a_inst, r.json()["idMessage"])
        assert body["senderData"]["sender"] == f"{phone}@c.us"
        data = body["messageData"]
        assert data["typeMessage"] == kind
        assert data["fileMessageData"]["fileName"] == name
        assert data["fileMessageData"]["caption"] == f"from {phone}"
        assert fetch(data["fileMessageData"]["downloadUrl"]) == payload
        link = srv.api(a_inst).receiving.downloadFile(f"{phone}@c.us", r.json()["idMessage"])
        assert link.code == 200 and fetch(link.data["downloadUrl"]) == payload

    # The instance answers with a file; the phone's message list shows where to get it.
    reply = srv.wire(
        a_inst,
        "sendFileByUpload",
        verb="POST",
        data={"chatId": f"{phone}@c.us"},
        files={"file": ("answer.png", b"\x89PNG answer")},
    )
    assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inbox = srv.sandbox("GET", f"/phones/{phone}/messages", params={"direction": "incoming"}).json()
        mine = [m for m in inbox if m["idMessage"] == reply.json()["idMessage"]]
        if mine:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the phone did not receive the file")
    assert mine[0]["typeMessage"] == "imageMessage"
    assert fetch(mine[0]["downloadUrl"]) == b"\x89PNG answer"

    # bad requests to the control API
    r = srv.sandbox("POST", f"/phones/{phone}/files", data={"chatId": a_inst["wid"]})
    assert r.status_code == 400
    r = srv.sandbox("POST", f"/phones/{phone}/files", files={"file": ("a.jpg", b"x")})
    assert r.status_code == 400
    r = srv.sandbox(
        "POST",
        f"/phones/{phone}/files",
        data={"chatId": a_inst["wid"]},
        files={"file": ("a.bin", b"x" * (LIMIT + 1))},
    )
    assert r.status_code == 413


# --- expiry -------------------------------------------------------------------------------------


def test_links_expire_and_private_addresses_are_not_fetched(
    make_server: Any, tmp_path: Path, web: Files
) -> None:
    # The production default (the test harness allows private targets for its local receivers).
    server = make_server(
        env={"VERDIGRIS_MEDIA_LINK_SECONDS": "10", "VERDIGRIS_OUTBOUND_ALLOW_PRIVATE": "false"}
    )
    a_inst, b_inst = server.instance(0), server.instance(1)
    # By default sendFileByUrl does not read the server's own network...
    local = server.api(a_inst).sending.sendFileByUrl(b_inst["wid"], web.url("/p.jpg", b"x"), "p.jpg")
    assert local.code == 200
    failed = status(server, a_inst, local.data["idMessage"], "failed")
    assert "private network address" in failed["description"]
    # ...but links of the server itself are resolved without a fetch, under any host name.
    up = server.api(a_inst).sending.uploadFile(str(make_file(tmp_path, "own.pdf", 100)))
    alias = up.data["urlFile"].replace("127.0.0.1", "localhost")
    own = server.api(a_inst).sending.sendFileByUrl(b_inst["wid"], alias, "own.pdf")
    data = received(server, b_inst, own.data["idMessage"])["messageData"]
    assert data["fileMessageData"]["downloadUrl"] == up.data["urlFile"]

    path = make_file(tmp_path, "short.pdf", 1000)
    sent = server.api(a_inst).sending.sendFileByUpload(b_inst["wid"], str(path))
    assert sent.code == 200, sent.error
    url = sent.data["urlFile"]
    received(server, b_inst, sent.data["idMessage"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.get(url)
        if r.status_code == 404:
            break
        assert hashlib.sha256(r.content).hexdigest() == digest
        time.sleep(0.3)
    else:
        raise AssertionError("the link did not expire")
    link = server.api(b_inst).receiving.downloadFile(a_inst["wid"], sent.data["idMessage"])
    assert link.code == 400 and "expired" in link.error


# --- durability ---------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_fetch_under_way_survives_kill_9(make_server: Any, tmp_path: Path) -> None:
    """A sendFileByUrl accepted while its fetch hangs is not lost when the server is killed."""
    first_request = threading.Event()
    release = threading.Event()
    payload = os.urandom(10_000)
    calls = {"n": 0}

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            calls["n"] += 1
            if calls["n"] == 1:
                first_request.set()
                release.wait(60)  # the first server dies meanwhile
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        env = {"VERDIGRIS_MEDIA_FETCH_ALLOW_PRIVATE": "true"}
        server = make_server(env=env, data_dir=tmp_path / "srv", subprocess=True)  # killed below
        a_inst, b_inst = server.instance(0), server.instance(1)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/slow/track.mp3"
        sent = server.api(a_inst).sending.sendFileByUrl(b_inst["wid"], url, "track.mp3")
        assert sent.code == 200, sent.error
        assert first_request.wait(60), "the fetch did not start"
        server.kill()
        release.set()
        again = make_server(env=env, data_dir=tmp_path / "srv")
        data = received(again, b_inst, sent.data["idMessage"])["messageData"]
        assert data["typeMessage"] == "audioMessage"
        assert fetch(data["fileMessageData"]["downloadUrl"]) == payload
    finally:
        release.set()
        httpd.shutdown()


def test_file_messages_wait_in_the_queue_like_any_other(srv: Server, tmp_path: Path) -> None:
    """An instance not linked yet keeps file messages queued (showMessagesQueue lists them)."""
    waiting = srv.new_instance()
    _, b_inst = pair(srv)
    path = make_file(tmp_path, "later.pdf", 500)
    sent = srv.api(waiting).sending.sendFileByUpload(b_inst["wid"], str(path), caption="c")
    assert sent.code == 200, sent.error
    queue = srv.wire(waiting, "showMessagesQueue").json()
    assert [item["messageID"] for item in queue] == [sent.data["idMessage"]]
    assert queue[0]["type"] == "sendFileByUrl"
    assert queue[0]["body"]["fileName"] == "later.pdf"
    assert queue[0]["body"]["caption"] == "c"
    assert queue[0]["body"]["urlFile"] == sent.data["urlFile"]
    assert srv.wire(waiting, "clearMessagesQueue").json() == {"isCleared": True}
    assert queued_count(srv, waiting) == 0


def test_sender_sees_its_own_file_message(srv: Server, tmp_path: Path) -> None:
    a_inst, b_inst = pair(srv)
    path = make_file(tmp_path, "mine.jpg", 800)
    sent = srv.api(a_inst).sending.sendFileByUpload(b_inst["wid"], str(path))
    echo = wait_for(
        srv.api(a_inst),
        lambda n: (
            n.get("idMessage") == sent.data["idMessage"] and n["typeWebhook"] == "outgoingAPIMessageReceived"
        ),
    )
    assert echo["messageData"]["typeMessage"] == "imageMessage"
    assert fetch(echo["messageData"]["fileMessageData"]["downloadUrl"]) == path.read_bytes()
    status(srv, a_inst, sent.data["idMessage"], "delivered")


def test_pictures_get_a_jpeg_thumbnail(srv: Server, tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image

    a_inst, b_inst = pair(srv)
    small = tmp_path / "sunset.png"
    Image.new("RGB", (640, 480), (250, 120, 30)).save(small)
    huge = tmp_path / "panorama.png"
    Image.new("RGB", (3001, 20), (0, 0, 0)).save(huge)
    thumbs = {}
    for path in (small, huge):
        sent = srv.api(a_inst).sending.sendFileByUpload(b_inst["wid"], str(path))
        assert sent.code == 200, sent.error
        data = received(srv, b_inst, sent.data["idMessage"])["messageData"]
        assert data["typeMessage"] == "imageMessage"
        assert fetch(data["fileMessageData"]["downloadUrl"]) == path.read_bytes()
        thumbs[path.name] = data["fileMessageData"]["jpegThumbnail"]
    with Image.open(io.BytesIO(base64.b64decode(thumbs["sunset.png"]))) as preview:
        assert preview.format == "JPEG" and max(preview.size) <= 96
        assert preview.getpixel((10, 10))[0] > 200  # the orange survived
    assert thumbs["panorama.png"] == ""  # over 3000 px: no thumbnail, as documented
