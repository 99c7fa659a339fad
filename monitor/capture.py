"""The file source: capture files (pcap, pcapng, gzip-compressed or not) → UDP datagrams.

Several files are one stream of time: their datagrams are merged by timestamp (stable for
equal timestamps: earlier files first, file order kept). A damaged file is read up to the
damage, one line saying where goes to `stats.errors`, and the other files carry on. A file
that cannot be opened at all raises `CaptureError` before anything is read. The path `-` is
standard input (`tcpdump -w - | lwm2m-monitor analyze -`), named `stdin` in documents and messages.
"""
from __future__ import annotations

import heapq
import sys
import zlib
from ipaddress import ip_address
from operator import attrgetter
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, cast

from parsers.errors import ParseError
from parsers.netlayers import Fragment, Skip, Udp, decode, transport
from parsers.pcapfile import Numbered, Packet, Reader, Secrets, UdpShard, split_ends, udp_ends

from .datagram import TS_NS_MAX, TS_NS_MIN, Datagram, Ends, datagram_of, flow_key
from .ip_reassembly import Reassembler
from .shard_key import ShardFilter, udp_shard

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"
STDIN_NAME = "stdin"


def capture_name(path: str) -> str:
    """How a capture path is named in documents (`file.path`) and messages."""
    return STDIN_NAME if path == STDIN else path


class CaptureError(Exception):
    """A capture file cannot be read at all (missing, unreadable, not a file)."""


class InputStopped(Exception):
    """Raised by `InputStop.request` while a read is waiting (a pipe with nothing to give)."""


class InputStop:
    """Ctrl-C or SIGTERM ending the input of an offline run: the capture ends there, at a chunk
    boundary, as if the file ended, so what was read still goes through the pipeline and its
    close. A stop during a read that waits (standard input) interrupts that read; otherwise the
    reader sees the request before its next chunk (within about a megabyte of packets).
    `request` is what the signal handler calls; it never raises in the middle of the pipeline."""

    def __init__(self) -> None:
        self.requested = False
        self.reading = False

    def request(self) -> None:
        self.requested = True
        if self.reading:
            raise InputStopped()


@dataclass(slots=True)
class CaptureStats:
    files: int = 0
    frames: int = 0
    bytes: int = 0                  # captured bytes of all frames
    non_ip: int = 0
    non_udp: int = 0
    ip_fragments: int = 0
    reassembled: int = 0
    truncated_frames: int = 0       # captured length shorter than the headers need
    malformed: dict[str, int] = field(default_factory=dict)   # reason -> count
    fragment_overlaps: int = 0
    fragment_evictions: int = 0
    fragment_timeouts: int = 0
    fragment_unfinished: int = 0    # datagrams still missing fragments when their file ended
    file_bytes: int = 0             # bytes read from disk (compressed size for gzip): progress
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False       # an InputStop ended the input before the captures did


class AddressText:
    """Raw address bytes → `ipaddress` canonical text, computed once per address (bounded);
    and the fast path's raw ends of a datagram → its `Ends`, shared by both directions of a
    flow (bounded: emptied when full, the tuples are then built again, equal)."""

    MAX = 65536
    MAX_ENDS = 1 << 17

    def __init__(self) -> None:
        self.cache: dict[bytes, str] = {}
        self.ends_cache: dict[bytes, Ends] = {}

    def ends(self, raw: bytes) -> Ends:
        """`Ends` of `pcapfile.udp_ends` bytes not in `ends_cache` (then kept there)."""
        cache = self.ends_cache
        if len(cache) >= self.MAX_ENDS:
            cache.clear()
        src_raw, sport, dst_raw, dport = split_ends(raw)
        back = cache.get(udp_ends(dst_raw, dport, src_raw, sport))
        if back is not None:                 # the other direction: the same tuples, swapped
            e: Ends = (back[1], back[0], back[2])
        else:
            src, dst = (self.text(src_raw), sport), (self.text(dst_raw), dport)
            e = (src, dst, flow_key(src, dst))
        cache[raw] = e
        return e

    def udp_ends(self, src: bytes, src_port: int, dst: bytes, dst_port: int) -> Ends:
        """`Ends` of a datagram decoded outside the fast path (the same shared tuples)."""
        raw = udp_ends(src, src_port, dst, dst_port)
        e = self.ends_cache.get(raw)
        return e if e is not None else self.ends(raw)

    def text(self, raw: bytes) -> str:
        s = self.cache.get(raw)
        if s is None:
            s = str(ip_address(raw))
            if len(self.cache) < self.MAX:
                self.cache[raw] = s
        return s


# Called with (path, secrets_type, data) for each pcapng Decryption Secrets Block.
SecretsSink = Callable[[str, int, bytes], None]
# Called with (src, src_port, dst, dst_port), addresses as raw bytes, for every UDP datagram
# before it is built: False drops it (a sharded worker keeps its own clients' traffic).
UdpFilter = Callable[[bytes, int, bytes, int], bool]


