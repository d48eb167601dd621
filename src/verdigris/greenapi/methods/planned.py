"""Documented GREEN-API methods that are not implemented yet. They answer 501 with a clear
message (never a fake success) and are listed in docs/compatibility.md as planned.
"""

from __future__ import annotations

from verdigris.greenapi.registry import planned

_ISSUE3 = "issue 3: the complete method surface"

for _name, _verb, _group in [
    ("setSystemProxy", "GET", "account"),
]:
    planned(_name, _verb, _group, _ISSUE3)

planned("scanqrcode", "GET", "account", "WebSocket QR stream; poll the qr method meanwhile")
# Deprecated upstream: the answer came later as a deviceInfo/avatarInfo notification; getAvatar replaced it.
planned("getAvatarAsync", "POST", "service", "deprecated upstream; use getAvatar")
