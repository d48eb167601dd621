"""The Cloud API channel's translations, on their own (no server): domain content ↔ Graph API JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verdigris.channels.base import ChannelUnsupported
from verdigris.channels.whatsapp_cloud import inbound, outbound
from verdigris.channels.whatsapp_cloud.graph import GraphError
from verdigris.messaging import rich


def test_a_shared_contact_keeps_its_name_and_numbers() -> None:
    card = rich.contact_card("79001234567", first="Anna", last="Li; Jr", company="Shop, Ltd")
    cloud = outbound.contact_card(card)
    assert cloud["name"]["formatted_name"] == "Anna Li; Jr"
    assert (cloud["name"]["first_name"], cloud["name"]["last_name"]) == ("Anna", "Li; Jr")
    assert cloud["phones"] == [{"phone": "+7 900 123-45-67", "type": "CELL", "wa_id": "79001234567"}]
    assert cloud["org"] == {"company": "Shop, Ltd"}
    # ... and a card received from the Cloud API becomes the same vCard the sandbox would build.
    value = {
        "contacts": [{"profile": {"name": "Bo"}, "wa_id": "15550001111"}],
        "messages": [
            {
                "from": "15550001111",
                "id": "wamid.1",
                "timestamp": "1700000000",
                "type": "contacts",
                "contacts": [
                    {
                        "name": {"formatted_name": "Anna Li", "first_name": "Anna", "last_name": "Li"},
                        "phones": [{"phone": "+7 900 123-45-67", "wa_id": "79001234567", "type": "CELL"}],
                    }
                ],
            }
        ],
    }
    got = inbound.parse_value(value).received[0]
    assert got.type_message == "contactMessage"
    assert got.content == rich.contact_card("79001234567", first="Anna", last="Li")
    assert got.at_ms == 1_700_000_000_000 and got.sender_name == "Bo"


@pytest.mark.parametrize(
    ("type_message", "mime", "size", "kind"),
    [
        ("imageMessage", "image/jpeg", 1000, "image"),
        ("imageMessage", "image/png", 5 * 1024 * 1024 + 1, "document"),  # too large for an image
        ("imageMessage", "image/gif", 1000, "document"),  # not a type the Cloud API shows as a picture
        ("imageMessage", "image/webp", 1000, "sticker"),
        ("videoMessage", "video/mp4", 1000, "video"),
        ("videoMessage", "video/quicktime", 1000, "document"),
        ("audioMessage", "audio/ogg; codecs=opus", 1000, "audio"),
        ("documentMessage", "application/pdf", 1000, "document"),
    ],
)
def test_what_a_file_is_sent_as(type_message: str, mime: str, size: int, kind: str) -> None:
    assert outbound.media_kind(type_message, mime, size) == kind


def test_refusals_name_the_limit() -> None:
    assert outbound.refusal("textMessage", {"text": "x" * 4096}, "1555@c.us") is None
    assert "at most 4096" in str(outbound.refusal("textMessage", {"text": "x" * 4097}, "1555@c.us"))
    assert "personal chats" in str(outbound.refusal("textMessage", {"text": "hi"}, "1203630@g.us"))
    assert "cannot be sent" in str(outbound.refusal("pollMessage", {"name": "?"}, "1555@c.us"))
    buttons = {"body": "b", "buttons": [{"buttonId": "1", "buttonText": "x" * 21}]}
    assert "at most 20" in str(outbound.refusal("interactiveButtonsReply", buttons, "1555@c.us"))
    with pytest.raises(ChannelUnsupported):
        outbound.message_body("reactionMessage", {"text": "👍", "target": {"id": "x"}}, "1555@c.us")


def test_graph_errors_say_whether_to_try_again() -> None:
    assert GraphError(400, 130429, "(#130429) Rate limit hit").retryable
    assert GraphError(0, 0, "no answer").retryable
    assert GraphError(503, 131016, "Service unavailable").retryable
    assert not GraphError(400, 131026, "(#131026) Message undeliverable").retryable
    refused = GraphError(401, 190, "Error validating access token")
    assert refused.credentials_refused and not refused.retryable
    assert GraphError(400, 131047, "Re-engagement message", "24 hours").describe() == (
        "(#131047) Re-engagement message: 24 hours"
    )


def test_statuses_and_their_errors() -> None:
    value = {
        "statuses": [
            {"id": "wamid.a", "status": "played", "timestamp": "1700000001", "recipient_id": "1"},
            {
                "id": "wamid.b",
                "status": "failed",
                "timestamp": "1700000002",
                "errors": [
                    {"code": 131047, "title": "Re-engagement message", "error_data": {"details": "late"}}
                ],
            },
            {"id": "wamid.c", "status": "deleted", "timestamp": "1"},
        ]
    }
    parsed = inbound.parse_value(value)
    assert [(s.wamid, s.status) for s in parsed.statuses] == [("wamid.a", "read"), ("wamid.b", "failed")]
    assert parsed.statuses[1].description == "(#131047) Re-engagement message: late"
    assert parsed.skipped == ["status deleted"]


def test_a_replayed_message_gets_the_same_id() -> None:
    assert inbound.local_id("wamid.x") == inbound.local_id("wamid.x") != inbound.local_id("wamid.y")
    assert len(inbound.local_id("wamid." + "z" * 300)) <= 64


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
known_keys = st.sampled_from(
    [
        "from",
        "id",
        "type",
        "text",
        "image",
        "context",
        "location",
        "contacts",
        "interactive",
        "reaction",
        "button",
    ]
)
messages = st.dictionaries(known_keys, json_values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["metadata", "contacts", "messages", "statuses"]),
        st.one_of(json_values, st.lists(messages, max_size=3)),
    )
)
def test_any_payload_parses_without_an_exception(value: dict[str, Any]) -> None:
    """A malformed webhook value must never crash the inbox (it would block the payloads after it)."""
    parsed = inbound.parse_value(value)
    for got in parsed.received:
        assert got.sender.isdigit() and got.wamid
