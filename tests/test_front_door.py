"""Wire calls take one step from the server to the wire endpoint (front.py) instead of the whole
middleware chain: the answers must be the ones the chain gives, byte for byte. And the lean check
of sendMessage's usual body (fields.Body.lean) must build exactly the model pydantic builds."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from harness import Server
from verdigris.greenapi.methods.sending import SendMessageBody
from verdigris.greenapi.registry import REGISTRY
from verdigris.greenapi.routes import VERBS, normalized, wire_call, wire_routes


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this file's own: the tests switch its front door off and on."""
    # The same calls again and again: the per-instance rate limits raised (their check still runs).
    srv = Server(tmp_path_factory.mktemp("front"), env={"VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1000"}).start()
    yield srv
    srv.stop()
    srv.drop_database()


def exchange(server: Server, request: bytes) -> bytes:
    """One request on a fresh connection; the whole answer (read until the server closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def comparable(answer: bytes) -> bytes:
    """The answer without what differs between two calls: the date header, error timestamps."""
    answer = re.sub(rb"(?im)^date: .*\r\n", b"", answer)
    return re.sub(rb'"timestamp":"[^"]*"', b'"timestamp":""', answer)


def both_ways(server: Server, request: bytes) -> tuple[bytes, bytes, bool]:
    """The answer through the front door, then through the middleware chain, and whether the
    front door took the request (it leaves what no wire route matches to the chain)."""
    app = server.app
    front = app.front
    served: list[Any] = []
    original = front.serve

    async def counted(*args: Any) -> None:
        served.append(args)
        await original(*args)

    front.serve = counted
    try:
        through_front = exchange(server, request)
    finally:
        del front.serve
    app.front = None
    try:
        through_chain = exchange(server, request)
    finally:
        app.front = front
    return through_front, through_chain, bool(served)


def request(verb: str, path: str, body: bytes | None = None, headers: str = "") -> bytes:
    head = f"{verb} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def test_wire_answers_are_the_chains_byte_for_byte(own: Server) -> None:
    inst = own.instance(0)
    i, t = inst["idInstance"], inst["apiTokenInstance"]
    send = f"/waInstance{i}/sendMessage/{t}"
    cases = [
        request("GET", f"/waInstance{i}/getStateInstance/{t}"),
        request("GET", f"/waInstance{i}/getStateInstance/{t}/"),
        request("GET", f"//waInstance{i}//getStateInstance/{t}"),
        request("GET", f"/v3/waInstance{i}/getStateInstance/{t}"),
        request("GET", f"/waInstance{i}/GetStateInstance/{t}"),
        request("GET", f"/waInstance{i}/getSettings/{t}"),
        request("GET", f"/waInstance{i}/getStateInstance"),
        request("GET", f"/waInstance{i}/getStateInstance/"),
        request("GET", f"/waInstance{i}/getStateInstance/{t[:-1]}x"),
        request("GET", f"/waInstance{i}x/getStateInstance/{t}"),
        request("GET", f"/waInstance{i}/noSuchMethod/{t}"),
        request("POST", f"/waInstance{i}/getStateInstance/{t}", b"{}"),
        request("OPTIONS", f"/waInstance{i}/sendMessage/{t}"),
        request("HEAD", f"/waInstance{i}/getStateInstance/{t}"),
        request("TRACE", f"/waInstance{i}/getStateInstance/{t}"),
        request("GET", f"/waInstance{i}/getStateInstance/{t}/a/b"),
        request("GET", "/waInstance"),
        request("GET", f"/waInstance{i}/receiveNotification/{t}?receiveTimeout=abc"),
        request("DELETE", f"/waInstance{i}/deleteNotification/{t}/987654321"),
        request("DELETE", f"/waInstance{i}/deleteNotification/{t}/abc"),
        request("POST", send, b'{"chatId": "79001234567@c.us", "message": "hi"'),
        request("POST", send, b'{"chatId": "79001234567", "message": "hi"}'),
        request("POST", send, b'{"chatId": "79001234567@c.us", "message": ""}'),
        request("POST", send, b'{"chatId": "79001234567@c.us", "message": "hi", "typingTime": true}'),
        request("POST", send, b'{"chatId": "79001234567@c.us", "message": "hi", "typePreview": "huge"}'),
        request("POST", send, b'["chatId"]'),
        request("POST", send, None, "Content-Type: application/json\r\nContent-Length: 999999999999\r\n"),
        request("POST", send, b'{"chatId": "79001234567@c.us", "message": "hi"}', "Idempotency-Key: \r\n"),
    ]
    not_wire = {14, 15, 16}  # TRACE (the router's 405), four segments, no id: no wire route matches
    for n, case in enumerate(cases):
        through_front, through_chain, served = both_ways(own, case)
        assert through_front.startswith(b"HTTP/1.1 "), case
        assert comparable(through_front) == comparable(through_chain), case
        assert served == (n not in not_wire), case


def test_a_send_is_accepted_the_same_way(own: Server) -> None:
    inst = own.instance(0)
    body = b'{"chatId": "79001234567@c.us", "message": "through the front door", "typingTime": 1000}'
    path = f"/waInstance{inst['idInstance']}/sendMessage/{inst['apiTokenInstance']}"
    *answers, served = both_ways(own, request("POST", path, body))
    assert served
    heads = [comparable(a).split(b"\r\n\r\n")[0] for a in answers]
    assert heads[0] == heads[1] and heads[0].startswith(b"HTTP/1.1 200")
    ids = [orjson.loads(a.split(b"\r\n\r\n", 1)[1])["idMessage"] for a in answers]
    assert all(re.fullmatch(r"BAE5[0-9A-F]{12}", i) for i in ids) and ids[0] != ids[1]


def test_an_unexpected_error_is_the_chains_500(own: Server) -> None:
    spec = REGISTRY["getstateinstance"]

    async def broken(_call: Any) -> Any:
        raise RuntimeError("a bug")

    REGISTRY["getstateinstance"] = dataclasses.replace(spec, handler=broken)
    try:
        inst = own.instance(0)
        path = f"/waInstance{inst['idInstance']}/getStateInstance/{inst['apiTokenInstance']}"
        through_front, through_chain, served = both_ways(own, request("GET", path))
    finally:
        REGISTRY["getstateinstance"] = spec
    assert served
    assert through_front.startswith(b"HTTP/1.1 500") and through_front.endswith(
        b"\r\n\r\nInternal Server Error"
    )
    assert comparable(through_front) == comparable(through_chain)


def test_the_front_door_matches_what_the_wire_routes_match() -> None:
    routes = wire_routes(cast(Any, lambda: None))
    paths = [
        "/waInstance1/m",
        "/waInstance1/m/",
        "/waInstance1/m/t",
        "/waInstance1/m/t/",
        "/waInstance1/m/t/e",
        "/waInstance1/m/t/e/",
        "/waInstance1/m/t/e/f",
        "/waInstance1//m",
        "//waInstance1/m/t",
        "/v3/waInstance1/m/t",
        "/v3//waInstance1/m/t/e",
        "/v4/waInstance1/m/t",
        "/waInstance/m/t",
        "/waInstance1",
        "/waInstance1/",
        "/wainstance1/m/t",
        "/waInstance1/m//",
        "/waInstance1/m/t//e",
        "/waInstance%2F/m/t",
        "/console/login",
    ]
    for path in paths:
        for verb in [*VERBS, "TRACE", "CONNECT"]:
            scope = {"type": "http", "method": verb, "path": path, "raw_path": path.encode(), "root_path": ""}
            expected = None
            norm = normalized(scope)
            for route in routes:
                match, child = route.matches(norm)
                if match is Match.FULL:
                    expected = {**norm, **child}
                    break
            got = wire_call(scope)
            if expected is None:
                assert got is None, (verb, path)
            else:
                assert got is not None, (verb, path)
                assert got["path"] == expected["path"] and got["path_params"] == expected["path_params"]


def _mostly(fitting: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``fitting`` three times in four, else ``other`` (``one_of`` weighs its flattened branches)."""
    return st.integers(0, 3).flatmap(lambda i: fitting if i else other)


