"""IPv4 and IPv6 fragment reassembly (RFC 791, RFC 8200 §4.5), in packet time.

The table is bounded: when full, the oldest pending datagram is evicted; a datagram whose
first fragment is older than `timeout_ns` (packet time) is dropped. Overlapping fragments
with different bytes are counted and the first copy wins (what most stacks do), so an
overlap attack cannot rewrite what we decode.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from parsers.netlayers import Fragment

MAX_IP_PAYLOAD = 65535        # an IP payload cannot reassemble beyond this


@dataclass(slots=True)
class ReassemblyStats:
    reassembled: int = 0
    overlaps: int = 0         # fragments overlapping earlier ones with different bytes
    duplicates: int = 0       # fragments repeating bytes already held
    evictions: int = 0        # pending datagrams pushed out by a full table
    timeouts: int = 0         # pending datagrams dropped after timeout_ns
    oversized: int = 0        # fragments reaching beyond 64 KiB


@dataclass(slots=True)
class _Pending:
    first_ts: int
    first: Fragment | None = None                 # the offset-0 fragment, once seen
    total: int = -1                               # payload length, once the last is seen
    parts: dict[int, bytes] = field(default_factory=dict)   # offset -> bytes


class Reassembler:
    """`add(fragment, ts_ns)` returns (first fragment, payload) when a datagram completes."""

    def __init__(self, max_pending: int = 4096, timeout_ns: int = 30_000_000_000) -> None:
        self.max_pending = max_pending
        self.timeout_ns = timeout_ns
        self.stats = ReassemblyStats()
        self._pending: OrderedDict[tuple, _Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, frag: Fragment, ts_ns: int) -> tuple[Fragment, bytes] | None:
        self._expire(ts_ns)
        end = frag.offset + len(frag.data)
        if end > MAX_IP_PAYLOAD:
            self.stats.oversized += 1
            return None
        p = self._pending.get(frag.key)
        if p is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.stats.evictions += 1
            p = self._pending[frag.key] = _Pending(ts_ns)
        if frag.offset == 0 and p.first is None:
            p.first = frag
        if not frag.more and p.total < 0:
            p.total = end
        self._store(p, frag.offset, frag.data)
        if p.first is None or p.total < 0:
            return None
        payload = _contiguous(p.parts, p.total)
        if payload is None:
            return None
        del self._pending[frag.key]
        self.stats.reassembled += 1
        return p.first, payload

    def _store(self, p: _Pending, offset: int, data: bytes) -> None:
        end = offset + len(data)
        for o, d in p.parts.items():
            oe = o + len(d)
            if o < end and offset < oe:          # byte ranges intersect
                lo, hi = max(o, offset), min(oe, end)
                if d[lo - o:hi - o] != data[lo - offset:hi - offset]:
                    self.stats.overlaps += 1
                else:
                    self.stats.duplicates += 1
                # First copy wins: keep only the parts of `data` outside held ranges.
                if offset < o:
                    self._store(p, offset, data[:o - offset])
                if end > oe:
                    self._store(p, oe, data[oe - offset:])
                return
        p.parts[offset] = data

    def _expire(self, now: int) -> None:
        pending = self._pending
        limit = now - self.timeout_ns
        while pending:
            key, p = next(iter(pending.items()))
            if p.first_ts >= limit:
                return
            del pending[key]
            self.stats.timeouts += 1


def _contiguous(parts: dict[int, bytes], total: int) -> bytes | None:
    """The parts joined if they cover 0..total without a hole, else None."""
    pos = 0
    out = []
    for o in sorted(parts):
        if o > pos:
            return None
        d = parts[o]
        if o + len(d) > pos:
            out.append(d[pos - o:])
            pos = o + len(d)
    if pos < total:
        return None
    return b"".join(out)[:total]
