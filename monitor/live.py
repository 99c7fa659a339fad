"""The live source: interfaces sniffed through libpcap → the same pipeline as offline → sinks.

Only the source differs from `analyze`: frames are decoded by `parsers.netlayers` and IP
fragments reassembled by `monitor.ip_reassembly` exactly as `monitor.capture` does for files,
and every `Datagram` carries `source=<interface>, live=True`.

Threads: one capture thread per interface (libpcap through pcapy-ng's `next_batch`, which
copies up to 1024 frames per call with the GIL released) decodes its frames into datagrams
and puts them, a batch at a time, on one bounded queue; the main thread feeds one pipeline
from that queue and writes documents to the sinks. Flows can cross interfaces (a tap per
direction), so there is one pipeline for all. When the pipeline falls behind, the queue
fills, the capture thread waits, and the kernel ring overflows: loss is then counted by the
kernel (`kernel_dropped`), never silent.

Why pcapy-ng and `next_batch`: measured on loopback with 200k CoAP frames at top speed (2-core
VM; bench/bench_live.py --methods): pcapy-ng next_batch 374k frames per CPU-second (frame to
Datagram), pcapy-ng dispatch() 342k, pcapy-ng next() 308k, scapy L2ListenSocket 164k and it
lost 90% of the frames with no drop counter.

Signals (main thread): SIGINT/SIGTERM stop capturing, drain what the kernel already holds,
flush the pipeline (`close()`: unanswered requests become `event.outcome: unknown`) and close
the sinks. SIGHUP rebuilds keys, objects and rules (`reload`) and swaps them into the running
pipeline; keys harvested from cleartext bootstrap so far are kept.

Configuration file (`lwm2m-monitor live --sensor-config FILE`): YAML, one mapping whose keys
are the long options with `_` or `-`; command-line options win over the file. Unknown keys
are an error. Example:

    interface: [eth1, eth2]        # or a single name
    ports: [5683, 5684, 5685, 5783]
    bpf: null                      # null: built from ports (plus IP fragments)
    promisc: true
    snaplen: 262144
    buffer_size: 64                # MiB of kernel ring per interface
    stats_interval: 60             # seconds; 0 disables
    keys: /etc/lwm2m-monitor/keys.yaml
    rules: [/etc/lwm2m-monitor/rules.d]
    config: /etc/lwm2m-monitor/rules.yaml
    objects: null
    no_rules: false
    out: /var/log/lwm2m-monitor/events.ndjson
    rotate_mb: 100
    es: null                       # Elasticsearch URL (credentials from the environment)
    ring: /var/lib/lwm2m-monitor/ring
    ring_size: 100                 # MiB per pcap file
    ring_files: 20
    duration: null                 # seconds, tests only
    count: null                    # datagrams, tests only
"""
from __future__ import annotations

import array
import os
import queue
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from parsers.netlayers import Fragment, Udp, decode, transport

from .capture import AddressText
from .datagram import Datagram, datagram_of
from .ip_reassembly import Reassembler
from .pcap_ring import Ring
from .stats_events import InterfaceStats, SensorStats, stats_document, stats_line

DEFAULT_PORTS = (5683, 5684, 5685, 5783)
DEFAULT_SNAPLEN = 262144
DEFAULT_BUFFER_MB = 32
BATCH_FRAMES = 1024             # frames per libpcap call
POLL_SECONDS = 0.1              # how often an idle capture thread looks at its stop flag
BLOCK_TIMEOUT_MS = 50           # libpcap/TPACKET_V3 block timeout: latency of a quiet link
QUEUE_BATCHES = 256             # batches waiting for the pipeline before capture threads wait
KERNEL_STATS_SECONDS = 1.0
WRITE_EVERY_DOCS = 512
WRITE_EVERY_SECONDS = 0.5


class LiveError(Exception):
    """An interface cannot be opened or its filter is invalid (message names which)."""


def default_bpf(ports=DEFAULT_PORTS) -> str:
    """The LwM2M ports plus every IP fragment (a later fragment carries no UDP header)."""
    udp = " or ".join(f"udp port {int(p)}" for p in ports)
    return f"{udp} or (ip[6:2] & 0x1fff != 0) or ip6 proto 44"


