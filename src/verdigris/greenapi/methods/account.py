"""Account methods: settings, state, QR / pairing-code linking, reboot, logout, token rotation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import Field, field_validator

from verdigris.accounts import closing as accounts_closing
from verdigris.accounts.journal import Origin
from verdigris.channels.base import profiles_of
from verdigris.channels.capabilities import PROFILES
from verdigris.greenapi.errors import WireError, validation
from verdigris.greenapi.fields import Body
from verdigris.greenapi.registry import Call, wire_method
from verdigris.instances import service as instances
from verdigris.instances.qrimage import qr_png_base64
from verdigris.instances.settings import CATALOGUE, SETTABLE, delay_error
from verdigris.outbound import url_problem, webhooks_may_go_private

if TYPE_CHECKING:
    from verdigris.core import Core

YesNo = Literal["yes", "no"]


class SettingsBody(Body):
    """setSettings: any subset of the settable fields."""

    webhookUrl: str | None = Field(default=None, max_length=2000)
    webhookUrlToken: str | None = Field(default=None, max_length=500)
    delaySendMessagesMilliseconds: int | None = None
    markIncomingMessagesReaded: YesNo | None = None
    markIncomingMessagesReadedOnReply: YesNo | None = None
    outgoingWebhook: YesNo | None = None
    outgoingMessageWebhook: YesNo | None = None
    outgoingAPIMessageWebhook: YesNo | None = None
    incomingWebhook: YesNo | None = None
    deviceWebhook: YesNo | None = None
    statusInstanceWebhook: YesNo | None = None
    stateWebhook: YesNo | None = None
    enableMessagesHistory: YesNo | None = None
    keepOnlineStatus: YesNo | None = None
    pollMessageWebhook: YesNo | None = None
    incomingBlockWebhook: YesNo | None = None
    incomingCallWebhook: YesNo | None = None
    outgoingCallWebhook: YesNo | None = None
    editedMessageWebhook: YesNo | None = None
    deletedMessageWebhook: YesNo | None = None
    sharedSession: YesNo | None = None
    countryInstance: str | None = None
    proxyInstance: str | None = None
    autoTyping: int | None = Field(default=None, ge=0, le=4)
    linkPreview: bool | None = None
    enableLidMode: bool | None = None

    @field_validator("webhookUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not _deliverable_url(value):
            raise ValueError(
                "'webhookUrl' must be an http:// or https:// URL, or \"\" to switch webhooks off"
            )
        return value

    @field_validator("webhookUrlToken")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        # It is sent as the Authorization header of every webhook call.
        if value and not all(" " <= ch <= "~" for ch in value):
            raise ValueError("'webhookUrlToken' must be printable ASCII (it is sent as an HTTP header)")
        return value


def _deliverable_url(value: str) -> bool:
    """An http(s) URL with a host that an HTTP client can actually call."""
    if not value.lower().startswith(("http://", "https://")):
        return False
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        return False
    return bool(url.host) and " " not in value and (url.port is None or 0 < url.port < 65536)


def settings_changes(core: Core, body: SettingsBody) -> dict[str, Any]:
    """The settable fields a validated settings body sets (also used by partner createInstance)."""
    changes = {k: v for k, v in body.model_dump(exclude_none=True).items() if k in SETTABLE}
    problem = delay_error(core.settings, changes.get("delaySendMessagesMilliseconds"))
    if problem:
        raise validation(problem)
    return changes


async def check_webhook_target(core: Core, changes: dict[str, Any]) -> None:
    """Refuse a webhookUrl on the server's own network unless the operator allows it (outbound.py)."""
    problem = await url_problem(str(changes.get("webhookUrl") or ""), webhooks_may_go_private(core.settings))
    if problem:
        raise validation(f"'webhookUrl': {problem}")


def settings_view(call: Call) -> dict[str, Any]:
    inst = call.instance
    view = {name: inst.settings.get(name, spec.default) for name, spec in CATALOGUE.items()}
    view["wid"] = inst.wid
    return view


@wire_method("getSettings", "GET", "account")
async def get_settings(call: Call) -> dict[str, Any]:
    """Instance settings."""
    return settings_view(call)


@wire_method("setSettings", "POST", "account", body=SettingsBody)
async def set_settings(call: Call) -> dict[str, Any]:
    """Change any subset of the settings; applied at once."""
    changes = settings_changes(call.core, call.body)
    if not changes:
        raise validation("'value' must have at least 1 key")
    await check_webhook_target(call.core, changes)
    await instances.update_settings(call.core, call.instance, changes)
    return {"saveSettings": True}


@wire_method("getStateInstance", "GET", "account")
async def get_state_instance(call: Call) -> dict[str, Any]:
    """Authorization state of the instance."""
    return {"stateInstance": call.instance.state}


@wire_method("getStatusInstance", "GET", "account")
async def get_status_instance(call: Call) -> dict[str, Any]:
    """Socket status (archived method): online while authorized."""
    return {"statusInstance": "online" if instances.is_online(call.instance.state) else "offline"}


