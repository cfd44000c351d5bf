"""Prometheus metrics of one node process (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector


class NodeMetrics:
    """Every metric the node exports, on a registry of its own (so tests can run several nodes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ... (Linux)
        self.licenses = Gauge(
            "alignment_licenses", "Licenses of this operator by state (delegated, pending, active, suspended)",
            ["state"], registry=r,
        )
        self.epoch = Gauge("alignment_epoch", "Current protocol epoch", registry=r)
        self.head_block = Gauge("alignment_head_block", "Latest chain block seen", registry=r)
        self.heartbeat_txs = Counter(
            "alignment_heartbeat_transactions", "Heartbeat transactions mined", registry=r
        )
        self.heartbeats = Counter("alignment_heartbeats", "License heartbeats mined (licenses x epochs)", registry=r)
        self.last_heartbeat_epoch = Gauge(
            "alignment_last_heartbeat_epoch", "Epoch of the last mined heartbeat", registry=r
        )
        self.tx_sent = Counter("alignment_transactions_sent", "Transactions sent", ["purpose"], registry=r)
        self.tx_failed = Counter(
            "alignment_transactions_failed", "Transactions that reverted or could not be sent",
            ["purpose", "reason"], registry=r,
        )
        self.tx_replacements = Counter(
            "alignment_transaction_replacements", "Stalled transactions replaced with a higher fee (same nonce)",
            ["purpose"], registry=r,
        )
        self.tx_latency = Histogram(
            "alignment_transaction_latency_seconds", "Seconds from broadcast to receipt", ["purpose"], registry=r,
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
        )
        self.tx_gas = Counter("alignment_transaction_gas_used", "Gas used by mined transactions (reverted ones too)",
                              ["purpose"], registry=r)
        self.rpc_latency = Histogram(
            "alignment_rpc_latency_seconds", "JSON-RPC request latency", ["method"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.rpc_errors = Counter(
            "alignment_rpc_errors", "JSON-RPC requests that failed on an endpoint", ["endpoint"], registry=r
        )
        self.rpc_failovers = Counter(
            "alignment_rpc_failovers", "Requests that moved to another endpoint", registry=r
        )
        self.rpc_lies = Counter(
            "alignment_rpc_lies", "Endpoint answers refused as lies (wrong-chain, stale-head, stalled-head)",
            ["reason"], registry=r,
        )
        self.reorged = Counter(
            "alignment_reorged_transactions", "Mined transactions a reorg dropped from the chain", ["purpose"],
            registry=r,
        )
        self.resent = Counter(
            "alignment_resent_after_reorg", "Duties sent again because the chain no longer showed them",
            ["purpose"], registry=r,
        )
        self.balance = Gauge(
            "alignment_operator_balance_wei", "Operator balances (native gas coin, reward token)", ["asset"],
            registry=r,
        )
        self.commission = Gauge(
            "alignment_operator_commission_wei", "Commission claimable by this operator", registry=r
        )
        self.license_claimable = Gauge(
            "alignment_licenses_claimable_wei", "Sum of what this operator's licenses can claim", registry=r
        )
        self.audits = Counter("alignment_audits", "Audits run, by target kind and verdict", ["kind", "verdict"],
                              registry=r)
        self.audits_epoch = Gauge("alignment_audit_targets", "Targets audited in the latest epoch", registry=r)
        self.audit_seconds = Histogram("alignment_audit_epoch_seconds", "Wall time of one epoch's audits per kind",
                                       registry=r, buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.commits = Counter("alignment_commitments", "License commitments mined", registry=r)
        self.reveals = Counter("alignment_reveals", "License reveals mined", registry=r)
        self.missed_reveals = Counter("alignment_missed_reveals", "License reveals that could not be made",
                                      registry=r)
        self.settled = Counter("alignment_settlements", "settle transactions mined by this node", registry=r)
        self.misses_reported = Counter("alignment_misses_reported", "Misses this node reported (bounties)",
                                       registry=r)
        self.challenges = Counter("alignment_evidence_challenges",
                                  "Evidence challenges of this node's votes, by result (served, unservable)",
                                  ["result"], registry=r)
        self.credited = Counter(
            "alignment_license_credits", "Presence credits booked for this operator's licenses", registry=r
        )