@dataclass
class CaptureOptions:
    interfaces: list[str]
    bpf: str | None = None
    ports: tuple[int, ...] = DEFAULT_PORTS
    promisc: bool = True
    snaplen: int = DEFAULT_SNAPLEN
    buffer_mb: int = DEFAULT_BUFFER_MB
    ring_dir: str | None = None
    ring_size_mb: int = 100
    ring_files: int = 10

    @property
    def filter(self) -> str:
        return self.bpf if self.bpf else default_bpf(self.ports)


@dataclass
class RunLimits:
    duration: float | None = None     # seconds of wall time
    count: int | None = None          # datagrams fed to the pipeline
    stats_interval: float = 60.0      # 0: no periodic stats


class FrameDecoder:
    """Frames of one interface → datagrams, with the same counters as the file source."""

    def __init__(self, interface: str, linktype: int, stats: InterfaceStats):
        self.interface = interface
        self.linktype = linktype
        self.stats = stats
        self.reasm = Reassembler()
        self.frame = 0
        self._names = AddressText()              # the same bounded cache as the file source

    def datagram(self, ts_ns: int, data: bytes, origlen: int) -> Datagram | None:
        self.frame += 1
        r = decode(self.linktype, data, origlen)
        if r.__class__ is Udp:
            src, sport, dst, dport, payload = r
            return datagram_of(ts_ns, self._names.udp_ends(src, sport, dst, dport), payload, self.frame,
                               self.interface, True)
        st = self.stats
        if r.__class__ is Fragment:
            st.ip_fragments += 1
            done = self.reasm.add(r, ts_ns)
            if done is None:
                return None
            st.reassembled += 1
            first, payload = done
            r = transport(first, payload)
            if r.__class__ is Udp:
                return datagram_of(ts_ns, self._names.udp_ends(r.src, r.src_port, r.dst, r.dst_port),
                                   r.payload, self.frame, self.interface, True)
        kind = r.kind
        if kind == "non_udp":
            st.non_udp += 1
        elif kind == "non_ip":
            st.non_ip += 1
        elif kind == "truncated":
            st.truncated += 1
        else:
            st.malformed += 1
        return None

    def sync_reassembly_stats(self) -> None:
        rs = self.reasm.stats
        self.stats.fragment_evictions = rs.evictions
        self.stats.fragment_timeouts = rs.timeouts


class InterfaceCapture:
    """One interface: a libpcap handle and the thread that reads it."""

    def __init__(self, name: str, opts: CaptureOptions, out: queue.Queue):
        self.name = name
        self.out = out
        self.stats = InterfaceStats(name)
        self.handle = _open_handle(name, opts)
        self.linktype = self.handle.datalink()
        self.snaplen = opts.snaplen
        self.decoder = FrameDecoder(name, self.linktype, self.stats)
        self.ring: Ring | None = None
        if opts.ring_dir:
            self.ring = Ring(opts.ring_dir, _safe(name), self.linktype, opts.snaplen,
                             opts.ring_size_mb * 1024 * 1024, opts.ring_files)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        fd = self.handle.getfd()
        next_stats = time.monotonic() + KERNEL_STATS_SECONDS
        try:
            while not self._stop.is_set():
                ready = select.select([fd], [], [], POLL_SECONDS)[0]
                if ready:
                    self._read_batch()
                now = time.monotonic()
                if now >= next_stats:
                    self._kernel_stats()
                    next_stats = now + KERNEL_STATS_SECONDS
            # Stopping: let the kernel retire its current ring block (TPACKET_V3 hands over
            # whole blocks, after BLOCK_TIMEOUT_MS), then hand over all it holds.
            time.sleep(3 * BLOCK_TIMEOUT_MS / 1000)
            while self._read_batch():
                pass
        except Exception as exc:        # pcapy.PcapError (interface gone), OSError
            self.error = f"{self.name}: capture stopped: {exc}"
        finally:
            self._kernel_stats()
            self.decoder.sync_reassembly_stats()
            if self.ring is not None:
                self.ring.close()
                self.stats.ring_frames = self.ring.stats.frames
            try:
                self.handle.close()
            except Exception:
                pass

    def _read_batch(self) -> int:
        buf, meta = self.handle.next_batch(BATCH_FRAMES)
        if not meta:
            return 0
        m = array.array("I", meta)
        n = len(m) // 4
        st = self.stats
        st.frames += n
        datagram = self.decoder.datagram
        ring = self.ring
        snaplen = self.snaplen
        batch: list[Datagram] = []
        for i in range(0, 4 * n, 4):
            off, caplen = m[i + 2], m[i + 3]
            data = buf[off:off + caplen]
            ts_ns = m[i] * 1_000_000_000 + m[i + 1] * 1000
            # next_batch gives no wire length: a frame as long as the snap length may be cut.
            origlen = caplen + 1 if caplen >= snaplen else caplen
            st.bytes += caplen
            if ring is not None:
                ring.write(ts_ns, data, origlen)
            d = datagram(ts_ns, data, origlen)
            if d is not None:
                batch.append(d)
        if ring is not None:
            ring.flush()
            st.ring_frames = ring.stats.frames
        if batch:
            st.datagrams += len(batch)
            self._put(batch)
        return n

    def _put(self, batch: list[Datagram]) -> None:
        # Wait rather than drop: the kernel ring then overflows and libpcap counts it.
        while True:
            try:
                self.out.put(batch, timeout=POLL_SECONDS)
                return
            except queue.Full:
                self.stats.queue_waits += 1

    def _kernel_stats(self) -> None:
        try:
            recv, drop, ifdrop = self.handle.stats()
        except Exception:
            return
        st = self.stats
        st.kernel_received, st.kernel_dropped, st.interface_dropped = recv, drop, ifdrop