def read_files(paths: list[str], stats: CaptureStats, on_secrets: SecretsSink | None = None,
               shard: tuple[int, int] = (0, 1), stop: InputStop | None = None,
               stdin: BinaryIO | None = None) -> Iterator[Datagram]:
    """The UDP datagrams of all `paths`, merged in time order; with `shard` (index, workers),
    only those of the clients of that shard (`monitor.shard_key`); with `stop`, until it is
    requested (then `stats.interrupted`). The path `-` reads `stdin` (default: the process's
    standard input).

    Every file is opened now, so a missing one raises `CaptureError` before any output.
    """
    index, workers = shard
    fast = udp_shard(index, workers)
    # the reader's fast path drops other shards' datagrams itself; this filter takes the rest
    keep: UdpFilter | None = ShardFilter(index, workers).keep if workers > 1 else None
    names = AddressText()
    opened: list[tuple[BinaryIO, bool | None]] = []
    try:
        for p in paths:
            opened.append(_open(p, stdin))
    except CaptureError:
        for f, _ in opened:
            f.close()
        raise
    iters = [_datagrams(capture_name(p), f, gz, stats, on_secrets, names, fast, keep, stop)
             for p, (f, gz) in zip(paths, opened)]
    if len(iters) == 1:
        return iters[0]
    return heapq.merge(*iters, key=attrgetter("ts_ns"))


class _Stdin:
    """Standard input as a capture file. Reads return what has arrived (a pipe from a running
    tcpdump gives packets as they come, not once a whole chunk is full); bytes given back with
    `unread` (those the gzip check looked at) come first, alone, without waiting for more.
    Closing it leaves the process's standard input open."""

    def __init__(self, stream) -> None:
        self._stream, self._head = stream, b""

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read1(n if n > 0 else CHUNK)

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def close(self) -> None:
        pass


def _open(path: str, stdin: BinaryIO | None = None) -> tuple[BinaryIO, bool | None]:
    """The opened file and whether it is gzip-compressed (by content, not by name; None for
    standard input, whose first bytes are read with the rest, so that a stop can end the wait)."""
    if path == STDIN:
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise CaptureError(f"{STDIN_NAME}: cannot read: there is no standard input")
        return cast(BinaryIO, _Stdin(stream)), None
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaptureError(f"{path}: cannot open: {e.strerror or e}") from None
    try:
        gz = f.read(2) == _GZIP_MAGIC
        f.seek(0)
    except OSError as e:
        f.close()
        raise CaptureError(f"{path}: cannot read: {e.strerror or e}") from None
    return f, gz


class _CompressedDamage(Exception):
    pass


class _Stopped(Exception):
    """This file's input ends here: its InputStop was requested."""


def _read(f: BinaryIO, stop: InputStop | None) -> bytes:
    """One chunk of the file (b"" at its end); raises `_Stopped` once `stop` is requested."""
    if stop is None:
        return f.read(CHUNK)
    if stop.requested:
        raise _Stopped()
    stop.reading = True
    try:
        return f.read(CHUNK)
    except InputStopped:
        raise _Stopped() from None
    finally:
        stop.reading = False


def _chunks(f: BinaryIO, gz: bool | None, stats: CaptureStats, stop: InputStop | None = None) -> Iterator[bytes]:
    """The file's bytes in large chunks, decompressed as they come (`gz` None: look at the
    first bytes to know).

    Decompressing ourselves (not GzipFile) hands over every byte before a damaged or cut
    gzip stream, and bounds each output chunk (a small bomb cannot fill memory at once).
    """
    if gz is None:
        first = b""
        while len(first) < 2 and (more := _read(f, stop)):
            first += more
        gz = first[:2] == _GZIP_MAGIC
        cast(_Stdin, f).unread(first)
    if not gz:
        while chunk := _read(f, stop):
            stats.file_bytes += len(chunk)
            yield chunk
        return
    d = zlib.decompressobj(31)
    fed = False                        # has the current gzip member received bytes?
    while raw := _read(f, stop):
        stats.file_bytes += len(raw)
        while raw:
            fed = True
            saved = d.copy()
            try:
                out = d.decompress(raw, 4 * CHUNK)
            except zlib.error as e:
                yield from _salvage(saved, raw)
                raise _CompressedDamage(f"corrupt compressed data ({e})") from None
            if out:
                yield out
            if d.eof:                  # a member ended; another may follow (concatenated gzip)
                raw, d, fed = d.unused_data, zlib.decompressobj(31), False
            else:
                raw = d.unconsumed_tail
    if fed:
        raise _CompressedDamage("compressed data ends early")


def _salvage(d, raw: bytes) -> Iterator[bytes]:
    """What `d` decompresses from `raw` before the corrupt spot, in small steps."""
    for i in range(0, len(raw), 256):
        try:
            out = d.decompress(raw[i:i + 256])
        except zlib.error:
            return
        if out:
            yield out
        if d.eof:
            return


