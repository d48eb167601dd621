"""Plain words for the GREEN-API instance settings, shown in the console beside the API names."""

from __future__ import annotations

from verdigris.messaging.notifications import NOT_EMITTED

SETTING_WORDS: dict[str, str] = {
    "wid": "This instance's own WhatsApp id",
    "countryInstance": "Country (no longer used)",
    "typeAccount": "Account type (no longer used)",
    "webhookUrl": "Webhook address (empty: read notifications with receiveNotification)",
    "webhookUrlToken": "Token sent to the webhook",
    "delaySendMessagesMilliseconds": "Pause between two sent messages (ms)",
    "proxyInstance": "Proxy (no longer used)",
    "autoTyping": "Show 'typing…' before sending (0 = off)",
    "linkPreview": "Link previews in sent texts",
    "enableLidMode": "LID mode",
    "markIncomingMessagesReaded": "Mark incoming messages read at once",
    "markIncomingMessagesReadedOnReply": "Mark a chat read when replying",
    "sharedSession": "Share the session",
    "outgoingWebhook": "Notify: status of sent messages",
    "outgoingMessageWebhook": "Notify: messages sent from the phone",
    "outgoingAPIMessageWebhook": "Notify: messages sent through the API",
    "incomingWebhook": "Notify: incoming messages and files",
    "deviceWebhook": "Notify: phone device state",
    "statusInstanceWebhook": "Notify: socket state",
    "stateWebhook": "Notify: instance state (authorized, …)",
    "enableMessagesHistory": "Keep message history",
    "keepOnlineStatus": "Stay 'online'",
    "pollMessageWebhook": "Notify: poll votes",
    "incomingBlockWebhook": "Notify: chats blocked",
    "incomingCallWebhook": "Notify: incoming calls",
    "outgoingCallWebhook": "Notify: outgoing calls",
    "editedMessageWebhook": "Notify: edited messages",
    "deletedMessageWebhook": "Notify: deleted messages",
}

# A setting whose notification this server never sends says so where it is set.
for _flag, _ in NOT_EMITTED.values():
    SETTING_WORDS[_flag] += " (never sent by this server; see docs/compatibility.md)"

# Each instance state (GREEN-API's stateInstance) in a sentence, on the instance page's Link card.
STATE_WORDS: dict[str, str] = {
    "authorized": "Linked: messages go out and come in through this number.",
    "notAuthorized": "Not linked.",
    "starting": "Starting: connecting to the network. This takes a few seconds.",
    "blocked": "Blocked: the network has banned this number. Nothing is sent while the ban lasts; "
    "messages wait in the queue.",
    "yellowCard": "Yellow card: sending is suspended for spam-like behaviour. Queued messages are kept; "
    "a reboot is needed to send again.",
    "sleepMode": "Sleep mode: the phone is offline. After it is back, linking may take a few minutes.",
}
# notAuthorized on a channel linked otherwise than by a code (the WhatsApp Cloud API).
NOT_CONNECTED_WORDS = "Not connected."
# notAuthorized with the number still linked: the session stopped (WhatsApp Web: stream replaced).
STOPPED_WORDS = "Not connected: the number is still linked, but its session is stopped."