def _open_handle(name: str, opts: CaptureOptions):
    try:
        import pcapy
    except ImportError:
        raise LiveError("live capture needs pcapy-ng (pip install pcapy-ng; apt install libpcap-dev)") from None
    try:
        h = pcapy.create(name)
        h.set_snaplen(opts.snaplen)
        h.set_promisc(1 if opts.promisc else 0)
        h.set_timeout(BLOCK_TIMEOUT_MS)
        h.set_buffer_size(opts.buffer_mb * 1024 * 1024)
        h.activate()
    except pcapy.PcapError as exc:
        raise LiveError(f"{name}: cannot capture: {exc}") from None
    try:
        h.setfilter(opts.filter)
    except pcapy.PcapError as exc:
        h.close()
        raise LiveError(f"{name}: invalid capture filter {opts.filter!r}: {exc}") from None
    h.setnonblock(1)        # the thread waits in select(), so a stop request is seen at once
    return h


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --- the run ------------------------------------------------------------------------------

@dataclass
class LiveResult:
    datagrams: int = 0
    documents: int = 0
    stats_documents: int = 0
    reloads: int = 0
    reload_errors: list[str] = field(default_factory=list)
    capture_errors: list[str] = field(default_factory=list)
    stopped_by: str = ""             # "signal", "duration", "count", "capture-error"
    interfaces: list[InterfaceStats] = field(default_factory=list)


