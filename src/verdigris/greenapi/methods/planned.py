"""Documented GREEN-API methods that are not implemented. They answer 501 with the reason (never a
fake success) and are listed in docs/compatibility.md with it.
"""

from __future__ import annotations

from verdigris.greenapi.registry import planned

# Obsolete upstream (removed from the current docs); a sandbox has no proxy to set.
planned("setSystemProxy", "GET", "account", "obsolete upstream (removed from the GREEN-API docs)")
planned("scanqrcode", "GET", "account", "WebSocket QR stream: planned; poll the qr method meanwhile")
# Deprecated upstream: the answer came later as a deviceInfo/avatarInfo notification; getAvatar replaced it.
planned("getAvatarAsync", "POST", "service", "deprecated upstream; use getAvatar")
