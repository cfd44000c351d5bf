"""docs/grafana/alignment-node.json and docs/metrics.md against the node's metrics registry: the dashboard
queries only metrics the node exports and has a panel for each; the page documents each with its type and
labels, and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from alignment_node.node.metrics import NodeMetrics

DOCS = Path(__file__).resolve().parent.parent / "docs"
METRIC_NAME = re.compile(r"\b(?:alignment|process)_[a-z0-9_]+\b")
SERIES_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def families() -> dict[str, str]:
    """{family name: type} of every metric the node's registry exports."""
    return {f.name: f.type for f in NodeMetrics().registry.collect()}


def labels() -> dict[str, tuple[str, ...]]:
    """{family name: label names} of the node's own metrics (the process collector's have none)."""
    metrics = NodeMetrics()
    return {m._name: tuple(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}


def series(name: str, kind: str) -> set[str]:
    return {name + suffix for suffix in SERIES_SUFFIXES[kind]}


def dashboard() -> dict:
    return json.loads((DOCS / "grafana" / "alignment-node.json").read_text())


def queried_names() -> set[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """{metric: (type, labels)} from the tables of docs/metrics.md."""
    rows = {}
    for line in (DOCS / "metrics.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], tuple(re.findall(r"`(\w+)`", cells[2])))
    return rows


def test_every_metric_the_dashboard_queries_is_exported():
    exported = {s for name, kind in families().items() for s in series(name, kind)}
    queried = queried_names()
    assert queried and queried <= exported, sorted(queried - exported)


def test_every_exported_metric_has_a_panel():
    queried = queried_names()
    missing = [name for name, kind in families().items() if not series(name, kind) & queried]
    assert not missing, missing


def test_every_exported_metric_is_documented_with_its_type_and_labels():
    docs = documented()
    label_names = labels()
    expected = {}
    for name, kind in families().items():
        shown = name + "_total" if kind == "counter" else name
        expected[shown] = (kind, label_names.get(name, ()))
    assert docs == expected


def test_the_dashboard_reads_its_prometheus_data_source_variable():
    board = dashboard()
    assert board["schemaVersion"] == 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    sources = [p["datasource"] for p in board["panels"] if p["type"] != "row"]
    sources += [t["datasource"] for p in board["panels"] for t in p.get("targets", [])]
    assert sources and all(s == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for s in sources)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
