"""The catalogue of instance settings: names, kinds, defaults and the rules for changing them.

The names are the GREEN-API setting names, because they are also what users see in the console
and docs. Flags are the strings ``"yes"``/``"no"``; everything is off on a new instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from verdigris.config import Settings

Kind = Literal["flag", "string", "int", "bool"]


@dataclass(frozen=True)
class SettingSpec:
    name: str
    kind: Kind
    default: Any
    settable: bool = True
    help: str = ""


FLAG_NAMES = (
    "markIncomingMessagesReaded",
    "markIncomingMessagesReadedOnReply",
    "sharedSession",
    "outgoingWebhook",
    "outgoingMessageWebhook",
    "outgoingAPIMessageWebhook",
    "incomingWebhook",
    "deviceWebhook",
    "statusInstanceWebhook",
    "stateWebhook",
    "enableMessagesHistory",
    "keepOnlineStatus",
    "pollMessageWebhook",
    "incomingBlockWebhook",
    "incomingCallWebhook",
    "outgoingCallWebhook",
    "editedMessageWebhook",
    "deletedMessageWebhook",
)

CATALOGUE: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec("wid", "string", "", settable=False, help="own id, read-only"),
        SettingSpec("countryInstance", "string", "", help="deprecated; accepted and ignored"),
        SettingSpec("typeAccount", "string", "", settable=False, help="deprecated; read-only"),
        SettingSpec("webhookUrl", "string", "", help="where notifications are pushed; empty = polling"),
        SettingSpec("webhookUrlToken", "string", "", help="sent as 'Authorization: Bearer <token>'"),
        SettingSpec("delaySendMessagesMilliseconds", "int", 500, help="gap between two sends"),
        SettingSpec("proxyInstance", "string", "", help="deprecated; accepted and ignored"),
        SettingSpec("autoTyping", "int", 0, help="0 = off, 1..4 typing levels"),
        SettingSpec("linkPreview", "bool", True, help="default link preview for sendMessage"),
        SettingSpec("enableLidMode", "bool", False, help="accepted and echoed"),
        *(SettingSpec(name, "flag", "no") for name in FLAG_NAMES),
    )
}

SETTABLE = frozenset(name for name, spec in CATALOGUE.items() if spec.settable)

# Flags the demo workspace switches on so that messages flow both ways out of the box.
MESSAGE_FLAGS = ("incomingWebhook", "outgoingWebhook", "outgoingMessageWebhook", "outgoingAPIMessageWebhook")


def defaults(send_delay_ms: int) -> dict[str, Any]:
    values = {name: spec.default for name, spec in CATALOGUE.items()}
    values["delaySendMessagesMilliseconds"] = send_delay_ms
    return values


def is_on(settings: dict[str, Any], name: str) -> bool:
    return settings.get(name) == "yes"


def delay_error(config: Settings, delay: int | None) -> str | None:
    """Why a requested delaySendMessagesMilliseconds is refused (None when it is fine)."""
    if delay is None:
        return None
    if delay < config.send_delay_min_ms:
        return f"'delaySendMessagesMilliseconds' must be larger than or equal to {config.send_delay_min_ms}"
    if delay > config.send_delay_max_ms:
        return f"'delaySendMessagesMilliseconds' must be less than or equal to {config.send_delay_max_ms}"
    return None