@wire_method("GetStateInstanceHistory", "GET", "account", query=("count",))
async def get_state_instance_history(call: Call) -> list[dict[str, Any]]:
    """State changes, newest first."""
    count = call.int_param("count", 100, 1, 1000)
    rows = await instances.state_history(call.core, call.instance, count)
    return [
        {"stateInstance": r["state"], "timestamp": r["at_ms"] // 1000, "phoneNumber": r["wid"]} for r in rows
    ]


# setProfilePicture: at most one change per 10 s per instance (documented soft failure).
PROFILE_PICTURE_INTERVAL = 10.0
_last_profile_picture: dict[int, float] = {}


@wire_method(
    "setProfilePicture", "POST", "account", body_kind="multipart", needs_link=True, capability=PROFILES
)
async def set_profile_picture(call: Call) -> dict[str, Any]:
    """Set the linked account's profile picture: multipart ``file`` (JPEG or PNG)."""
    from verdigris.greenapi.methods.groups import read_picture_form

    _, data = await read_picture_form(call, with_group=False)
    now = time.monotonic()
    last = _last_profile_picture.get(call.instance.id)
    if last is not None and now - last < PROFILE_PICTURE_INTERVAL:
        return {"reason": "rate-overlimit", "urlAvatar": "", "setProfilePicture": False}
    _last_profile_picture[call.instance.id] = now
    url = await profiles_of(call.channel).set_profile_picture(call.core, call.instance.phone, data)
    return {"reason": None, "urlAvatar": url, "setProfilePicture": True}


@wire_method("getWaSettings", "GET", "account")
async def get_wa_settings(call: Call) -> dict[str, Any]:
    """Information about the linked messenger account."""
    inst = call.instance
    linked = inst.state == instances.AUTHORIZED
    profiles = call.channel.profiles
    return {
        # Only networks with profiles show pictures.
        "avatar": await profiles.profile_picture_url(call.core, inst.phone) if linked and profiles else "",
        "base64Avatar": "",
        "phone": inst.phone if linked else "",
        "chatId": "",
        "stateInstance": inst.state,
        "deviceId": f"{inst.phone}:1@s.whatsapp.net" if linked else "",
        "historySyncProgress": 100 if linked else 0,
        "logoutProcess": False,
    }


@wire_method("getDeviceInfo", "GET", "account")
async def get_device_info(call: Call) -> dict[str, Any]:
    """Phone information (deprecated upstream); the sandbox reports its simulated device."""
    return {
        "deviceManufacturer": "Verdigris",
        "deviceModel": "sandbox",
        "osVersion": "1",
        "waVersion": "2.0",
        "platform": "sandbox",
        "battery": 100,
    }


@wire_method("reboot", "GET", "account")
async def reboot(call: Call) -> dict[str, Any]:
    """Restart the instance (passes through ``starting``)."""
    await instances.reboot(call.core, call.instance)
    return {"isReboot": True}


@wire_method("logout", "GET", "account")
async def logout(call: Call) -> dict[str, Any]:
    """Unlink the instance from its account."""
    await instances.logout(call.core, call.instance)
    return {"isLogout": True}


@wire_method("updateApiToken", "GET", "account")
async def update_api_token(call: Call) -> dict[str, Any]:
    """Replace the instance token; the old one stops working at once."""
    origin = Origin(
        call.request.client.host if call.request.client else "", call.request.headers.get("user-agent", "")
    )
    return {
        "apiTokenInstance": await accounts_closing.rotate_instance_token(
            call.core, None, call.instance, origin
        )
    }


@wire_method("qr", "GET", "account")
async def qr(call: Call) -> dict[str, Any]:
    """A QR code (base64 PNG) to link the instance; it changes every 20 seconds."""
    inst = call.instance
    if inst.state == instances.AUTHORIZED:
        return {"type": "alreadyLogged", "message": "instance account already authorized"}
    if inst.state == instances.STARTING:
        return {"type": "error", "message": "instance in starting process try later"}
    payload = await call.channel.qr_payload(inst)
    return {"type": "qrCode", "message": qr_png_base64(payload)}


class AuthorizationCodeBody(Body):
    phoneNumber: int | str

    @field_validator("phoneNumber")
    @classmethod
    def _digits(cls, value: int | str) -> str:
        text = str(value)
        if not (text.isascii() and text.isdigit()) or not 7 <= len(text) <= 15:
            raise ValueError(
                "Wrong format. 'phoneNumber' must contain only digits (7 to 15, international format)"
            )
        return text


@wire_method("getAuthorizationCode", "POST", "account", body=AuthorizationCodeBody)
async def get_authorization_code(call: Call) -> dict[str, Any]:
    """A pairing code to link the instance by phone number instead of a QR code."""
    try:
        code = await call.channel.pairing_code(call.instance, str(call.body.phoneNumber))
    except instances.InstanceError as exc:
        raise WireError(400, str(exc)) from None
    return {"status": True, "code": code}
