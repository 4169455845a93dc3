"""/metrics for Prometheus, built from the same view `tgw monitor status` prints.

A custom collector renders the view the loop built at the end of its last cycle, so a scrape
never sees a half-updated cycle and never touches the database. docs/monitoring.md lists
every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .tracker import LATENCY_BUCKETS


def _ts(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class ViewCollector:
    """Adapts a `() -> (view, extras)` source to prometheus_client's collector protocol."""

    def __init__(self, source: Callable[[], tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        view, extras = self.source()
        yield from render(view, extras)


def render(view: dict[str, Any], extras: dict[str, Any]) -> Iterator[Metric]:
    """Every metric of `view` (and the loop's own `extras`), one section of the view at a time."""
    zone = view.get("zone", "")
    for section in (_hop_metrics, _daemon_metrics, _transfer_metrics, _host_metrics, _trust_metrics,
                    _alert_metrics):
        yield from section(zone, view)
    yield from _monitor_metrics(zone, view, extras)


def _hop_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    events = CounterMetricFamily("tgw_hop_events", "Provenance events recorded, by hop that recorded them and event",
                                 labels=["zone", "hop", "event"])
    depth = GaugeMetricFamily("tgw_hop_queue_depth", "Files waiting in the hop (heartbeat or provenance events)",
                              labels=["zone", "hop"])
    age = GaugeMetricFamily("tgw_hop_oldest_age_seconds", "Age of the oldest file waiting in the hop",
                            labels=["zone", "hop"])
    open_env = GaugeMetricFamily("tgw_hop_open_envelopes", "Envelopes the provenance events place in the hop",
                                 labels=["zone", "hop"])
    latency = HistogramMetricFamily("tgw_hop_latency_seconds", "Time envelopes spent in the hop (since monitor start)",
                                    labels=["zone", "hop"])
    for hop in view.get("hops", []):
        h = hop["hop"]
        for event, n in sorted(hop.get("events", {}).items()):
            events.add_metric([zone, h, event], n)
        if hop.get("depth") is not None:
            depth.add_metric([zone, h], hop["depth"])
        if hop.get("oldest_age_seconds") is not None:
            age.add_metric([zone, h], hop["oldest_age_seconds"])
        open_env.add_metric([zone, h], hop.get("open_envelopes", 0))
        hist = hop.get("latency_histogram")
        if hist:
            latency.add_metric([zone, h], _cumulative_buckets(hist), sum_value=hist["sum"])
    # Events recorded under a hop name this monitor does not know still count.
    for h, event, n in view.get("other_events", []):
        events.add_metric([zone, h, event], n)
    return events, depth, age, open_env, latency


def _cumulative_buckets(hist: dict[str, Any]) -> list[tuple[str, int]]:
    """The tracker's per-bucket counts as Prometheus' cumulative `le` buckets."""
    cumulative, running = [], 0
    for bound, n in zip(LATENCY_BUCKETS, hist["counts"], strict=True):
        running += n
        cumulative.append((_le(bound), running))
    cumulative.append(("+Inf", hist["count"]))
    return cumulative


def _daemon_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    up = GaugeMetricFamily("tgw_daemon_up", "1 if the daemon's heartbeat is within its timeout",
                           labels=["zone", "daemon", "hop", "host"])
    hb_age = GaugeMetricFamily("tgw_daemon_heartbeat_age_seconds", "Seconds since the daemon's last heartbeat",
                               labels=["zone", "daemon"])
    starts = GaugeMetricFamily("tgw_daemon_starts_last_hour", "Daemon sessions started in the last hour",
                               labels=["zone", "daemon"])
    proc = GaugeMetricFamily("tgw_daemon_process_running", "1 if supervisor/systemd report the process running",
                             labels=["zone", "daemon", "source"])
    for d in view.get("daemons", []):
        up.add_metric([zone, d["daemon"], d["hop"], d.get("host") or ""], 1.0 if d["up"] else 0.0)
        if d.get("heartbeat_age_seconds") is not None:
            hb_age.add_metric([zone, d["daemon"]], d["heartbeat_age_seconds"])
        starts.add_metric([zone, d["daemon"]], d.get("starts_last_hour", 0))
        for p in d.get("process", []):
            proc.add_metric([zone, d["daemon"], p["source"]], 1.0 if p["running"] else 0.0)
    return up, hb_age, starts, proc


def _transfer_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    transfer = view.get("transfer", {})
    gaps = GaugeMetricFamily("tgw_transfer_open_gaps", "Open gaps the receiver reports", labels=["zone"])
    drops = GaugeMetricFamily("tgw_transfer_udp_drops", "The receiver's UDP drop counter as it reports it",
                              labels=["zone"])
    drops_win = GaugeMetricFamily("tgw_transfer_udp_drops_in_window",
                                  "UDP drops within monitor.udp_drop_window_seconds", labels=["zone"])
    if transfer.get("open_gaps") is not None:
        gaps.add_metric([zone], transfer["open_gaps"])
    if transfer.get("udp_drops") is not None:
        drops.add_metric([zone], transfer["udp_drops"])
    if "udp_drops_in_window" in transfer:
        drops_win.add_metric([zone], transfer["udp_drops_in_window"])
    sender_free = GaugeMetricFamily("tgw_sender_disk_free_bytes", "Free disk the sender reports",
                                    labels=["zone", "daemon"])
    for name in ("transfer-send", "outer.transfer-send"):
        free = (transfer.get(name) or {}).get("disk_free_bytes")
        if isinstance(free, (int, float)):
            sender_free.add_metric([zone, name], free)
    return gaps, drops, drops_win, sender_free


def _host_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    res = view.get("resources", {})
    disk = GaugeMetricFamily("tgw_host_disk_used_ratio", "Used fraction of the filesystem", labels=["zone", "path"])
    for d in res.get("disks", []):
        disk.add_metric([zone, d["path"]], d["used_fraction"])
    mem = GaugeMetricFamily("tgw_host_memory_used_ratio", "Used fraction of memory", labels=["zone"])
    cpu = GaugeMetricFamily("tgw_host_cpu_used_ratio", "CPU busy fraction since the previous cycle", labels=["zone"])
    if res.get("memory_fraction") is not None:
        mem.add_metric([zone], res["memory_fraction"])
    if res.get("cpu_fraction") is not None:
        cpu.add_metric([zone], res["cpu_fraction"])
    return disk, mem, cpu


def _trust_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    cert = GaugeMetricFamily("tgw_certificate_not_after_timestamp_seconds", "When the certificate expires",
                             labels=["zone", "kind", "subject", "fingerprint"])
    for c in view.get("certificates", []):
        cert.add_metric([zone, c["kind"], c["subject"], c["fingerprint"][:16]], _ts(c["not_after"]))
    crl = GaugeMetricFamily("tgw_crl_next_update_timestamp_seconds", "When the newest CRL of the issuer goes stale",
                            labels=["zone", "issuer"])
    for c in view.get("crls", []):
        if c.get("next_update"):
            crl.add_metric([zone, c["issuer"]], _ts(c["next_update"]))
    return cert, crl


def _alert_metrics(zone: str, view: dict[str, Any]) -> tuple[Metric, ...]:
    alert = GaugeMetricFamily("tgw_alert", "1 per pending or firing alert (state: pending, firing, inhibited, muted)",
                              labels=["zone", "hop", "check", "host", "subject", "severity", "state"])
    firing = 0
    for a in view.get("alerts", []):
        if a["state"] == "resolved":
            continue
        state = a["state"]
        if state == "firing":
            firing += 1
            state = "inhibited" if a.get("inhibited_by") else "muted" if a.get("muted") else "firing"
        lab = a["labels"]
        alert.add_metric([lab["zone"], lab["hop"], lab["check"], lab["host"], lab.get("subject", ""),
                          a["severity"], state], 1.0)
    firing_total = GaugeMetricFamily("tgw_alerts_firing", "Alerts firing (muted and inhibited included)",
                                     labels=["zone"])
    firing_total.add_metric([zone], firing)
    return alert, firing_total


def _monitor_metrics(zone: str, view: dict[str, Any], extras: dict[str, Any]) -> tuple[Metric, ...]:
    """The monitor's own health: notices sent, cycles run, feed messages, inputs it could not read."""
    notes = CounterMetricFamily("tgw_monitor_notifications", "Alert notices, by kind and result",
                                labels=["zone", "kind", "result"])
    for key, n in sorted(view.get("notifications", {}).items()):
        kind, _, result = key.partition("/")
        notes.add_metric([zone, kind, result], n)
    cycles = CounterMetricFamily("tgw_monitor_cycles", "Check cycles run", labels=["zone"])
    cycles.add_metric([zone], extras.get("cycles", 0))
    errors = CounterMetricFamily("tgw_monitor_cycle_errors", "Check cycles that failed", labels=["zone"])
    errors.add_metric([zone], extras.get("cycle_errors", 0))
    last = GaugeMetricFamily("tgw_monitor_last_cycle_timestamp_seconds", "When the last cycle ran", labels=["zone"])
    if view.get("at"):
        last.add_metric([zone], _ts(view["at"]))
    feed = CounterMetricFamily("tgw_monitor_feed_messages", "Messages taken from the ZeroMQ feed",
                               labels=["zone", "topic"])
    for topic, n in sorted(extras.get("feed", {}).items()):
        feed.add_metric([zone, topic], n)
    unavailable = GaugeMetricFamily("tgw_monitor_input_unavailable", "1 for each input that could not be read",
                                    labels=["zone", "input"])
    for name in view.get("unavailable", {}):
        unavailable.add_metric([zone, name], 1.0)
    return notes, cycles, errors, last, feed, unavailable


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


def serve(bind: str, source: Callable[[], tuple[dict[str, Any], dict[str, Any]]]):
    """Serve /metrics on host:port; returns the server (call .shutdown() to stop)."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"monitor.metrics_bind {bind!r}: expected host:port")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(source))
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return server
