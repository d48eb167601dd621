"""Prometheus metrics of the process, in one place (served at ``/metrics``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from verdigris.core import Core

WIRE_REQUESTS = Counter("verdigris_wire_requests_total", "Wire API calls answered", ["method", "status"])
RATE_LIMITED = Counter(
    "verdigris_wire_rate_limited_total", "Wire calls refused with 429 by the rate limiter", ["method"]
)
MESSAGES_ACCEPTED = Counter("verdigris_messages_accepted_total", "Outgoing messages accepted into queues")
MESSAGES_SENT = Counter("verdigris_messages_sent_total", "Queued messages handed to their channel")
NOTIFICATIONS = Counter("verdigris_notifications_total", "Notifications queued", ["type"])
LONG_POLLS = Gauge("verdigris_long_polls_waiting", "receiveNotification calls waiting right now")
CLUSTER_NOTIFIES = Counter(
    "verdigris_cluster_notifies_total",
    "LISTEN/NOTIFY wake-up batches between server processes on one PostgreSQL store",
    ["direction"],
)
TIMERS = Gauge("verdigris_timers_pending", "Due-time timers planned (sends, reboots, ...)")


def bind(core: Core) -> None:
    """Gauges read the live state of ``core`` when scraped."""
    LONG_POLLS.set_function(core.hub.waiting)
    TIMERS.set_function(lambda: len(core.timers))
