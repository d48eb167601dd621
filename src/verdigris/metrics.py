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

from verdigris.messaging import health

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
        self.partitions_held = Gauge(
            "verdigris_work_partitions_held",
            "Partitions of instances whose work (send, webhook) this process holds the lease of",
            ["kind"],
            registry=registry,
        )

        # Instance health (messaging.health), refreshed at each scrape: totals by instance state, and
        # the worst few instances by id (config: metrics_top_instances), so the series stay bounded.
        self.instances = Gauge("verdigris_instances", "Instances by state", ["state"], registry=registry)
        self.queued = Gauge(
            "verdigris_outgoing_queued_messages",
            "Messages waiting to be sent, by the state of their instance",
            ["state"],
            registry=registry,
        )
        self.notifications_waiting = Gauge(
            "verdigris_notifications_waiting",
            "Notifications waiting to be taken (webhook or receiveNotification), by instance state",
            ["state"],
            registry=registry,
        )
        self.webhooks_failing = Gauge(
            "verdigris_webhooks_failing_instances",
            "Instances whose webhook is failing on the head of their queue, by instance state",
            ["state"],
            registry=registry,
        )
        self.instance_lag = Gauge(
            "verdigris_instance_webhook_lag_seconds",
            "Age of the oldest waiting notification, for the instances that lag most",
            ["instance"],
            registry=registry,
        )
        self.instance_queue = Gauge(
            "verdigris_instance_outgoing_queued_messages",
            "Messages waiting to be sent, for the instances with the deepest queues",
            ["instance"],
            registry=registry,
        )

    async def refresh_health(self, core: Core) -> None:
        """Set the instance-health gauges from the store (called by the scrape, before render)."""
        fleet = await health.fleet(core, core.settings.metrics_top_instances)
        for gauge in (
            self.instances,
            self.queued,
            self.notifications_waiting,
            self.webhooks_failing,
            self.instance_lag,
            self.instance_queue,
        ):
            gauge.clear()
        for state, totals in fleet.by_state.items():
            self.instances.labels(state).set(totals.instances)
            self.queued.labels(state).set(totals.queued)
            self.notifications_waiting.labels(state).set(totals.notifications)
            self.webhooks_failing.labels(state).set(totals.webhooks_failing)
        for instance_id, lag in fleet.laggards:
            self.instance_lag.labels(str(instance_id)).set(lag)
        for instance_id, depth in fleet.deepest_queues:
            self.instance_queue.labels(str(instance_id)).set(depth)

    def bind(self, core: Core) -> None:
        """Gauges read the live state of ``core`` when scraped."""
        self.long_polls.set_function(core.hub.waiting)
        self.timers.set_function(lambda: len(core.timers))

    def render(self) -> bytes:
        return generate_latest(self.registry)