_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 30000),
    st.sampled_from([0, 1, 999, 1000, 20000, 20001, 1.5, 1000.0]),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["", "x" * 20000, "x" * 20001, "large", "small", "\u00e9t\u00e9"]),
    st.lists(st.integers(-10, 10), max_size=2),
    st.dictionaries(st.sampled_from(["title", "description"]), st.text(max_size=3), max_size=2),
)
_CHAT = _mostly(
    st.sampled_from(["79001234567@c.us", "120363000000000000@g.us", "120363000000000000-123456@g.us"]),
    st.one_of(st.sampled_from(["1234@c.us", "79001234567@c.us\n", "79001234567@c.uss", "x"]), _ANY),
)
_MESSAGE = _mostly(
    st.text(min_size=1, max_size=3), st.one_of(st.sampled_from(["", "x" * 20000, "x" * 20001]), _ANY)
)
# The optional fields: mostly values of their own types (near their limits), sometimes anything.
_FITTING = {
    "quotedMessageId": st.one_of(st.none(), st.text(max_size=5)),
    "linkPreview": st.one_of(st.none(), st.booleans()),
    "archiveChat": st.one_of(st.none(), st.booleans()),
    "typingTime": st.one_of(st.none(), st.integers(990, 1010), st.integers(19990, 20010)),
    "extra": _ANY,
}
_PREVIEW = {
    "typePreview": st.sampled_from(["large", "small", "huge"]),
    "customPreview": st.fixed_dictionaries({"title": st.text(max_size=3)}),
}


@settings(max_examples=1500, deadline=None)
@given(
    chat=_CHAT,
    message=_MESSAGE,
    more=st.fixed_dictionaries({}, optional={k: _mostly(v, _ANY) for k, v in _FITTING.items()}),
    preview=_mostly(st.just({}), st.fixed_dictionaries({}, optional=_PREVIEW)),
)
def test_the_lean_send_check_builds_what_pydantic_builds(
    chat: Any, message: Any, more: dict[str, Any], preview: dict[str, Any]
) -> None:
    data = {"chatId": chat, "message": message, **more, **preview}
    lean = SendMessageBody.lean(data)
    if lean is None:
        return  # the model validates it as before
    model = SendMessageBody.model_validate_json(orjson.dumps(data), strict=True)
    assert lean.__dict__ == model.__dict__
    assert lean.model_fields_set == model.model_fields_set
    assert lean.model_dump(exclude_none=True, mode="json") == model.model_dump(exclude_none=True, mode="json")
    assert lean == model
