"""The method registry is the one list of wire methods by action: every name it sorts exists."""

from __future__ import annotations

from verdigris.greenapi import methods  # noqa: F401  (registers every wire method)
from verdigris.greenapi.registry import ACTS, REGISTRY, SENDS_MESSAGE, WHEN_EXPIRED


def test_every_method_sorted_by_action_is_registered() -> None:
    names = {spec.name for spec in REGISTRY.values()}
    assert (SENDS_MESSAGE | ACTS | WHEN_EXPIRED) <= names
    assert not SENDS_MESSAGE & ACTS
    assert REGISTRY["sendmessage"].sends_message and REGISTRY["sendmessage"].acts
    assert REGISTRY["creategroup"].acts and not REGISTRY["creategroup"].sends_message
    assert REGISTRY["getsettings"].when_expired and not REGISTRY["getsettings"].acts