def _datagrams(path: str, f: BinaryIO, gz: bool | None, stats: CaptureStats,
               on_secrets: SecretsSink | None, names: AddressText, fast: UdpShard,
               keep: UdpFilter | None = None, stop: InputStop | None = None) -> Iterator[Datagram]:
    stats.files += 1
    reader = Reader()
    reasm = Reassembler()
    frame = frames = nbytes = 0
    chunks = _chunks(f, gz, stats, stop)
    known_ends = names.ends_cache.get
    new_ends = names.ends
    try:
        while True:
            try:
                chunk = next(chunks, b"")
                if chunk:
                    records = reader.feed_udp(chunk, fast)
                else:
                    reader.close()              # raises on a truncated end
                    records = []
            except _Stopped:                    # a record cut by the stop is no damage
                stats.interrupted = True
                return
            except ParseError as e:
                stats.errors.append(_damage(path, str(e), frame))
                return
            except _CompressedDamage as e:
                stats.errors.append(_damage(
                    path, f"{e} at byte {reader.offset} of the uncompressed capture", frame))
                return
            except OSError as e:
                stats.errors.append(_damage(
                    path, f"read error ({e.strerror or e}) at byte {reader.offset}", frame))
                return
            for rec in records:
                if type(rec) is tuple:          # the reader's fast path: a plain UDP datagram
                    frame += 1
                    frames += 1
                    ts, raw, payload = rec
                    ends = known_ends(raw)
                    yield datagram_of(ts, ends if ends is not None else new_ends(raw), payload, frame, path)
                    continue
                if rec is None:                 # ... of another shard's client
                    frame += 1
                    frames += 1
                    continue
                if type(rec) is not Packet:
                    if type(rec) is Secrets and on_secrets is not None:
                        on_secrets(path, rec.secrets_type, rec.data)
                    elif type(rec) is Numbered:
                        frame += 1      # Wireshark numbers it: keep our numbers equal
                    continue
                ts, linktype, origlen, data, _ = rec
                frame += 1
                frames += 1
                nbytes += len(data)
                if not TS_NS_MIN <= ts < TS_NS_MAX:
                    _malformed(stats, "timestamp out of range (before 1970 or after 9998)")
                    continue
                r = decode(linktype, data, origlen)
                if type(r) is Udp:
                    src, sport, dst, dport, payload = r
                    if keep is not None and not keep(src, sport, dst, dport):
                        continue
                    yield datagram_of(ts, names.udp_ends(src, sport, dst, dport), payload, frame, path)
                elif type(r) is Fragment:
                    d = _fragment(r, ts, frame, path, reasm, stats, names, keep)
                    if d is not None:
                        yield d
                else:
                    _count_skip(cast(Skip, r), stats)
            # Per batch, not per packet: counters lag by at most one chunk.
            # (the fast path's bytes come per chunk: counted whole if a consumer stops inside)
            stats.frames += frames
            stats.bytes += nbytes + reader.fast_bytes
            frames = nbytes = reader.fast_bytes = 0
            if not chunk:
                return
    finally:
        stats.frames += frames          # a consumer may stop mid-batch
        stats.bytes += nbytes + reader.fast_bytes
        f.close()
        rs = reasm.stats
        stats.fragment_overlaps += rs.overlaps
        stats.fragment_evictions += rs.evictions
        stats.fragment_timeouts += rs.timeouts
        stats.fragment_unfinished += len(reasm)
        for reason, count in (("IP fragment beyond 64 KiB", rs.oversized),
                              ("IP datagram in too many fragments", rs.too_many_parts)):
            if count:
                stats.malformed[reason] = stats.malformed.get(reason, 0) + count


def _fragment(frag: Fragment, ts_ns: int, frame: int, path: str, reasm: Reassembler,
              stats: CaptureStats, names: AddressText, keep: UdpFilter | None = None) -> Datagram | None:
    stats.ip_fragments += 1
    done = reasm.add(frag, ts_ns)
    if done is None:
        return None
    stats.reassembled += 1
    first, payload = done
    r = transport(first, payload)
    if type(r) is Udp:
        if keep is not None and not keep(r.src, r.src_port, r.dst, r.dst_port):
            return None
        return datagram_of(ts_ns, names.udp_ends(r.src, r.src_port, r.dst, r.dst_port), r.payload, frame, path)
    _count_skip(cast(Skip, r), stats)
    return None


def _malformed(stats: CaptureStats, reason: str) -> None:
    stats.malformed[reason] = stats.malformed.get(reason, 0) + 1


def _count_skip(r: Skip, stats: CaptureStats) -> None:
    kind = r.kind
    if kind == "non_udp":
        stats.non_udp += 1
    elif kind == "non_ip":
        stats.non_ip += 1
    elif kind == "truncated":
        stats.truncated_frames += 1
    else:
        stats.malformed[r.reason] = stats.malformed.get(r.reason, 0) + 1


def _damage(path: str, message: str, frames: int) -> str:
    """One line: which file, what and where, and how much was read before."""
    if frames == 0:
        return f"{path}: {message}; no frames read"
    return f"{path}: {message} (frame {frames + 1}); {frames} frames read before"
