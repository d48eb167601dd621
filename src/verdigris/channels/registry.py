"""Which channels a process runs: the built-in ones and those named by ``VERDIGRIS_CHANNELS``.

A channel is found by an import path ``module:Class``; the class is constructed with the Core. The
faces never import a concrete channel: they reach channels through ``Core.channels`` (built here)
and their declarations through :func:`declared` (docs/compatibility.md is generated from them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verdigris.channels.base import Channel
    from verdigris.config import Settings
    from verdigris.core import Core

SANDBOX = "verdigris.channels.sandbox.channel:SandboxChannel"
CLOUD = "verdigris.channels.whatsapp_cloud.channel:CloudChannel"
WEB = "verdigris.channels.whatsapp_web.channel:WebChannel"


class ChannelConfigError(ValueError):
    pass


def load(path: str) -> Any:
    """The channel class an import path ``module:Class`` names."""
    module_name, _, attr = path.strip().partition(":")
    if not module_name or not attr:
        raise ChannelConfigError(f"a channel is named module:Class, not {path!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ChannelConfigError(f"channel {path!r} cannot be loaded: {exc}") from exc


def paths(settings: Settings) -> list[str]:
    """The import paths of the channels this process runs, the sandbox first."""
    found = [SANDBOX]
    if settings.cloud_enabled:
        found.append(CLOUD)
    if settings.whatsapp_web_enabled:
        found.append(WEB)
    found += [p.strip() for p in settings.channels.split(",") if p.strip()]
    return found


def build(core: Core) -> dict[str, Channel]:
    """One instance of each channel, by name."""
    channels: dict[str, Channel] = {}
    for path in paths(core.settings):
        channel = load(path)(core)
        if channel.name in channels:
            raise ChannelConfigError(f"two channels are named {channel.name!r}")
        channels[channel.name] = channel
    return channels


def declared() -> list[Any]:
    """The classes of the built-in channels, for documents generated from their declarations."""
    return [load(SANDBOX), load(CLOUD), load(WEB)]
