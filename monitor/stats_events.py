"""`event.dataset: monitor.stats` documents and the matching stderr line of the live sensor.

A stats document is a metric about the sensor itself (`event.kind: metric`), so its
`@timestamp` is the wall clock of the sensor, not a packet time. Counters are cumulative since
the start (a consumer takes differences); libpcap's counters are 32-bit and wrap.

Fields (all under `monitor.`):
  interfaces[]        name, frames (after the BPF filter), bytes, datagrams, kernel_received,
                      kernel_dropped, interface_dropped (libpcap `pcap_stats`), non_ip, non_udp,
                      truncated, malformed, ip_fragments, reassembled, fragment_evictions,
                      fragment_timeouts, queue_waits (capture thread waited for the pipeline),
                      ring_frames
  packets.*           the same counters summed over interfaces (received, dropped_kernel,
                      dropped_interface, frames, datagrams)
  decode_errors       pipeline decode errors by name, and `total`
  events, alerts      documents and alerts the pipeline produced
  export_backlog      documents accepted by sinks and not yet delivered
  queue_batches       batches waiting between capture threads and the pipeline
  state.*             live table sizes: flows, registrations, dtls_sessions, oscore_contexts,
                      and eviction counters (flows_evicted, registrations_evicted, ...)
  uptime_seconds, final (true on the document written at shutdown)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .ecs import event_id, timestamp


@dataclass(slots=True)
class InterfaceStats:
    name: str
    frames: int = 0
    bytes: int = 0
    datagrams: int = 0
    kernel_received: int = 0
    kernel_dropped: int = 0
    interface_dropped: int = 0
    non_ip: int = 0
    non_udp: int = 0
    truncated: int = 0
    malformed: int = 0
    ip_fragments: int = 0
    reassembled: int = 0
    fragment_evictions: int = 0
    fragment_timeouts: int = 0
    queue_waits: int = 0
    ring_frames: int = 0


@dataclass
class SensorStats:
    interfaces: list[InterfaceStats]
    pipeline: object                  # monitor.pipeline.Pipeline
    documents: int = 0
    export_backlog: int = 0
    queue_batches: int = 0
    started_ns: int = 0
    extra: dict = field(default_factory=dict)


def state_sizes(pipeline) -> dict[str, int]:
    """Sizes of the pipeline's bounded tables and their eviction counters."""
    return pipeline.state_sizes()


def stats_document(s: SensorStats, *, ts_ns: int, hostname: str, seq: int, final: bool) -> dict:
    p = s.pipeline.stats
    decode_errors = dict(sorted(p.decode_errors.items()))
    decode_errors["total"] = sum(p.decode_errors.values())
    ifaces = [asdict(i) for i in s.interfaces]
    names = [i.name for i in s.interfaces]
    return {
        "@timestamp": timestamp(ts_ns),
        "event": {"kind": "metric", "dataset": "monitor.stats", "action": "sensor-stats",
                  "id": event_id("monitor.stats", hostname, s.started_ns, seq)},
        "observer": {"hostname": hostname, "type": "sensor",
                     "ingress": {"interface": {"name": names[0] if len(names) == 1 else names}}},
        "monitor": {
            "interfaces": ifaces,
            "packets": {
                "received": sum(i.kernel_received for i in s.interfaces),
                "dropped_kernel": sum(i.kernel_dropped for i in s.interfaces),
                "dropped_interface": sum(i.interface_dropped for i in s.interfaces),
                "frames": sum(i.frames for i in s.interfaces),
                "datagrams": sum(i.datagrams for i in s.interfaces),
            },
            "decode_errors": decode_errors,
            "events": p.documents - p.alerts,
            "alerts": p.alerts,
            "export_backlog": s.export_backlog,
            "queue_batches": s.queue_batches,
            "state": state_sizes(s.pipeline),
            "uptime_seconds": round((ts_ns - s.started_ns) / 1e9, 3) if s.started_ns else 0.0,
            "final": final,
        },
    }


def stats_line(s: SensorStats, *, final: bool) -> str:
    """One log line: what an operator checks first (drops) before the rest."""
    p = s.pipeline.stats
    frames = sum(i.frames for i in s.interfaces)
    kdrop = sum(i.kernel_dropped for i in s.interfaces)
    ifdrop = sum(i.interface_dropped for i in s.interfaces)
    errors = sum(p.decode_errors.values())
    head = "final stats" if final else "stats"
    return (f"lwm2m-monitor: {head}: frames={frames} kernel_dropped={kdrop} interface_dropped={ifdrop} "
            f"datagrams={p.datagrams} decode_errors={errors} events={p.documents - p.alerts} "
            f"alerts={p.alerts} export_backlog={s.export_backlog} flows={len(s.pipeline.flows)}")