class LiveSensor:
    """Captures → one pipeline → sinks, until a signal, the duration or the count."""

    def __init__(self, opts: CaptureOptions, limits: RunLimits, pipeline, sinks: list,
                 reload: Callable[[], object] | None = None, log: TextIO | None = None,
                 hostname: str | None = None):
        self.opts = opts
        self.limits = limits
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.reload_config = reload
        self.log = log if log is not None else sys.stderr
        self.hostname = hostname or os.uname().nodename
        self.queue: queue.Queue = queue.Queue(QUEUE_BATCHES)
        self.result = LiveResult()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._seq = 0
        self._started_ns = 0
        # Open every interface before capturing anything: a bad name fails the whole start.
        self.captures: list[InterfaceCapture] = []
        try:
            for name in opts.interfaces:
                self.captures.append(InterfaceCapture(name, opts, self.queue))
        except Exception:
            for c in self.captures:
                c.handle.close()
            raise

    # signal handlers only set flags; the main loop acts on them
    def request_stop(self, signum=None, frame=None) -> None:
        self._stop_reason = self._stop_reason or "signal"

    def request_reload(self, signum=None, frame=None) -> None:
        self._reload_requested = True

    def run(self) -> LiveResult:
        previous = self._install_signals()
        try:
            self._loop()
        finally:
            _restore_signals(previous)
        return self.result

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig, handler in ((signal.SIGINT, self.request_stop), (signal.SIGTERM, self.request_stop),
                             (signal.SIGHUP, self.request_reload)):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def _loop(self) -> None:
        res = self.result
        pipeline, feed = self.pipeline, self.pipeline.feed
        limits = self.limits
        started = time.monotonic()
        self._started_ns = time.time_ns()
        deadline = started + limits.duration if limits.duration else None
        count = limits.count
        interval = limits.stats_interval
        next_stats = started + interval if interval > 0 else None
        pending: list[dict] = []
        last_write = started
        for c in self.captures:
            c.start()
        print(f"lwm2m-monitor: live on {', '.join(self.opts.interfaces)} filter {self.opts.filter!r}",
              file=self.log, flush=True)
        stopping = False
        while True:
            try:
                batch = self.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                batch = None
                # a quiet link: let packet time advance so unanswered requests still expire
                pending.extend(pipeline.tick(time.time_ns()))
            if batch and self._stop_reason == "count":
                batch = None             # the count is reached: later datagrams are not ours
            if batch:
                if count is not None and res.datagrams + len(batch) >= count:
                    batch = batch[:count - res.datagrams]
                    self._stop_reason = self._stop_reason or "count"
                for d in batch:
                    docs = feed(d)
                    if docs:
                        pending.extend(docs)
                res.datagrams += len(batch)
            now = time.monotonic()
            if pending and (len(pending) >= WRITE_EVERY_DOCS or now - last_write >= WRITE_EVERY_SECONDS):
                self._write(pending)
                pending = []
                last_write = now
            if self._reload_requested:
                self._reload_requested = False
                self._write(pending)
                pending = []
                self._reload()
            if next_stats is not None and now >= next_stats:
                self._write(pending)
                pending = []
                self._emit_stats(final=False)
                next_stats = now + interval
            if deadline is not None and now >= deadline:
                self._stop_reason = self._stop_reason or "duration"
            if not stopping and all(not c.alive for c in self.captures):
                self._stop_reason = self._stop_reason or "capture-error"
            if self._stop_reason is not None and not stopping:
                stopping = True
                for c in self.captures:
                    c.stop()
            if stopping and all(not c.alive for c in self.captures) and self.queue.empty():
                break
        pending.extend(pipeline.close())
        self._write(pending)
        res.stopped_by = self._stop_reason or ""
        for c in self.captures:
            if c.error:
                res.capture_errors.append(c.error)
                print(f"lwm2m-monitor: {c.error}", file=self.log, flush=True)
        self._emit_stats(final=True)
        res.interfaces = [c.stats for c in self.captures]

    def _write(self, docs: list[dict]) -> None:
        if not docs:
            return
        self.result.documents += len(docs)
        for sink in self.sinks:
            sink.write(docs)

    def _reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            config = self.reload_config()
        except Exception as exc:     # the config loaders' own errors: keep running with the old one
            msg = f"reload failed, keeping the previous keys and rules: {exc}"
            self.result.reload_errors.append(msg)
            print(f"lwm2m-monitor: {msg}", file=self.log, flush=True)
            return
        self._write(swap_config(self.pipeline, config))
        self.result.reloads += 1
        print("lwm2m-monitor: reloaded keys, objects and rules", file=self.log, flush=True)

    def sensor_stats(self) -> SensorStats:
        for c in self.captures:
            c.decoder.sync_reassembly_stats()
        return SensorStats(
            interfaces=[c.stats for c in self.captures], pipeline=self.pipeline,
            documents=self.result.documents, export_backlog=export_backlog(self.sinks),
            queue_batches=self.queue.qsize(), started_ns=self._started_ns)

    def _emit_stats(self, final: bool) -> None:
        s = self.sensor_stats()
        self._seq += 1
        now_ns = time.time_ns()
        print(stats_line(s, final=final), file=self.log, flush=True)
        doc = stats_document(s, ts_ns=now_ns, hostname=self.hostname, seq=self._seq, final=final)
        self.result.stats_documents += 1
        self._write([doc])


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def export_backlog(sinks) -> int:
    """Documents accepted by sinks but not yet delivered (Elasticsearch batch and spool)."""
    total = 0
    for s in sinks:
        backlog = getattr(s, "backlog", None)
        if backlog is None:
            spool = getattr(s, "spool", None)
            backlog = getattr(spool, "pending", 0) if spool is not None else 0
        total += int(backlog)
    return total


def swap_config(pipeline, config) -> list[dict]:
    """Put a freshly built PipelineConfig into a running pipeline (SIGHUP).

    Keys harvested from cleartext bootstrap carry over (a configured key wins). The old rule
    engine is closed first so that its pending aggregations are emitted, not lost. Returns
    those documents. DTLS sessions already keyed keep their keys; new handshakes use the new
    file.
    """
    return pipeline.reconfigure(config)
