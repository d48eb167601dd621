"""Documented GREEN-API methods that are not implemented yet. They answer 501 with a clear
message (never a fake success) and are listed in docs/compatibility.md as planned.
"""

from __future__ import annotations

from verdigris.greenapi.registry import planned

_ISSUE3 = "issue 3: the complete method surface"

for _name, _verb, _group in [
    ("setProfilePicture", "POST", "account"),
    ("setSystemProxy", "GET", "account"),
    ("sendPoll", "POST", "sending"),
    ("sendFileByUpload", "POST", "sending"),
    ("sendFileByUrl", "POST", "sending"),
    ("uploadFile", "POST", "sending"),
    ("sendLocation", "POST", "sending"),
    ("sendContact", "POST", "sending"),
    ("forwardMessages", "POST", "sending"),
    ("sendInteractiveButtons", "POST", "sending"),
    ("sendInteractiveButtonsReply", "POST", "sending"),
    ("sendTyping", "POST", "sending"),
    ("sendReaction", "POST", "sending"),
    ("sendButtons", "POST", "sending"),
    ("sendTemplateButtons", "POST", "sending"),
    ("sendListMessage", "POST", "sending"),
    ("sendLink", "POST", "sending"),
    ("sendTemplate", "POST", "sending"),
    ("downloadFile", "POST", "receiving"),
    ("checkWhatsapp", "POST", "service"),
    ("getAvatar", "POST", "service"),
    ("getContacts", "GET", "service"),
    ("getContactInfo", "POST", "service"),
    ("getChats", "GET", "service"),
    ("addContact", "POST", "service"),
    ("editContact", "POST", "service"),
    ("deleteContact", "POST", "service"),
    ("editMessage", "POST", "service"),
    ("deleteMessage", "POST", "service"),
    ("archiveChat", "POST", "service"),
    ("unarchiveChat", "POST", "service"),
    ("setDisappearingChat", "POST", "service"),
    ("getAvatarAsync", "POST", "service"),
]:
    planned(_name, _verb, _group, _ISSUE3)
