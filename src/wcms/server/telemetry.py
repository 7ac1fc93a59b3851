"""The server's own Prometheus metrics, one registry per server process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)


class Telemetry:
    """Counters and histograms the hot paths update and ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.heartbeats_written = Counter(
            "wcms_heartbeats_written", "Heartbeats written to the database", registry=self.registry
        )
        self.heartbeat_latency = Histogram(
            "wcms_heartbeat_latency_seconds",
            "From a heartbeat's arrival to its row being committed",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.run_updates = Counter(
            "wcms_run_updates", "Run updates received from agents", registry=self.registry
        )
        self.agents_connected = Gauge(
            "wcms_agents_connected",
            "Agents connected to this server process",
            registry=self.registry,
        )

        self.worker_up = Gauge(
            "wcms_worker_up",
            "1 while the background worker runs, 0 once it has stopped",
            ["worker"],
            registry=self.registry,
        )
        self.storage_writable = Gauge(
            "wcms_storage_writable",
            "0 while writes to the database fail (full disk, database away)",
            registry=self.registry,
        )

        self.presence_unstored = Gauge(
            "wcms_presence_unstored",
            "Presence changes whose write failed, written again every second until stored",
            registry=self.registry,
        )

        self.alert_outbox_depth = Gauge(
            "wcms_alert_outbox_depth",
            "Alert messages queued or being sent, as of the outbox's last round",
            registry=self.registry,
        )
        self.alerts_firing = Gauge(
            "wcms_alerts_firing",
            "Alerts firing now, as of the alert engine's last evaluation",
            registry=self.registry,
        )
        self.alert_deliveries = Counter(
            "wcms_alert_deliveries",
            "Attempts to send alert messages by outcome (delivered, retry, rate_limited, "
            "dead), and messages given up at their deadline (dead)",
            ["outcome"],
            registry=self.registry,
        )

    def count_connected(self, count: Callable[[], float]) -> None:
        self.agents_connected.set_function(count)
