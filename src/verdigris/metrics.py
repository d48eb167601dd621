"""Prometheus metrics of one application, in one place (served at ``/metrics``).

Each :class:`~verdigris.core.Core` has its own :class:`Metrics` with its own registry, so that two
applications in one process (the in-process test servers) count apart, as two servers would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

if TYPE_CHECKING:
    from verdigris.core import Core


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # facts of the process
            registry.register(collector)
        self.wire_requests = Counter(
            "verdigris_wire_requests_total",
            "Wire API calls answered",
            ["method", "status"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "verdigris_wire_rate_limited_total",
            "Wire calls refused with 429 by the rate limiter",
            ["method"],
            registry=registry,
        )
        self.messages_accepted = Counter(
            "verdigris_messages_accepted_total", "Outgoing messages accepted into queues", registry=registry
        )
        self.messages_sent = Counter(
            "verdigris_messages_sent_total", "Queued messages handed to their channel", registry=registry
        )
        self.notifications = Counter(
            "verdigris_notifications_total", "Notifications queued", ["type"], registry=registry
        )
        self.long_polls = Gauge(
            "verdigris_long_polls_waiting", "receiveNotification calls waiting right now", registry=registry
        )
        self.cluster_notifies = Counter(
            "verdigris_cluster_notifies_total",
            "LISTEN/NOTIFY wake-up batches between server processes on one PostgreSQL store",
            ["direction"],
            registry=registry,
        )
        self.timers = Gauge(
            "verdigris_timers_pending", "Due-time timers planned (sends, reboots, ...)", registry=registry
        )

    def bind(self, core: Core) -> None:
        """Gauges read the live state of ``core`` when scraped."""
        self.long_polls.set_function(core.hub.waiting)
        self.timers.set_function(lambda: len(core.timers))

    def render(self) -> bytes:
        return generate_latest(self.registry)
