"""Tariff limits: what a free or trial license may do in a quota period (a local calendar month)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The pseudo-method the monthly message cap is counted under.
MESSAGES = "messages"
CORRESPONDENTS = "correspondents"


class LimitsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Limits:
    """A missing (None) limit is unlimited; ``methods`` maps lower-case method names to totals."""

    methods: dict[str, int] = field(default_factory=dict)
    correspondents: int | None = None
    messages_per_month: int | None = None
    instances_per_account: int | None = None

    @property
    def unlimited(self) -> bool:
        return not self.methods and self.correspondents is None and self.messages_per_month is None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"methods": dict(self.methods)}
        if self.correspondents is not None:
            out["correspondents"] = self.correspondents
        if self.messages_per_month is not None:
            out["messagesPerMonth"] = self.messages_per_month
        if self.instances_per_account is not None:
            out["instancesPerAccount"] = self.instances_per_account
        return out


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LimitsError(f"limit {name!r} must be a non-negative integer or null")
    return value


def parse_limits(data: Any) -> Limits:
    if data is None:
        return Limits()
    if not isinstance(data, dict):
        raise LimitsError("limits must be an object")
    unknown = set(data) - {"methods", "correspondents", "messagesPerMonth", "instancesPerAccount"}
    if unknown:
        raise LimitsError(f"unknown limits: {', '.join(sorted(unknown))}")
    methods_raw = data.get("methods") or {}
    if not isinstance(methods_raw, dict):
        raise LimitsError("limits.methods must be an object of method name -> monthly total")
    methods: dict[str, int] = {}
    for name, total in methods_raw.items():
        if not isinstance(name, str) or not name.isalnum():
            raise LimitsError(f"{name!r} is not a method name")
        count = _count(total, name)
        if count is not None:
            methods[name.lower()] = count
    return Limits(
        methods=methods,
        correspondents=_count(data.get("correspondents"), "correspondents"),
        messages_per_month=_count(data.get("messagesPerMonth"), "messagesPerMonth"),
        instances_per_account=_count(data.get("instancesPerAccount"), "instancesPerAccount"),
    )
