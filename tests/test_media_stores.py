"""Media in an S3-compatible object store (issue 15, item 5), against a local S3 server (moto's,
started here): files sent and received through the official SDK live in the bucket, large ones go up
in parts, refused ones leave nothing behind, two servers on one database share them, erasure
removes them, and readiness reports a store that stopped answering."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from harness import Server, create_postgres_database, run_on, wait_for

LIMIT = 20 * 1024 * 1024
_numbers = itertools.count(79996660001)
_buckets = itertools.count(1)


class LocalS3:
    """moto's S3 server on a free loopback port, and a client to look inside it."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test-key",
            aws_secret_access_key="test-secret",
        )

    def bucket(self) -> str:
        name = f"verdigris-media-{os.getpid()}-{next(_buckets)}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def unfinished_uploads(self, bucket: str) -> list[Any]:
        return list(self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def env(self, bucket: str, **more: str) -> dict[str, str]:
        return {
            "VERDIGRIS_MEDIA_STORE": "s3",
            "VERDIGRIS_S3_BUCKET": bucket,
            "VERDIGRIS_S3_ENDPOINT_URL": self.url,
            "VERDIGRIS_S3_REGION": "us-east-1",
            "VERDIGRIS_S3_ACCESS_KEY_ID": "test-key",
            "VERDIGRIS_S3_SECRET_ACCESS_KEY": "test-secret",
            "VERDIGRIS_S3_PREFIX": "media",
            "VERDIGRIS_MEDIA_MAX_FILE_BYTES": str(LIMIT),
            "VERDIGRIS_FILE_SEND_GAP_MS": "0",
            **more,
        }


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    store = LocalS3()
    yield store
    store.server.stop()


def pair(srv: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    return srv.new_instance("--link", str(next(_numbers))), srv.new_instance("--link", str(next(_numbers)))


def received_file(srv: Server, inst: dict[str, Any], id_message: str) -> dict[str, Any]:
    got = wait_for(
        srv.api(inst),
        lambda n: n.get("idMessage") == id_message and n["typeWebhook"] == "incomingMessageReceived",
    )
    data: dict[str, Any] = got["messageData"]["fileMessageData"]
    return data


def test_files_live_in_the_bucket_and_round_trip(make_server: Any, s3: LocalS3, tmp_path: Path) -> None:
    bucket = s3.bucket()
    srv: Server = make_server(env=s3.env(bucket))
    a_inst, b_inst = pair(srv)
    a = srv.api(a_inst)

    small = tmp_path / "invoice.pdf"
    small.write_bytes(os.urandom(50_000))
    sent = a.sending.sendFileByUpload(b_inst["wid"], str(small), "invoice.pdf", "your invoice")
    assert sent.code == 200, sent.error
    got = received_file(srv, b_inst, sent.data["idMessage"])
    assert httpx.get(got["downloadUrl"], timeout=30).content == small.read_bytes()

    # Over one part (8 MiB): a multipart upload, read back whole.
    big = tmp_path / "video.mp4"
    big.write_bytes(os.urandom(9 * 1024 * 1024 + 123))
    up = a.sending.uploadFile(str(big))
    assert up.code == 200, up.error
    assert httpx.get(up.data["urlFile"], timeout=60).content == big.read_bytes()

    keys = s3.keys(bucket)
    assert keys and all(key.startswith("media/") for key in keys)
    sizes = {s3.client.head_object(Bucket=bucket, Key=key)["ContentLength"] for key in keys}
    assert {50_000, 9 * 1024 * 1024 + 123} <= sizes
    assert not (srv.data_dir / "media").exists() or not any((srv.data_dir / "media").rglob("*.*"))
    assert s3.unfinished_uploads(bucket) == []


def test_a_refused_file_leaves_nothing_in_the_bucket(make_server: Any, s3: LocalS3, tmp_path: Path) -> None:
    bucket = s3.bucket()
    srv: Server = make_server(env=s3.env(bucket))
    a_inst, _ = pair(srv)
    before = s3.keys(bucket)
    too_big = tmp_path / "too-big.bin"
    too_big.write_bytes(os.urandom(LIMIT + 1))  # past the limit after two full parts
    r = srv.api(a_inst).sending.uploadFile(str(too_big))
    assert r.code == 413, (r.code, r.error)
    empty = srv.wire(a_inst, "uploadFile", verb="POST", content=b"", headers={"Content-Type": "image/png"})
    assert empty.status_code == 400
    assert s3.keys(bucket) == before
    assert s3.unfinished_uploads(bucket) == []


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs the machine's PostgreSQL")
def test_two_servers_on_one_database_share_files(make_server: Any, s3: LocalS3, tmp_path: Path) -> None:
    """A file uploaded through one process is served by another (no shared folder, no NFS)."""
    bucket = s3.bucket()
    env = s3.env(bucket, VERDIGRIS_DATABASE_URL=create_postgres_database())
    one: Server = make_server(env=env)
    two: Server = make_server(env=dict(env))
    inst = one.instance(0)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(30_000))
    up = one.api(inst).sending.uploadFile(str(photo))
    assert up.code == 200, up.error
    link = up.data["urlFile"].replace(one.url, two.url)
    assert link.startswith(two.url)
    assert httpx.get(link, timeout=30).content == photo.read_bytes()


def test_removing_an_owner_removes_only_its_objects(make_server: Any, s3: LocalS3, tmp_path: Path) -> None:
    """What erasure calls for each erased instance: every object of that owner goes, others stay."""
    bucket = s3.bucket()
    srv: Server = make_server(env=s3.env(bucket))
    keep, gone = pair(srv)
    for inst in (keep, gone, gone):
        path = tmp_path / f"{inst['idInstance']}.pdf"
        path.write_bytes(os.urandom(1000))
        assert srv.api(inst).sending.uploadFile(str(path)).code == 200
    owners = [key.split("/")[1] for key in s3.keys(bucket)]
    assert sorted(owners) == sorted([str(keep["idInstance"])] + [str(gone["idInstance"])] * 2)
    assert srv.loop is not None
    run_on(srv.loop, srv.core.media.store.delete_owner(str(gone["idInstance"])))
    assert [key.split("/")[1] for key in s3.keys(bucket)] == [str(keep["idInstance"])]


# The server that cannot start exits its thread with SystemExit, as `verdigris serve` exits.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_readiness_reports_the_store(make_server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """/ready answers 503 naming the media store while it is unreachable; a server whose bucket does
    not exist does not start."""
    own = LocalS3()
    try:
        bucket = own.bucket()
        srv: Server = make_server(env=own.env(bucket))
        ready = httpx.get(f"{srv.url}/ready", timeout=30)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        own.server.stop()
        down = httpx.get(f"{srv.url}/ready", timeout=60)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable" and set(down.json()["failed"]) == {"media"}
        assert httpx.get(f"{srv.url}/health", timeout=30).status_code == 200  # alive, just not ready
    except BaseException:
        own.server.stop()
        raise
    other = LocalS3()
    try:
        with pytest.raises(RuntimeError, match="exited early"):
            make_server(env=other.env("no-such-bucket"))
        assert "bucket 'no-such-bucket'" in capfd.readouterr().err
    finally:
        other.server.stop()


def test_readiness_of_the_local_folder(make_server: Any) -> None:
    """With the default folder, /ready checks that it is a folder it can write to."""
    srv: Server = make_server()
    assert httpx.get(f"{srv.url}/ready", timeout=30).json() == {"status": "ready"}
    media = srv.data_dir / "media"
    shutil.rmtree(media, ignore_errors=True)
    media.write_bytes(b"not a folder")  # a broken mount or a mistaken path; root is stopped too
    try:
        down = httpx.get(f"{srv.url}/ready", timeout=30)
        assert down.status_code == 503 and set(down.json()["failed"]) == {"media"}
    finally:
        media.unlink()
    assert httpx.get(f"{srv.url}/ready", timeout=30).status_code == 200
