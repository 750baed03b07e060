"""Every metric the service exports, declared in one place with bounded labels.

A private registry (not the process-global one) keeps tests and several
in-process instances from colliding; `Metrics()` makes a fresh set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # Admission
        self.admission_requests_total = Counter(
            "stellar_admission_requests_total",
            "AdmissionReviews answered, by result",
            ["result"],
            registry=r,  # result: patched|allowed|skipped|invalid|error
        )
        self.admission_skipped_total = Counter(
            "stellar_admission_skipped_total",
            "Pods not injected, by reason",
            ["reason"],
            registry=r,
        )
        self.admission_injected_total = Counter(
            "stellar_admission_injected_total",
            "Validator pods injected",
            registry=r,
        )
        self.admission_errors_total = Counter(
            "stellar_admission_errors_total",
            "Requests refused as malformed, by kind",
            ["kind"],
            registry=r,
        )
        self.admission_duration_seconds = Histogram(
            "stellar_admission_duration_seconds",
            "Time to answer one AdmissionReview",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cert_reloads_total = Counter(
            "stellar_cert_reloads_total",
            "Serving certificate reloads from disk",
            registry=r,
        )
        self.cert_expiry_timestamp_seconds = Gauge(
            "stellar_cert_expiry_timestamp_seconds",
            "notAfter of the serving certificate",
            registry=r,
        )
        # Peer watcher
        self.peers = Gauge(
            "stellar_peers", "Peers in the current set, by source", ["source"], registry=r
        )
        self.configmap_writes_total = Counter(
            "stellar_configmap_writes_total",
            "ConfigMap writes, by kind (canonical|mirror)",
            ["kind", "result"],
            registry=r,
        )
        self.configmap_oversize_total = Counter(
            "stellar_configmap_oversize_total",
            "Peer sets refused for exceeding the ConfigMap size limit",
            registry=r,
        )
        self.configmap_write_bytes_total = Counter(
            "stellar_configmap_write_bytes",
            "Bytes of ConfigMap bodies sent to the API server (compact JSON), by kind",
            ["kind"],
            registry=r,
        )
        self.configmap_conflicts_total = Counter(
            "stellar_configmap_conflicts_total",
            "ConfigMaps named stellar-peers that we do not own, left alone",
            registry=r,
        )
        self.watch_restarts_total = Counter(
            "stellar_watch_restarts_total",
            "Watch streams restarted, by resource and reason",
            ["resource", "reason"],
            registry=r,
        )
        self.uninjected_validators = Gauge(
            "stellar_uninjected_validators",
            "Validator pods in enabled namespaces without injection",
            registry=r,
        )
        self.leader = Gauge("stellar_leader", "1 while this replica holds the Lease", registry=r)
        self.watch_source_unavailable = Gauge(
            "stellar_watch_source_unavailable",
            "1 while a watched source cannot list (refused or failing)",
            ["resource"],
            registry=r,
        )
        # Reload controller
        self.reloads_total = Counter(
            "stellar_reloads_total",
            "Node reloads, by mode and result",
            ["mode", "result"],
            registry=r,
        )
        self.reload_duration_seconds = Histogram(
            "stellar_reload_duration_seconds",
            "Time for one reload round",
            registry=r,
        )
        self.peer_connections = Gauge(
            "stellar_peer_connections",
            "Expected peers of the validators, connected or by why not (core.connection.STATES)",
            ["state"],
            registry=r,
        )
        self.link_reachable = Gauge(
            "stellar_link_reachable",
            "1 while a linked cluster answers, 0 while it cannot be reached",
            ["cluster"],
            registry=r,  # one per link Secret: bounded by the operator
        )
        self.link_entries = Gauge(
            "stellar_link_entries",
            "Remote entries taken from a linked cluster (0 once stale)",
            ["cluster"],
            registry=r,
        )
        self.nodes_behind = Gauge(
            "stellar_nodes_behind",
            "Validators not yet on the current peer set",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
