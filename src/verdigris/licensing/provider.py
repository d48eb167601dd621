"""Payment providers: the interface, and the signed callback every provider adapter speaks.

No payment provider is reachable from a self-hosted sandbox, so Verdigris defines one callback
contract (docs/licensing.md) that a small adapter at the operator's provider calls:

``POST /api/v1/payments/callback/{provider}`` with a JSON body
``{"invoice": "INV-2026-000042", "amount": "29.00", "currency": "USD", "reference": "pi_123",
"status": "succeeded"}`` and the header
``X-Verdigris-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``.

The signature is checked in constant time, the timestamp must be within the tolerance (replays of
old callbacks are refused), and the reference makes a repeated callback harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from verdigris.errors import ServiceError

SIGNATURE_HEADER = "x-verdigris-signature"


class CallbackError(ServiceError):
    pass


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    provider: str
    invoice_number: str
    amount: str
    currency: str
    reference: str
    status: str  # "succeeded" concludes the agreement; anything else is recorded nowhere


class PaymentProvider(Protocol):
    name: str

    def parse_callback(
        self, headers: dict[str, str], body: bytes, now_s: int | None = None
    ) -> PaymentEvent: ...


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class SignedCallbackProvider:
    """The documented contract above, for a provider named ``name``."""

    def __init__(self, name: str, secret: str, tolerance_s: int = 300) -> None:
        self.name = name
        self.secret = secret
        self.tolerance_s = tolerance_s

    def parse_callback(self, headers: dict[str, str], body: bytes, now_s: int | None = None) -> PaymentEvent:
        if not self.secret:
            raise CallbackError(404, "payment callbacks are not enabled on this server")
        header = headers.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp.isdigit() or not given:
            raise CallbackError(401, "missing or malformed signature")
        now = int(time.time()) if now_s is None else now_s
        if abs(now - int(stamp)) > self.tolerance_s:
            raise CallbackError(401, "signature timestamp outside the allowed window")
        expected = sign(self.secret, body, int(stamp)).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, given):
            raise CallbackError(401, "bad signature")
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CallbackError(400, "body is not JSON") from None
        if not isinstance(data, dict):
            raise CallbackError(400, "body must be a JSON object")
        fields = {}
        for key in ("invoice", "amount", "currency", "reference", "status"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise CallbackError(400, f"'{key}' must be a non-empty string")
            fields[key] = value
        return PaymentEvent(
            provider=self.name,
            invoice_number=fields["invoice"],
            amount=fields["amount"],
            currency=fields["currency"],
            reference=fields["reference"],
            status=fields["status"],
        )
