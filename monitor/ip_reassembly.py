"""IPv4 and IPv6 fragment reassembly (RFC 791, RFC 8200 §4.5), in packet time.

The table is bounded: when full, the oldest pending datagram is evicted; a datagram whose
first fragment is older than `timeout_ns` (packet time) is dropped. Overlapping fragments
with different bytes are counted and the first copy wins (what most stacks do), so an
overlap attack cannot rewrite what we decode.
"""
from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass, field

from parsers.netlayers import Fragment

MAX_IP_PAYLOAD = 65535        # an IP payload cannot reassemble beyond this
MAX_PARTS = 8192              # pieces held per datagram: 64 KiB in 8-byte fragments


@dataclass(slots=True)
class ReassemblyStats:
    reassembled: int = 0
    overlaps: int = 0         # fragments overlapping earlier ones with different bytes
    duplicates: int = 0       # fragments repeating bytes already held
    evictions: int = 0        # pending datagrams pushed out by a full table
    timeouts: int = 0         # pending datagrams dropped after timeout_ns
    oversized: int = 0        # fragments reaching beyond 64 KiB
    too_many_parts: int = 0   # datagrams dropped for holding more than MAX_PARTS pieces


@dataclass(slots=True)
class _Pending:
    first_ts: int
    first: Fragment | None = None                 # the offset-0 fragment, once seen
    total: int = -1                               # payload length, once the last is seen
    starts: list[int] = field(default_factory=list)         # sorted offsets of `parts`
    parts: dict[int, bytes] = field(default_factory=dict)   # offset -> bytes, disjoint
    held: int = 0                                 # bytes held in parts


class Reassembler:
    """`add(fragment, ts_ns)` returns (first fragment, payload) when a datagram completes."""

    def __init__(self, max_pending: int = 4096, timeout_ns: int = 30_000_000_000,
                 max_bytes: int = 64 << 20, max_parts: int = MAX_PARTS) -> None:
        self.max_pending = max_pending
        self.timeout_ns = timeout_ns
        self.max_bytes = max_bytes             # bytes held over all pending datagrams
        self.max_parts = max_parts
        self._held = 0
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
                self._drop_oldest()
                self.stats.evictions += 1
            p = self._pending[frag.key] = _Pending(ts_ns)
        if frag.offset == 0 and p.first is None:
            p.first = frag
        if not frag.more and p.total < 0:
            p.total = end
        if not self._store(p, frag.offset, frag.data):
            self._drop(frag.key)                     # a datagram cut to crumbs: give it up
            self.stats.too_many_parts += 1
            return None
        while self._held > self.max_bytes and len(self._pending) > 1:
            self._drop_oldest()
            self.stats.evictions += 1
        if frag.key not in self._pending:            # evicted itself: it was the oldest
            return None
        if p.first is None or p.total < 0:
            return None
        if p.held < p.total:                     # disjoint parts: a cheap necessary test
            return None
        payload = _contiguous(p.starts, p.parts, p.total)
        if payload is None:
            return None
        self._drop(frag.key)
        self.stats.reassembled += 1
        return p.first, payload

    def _store(self, p: _Pending, offset: int, data: bytes) -> bool:
        """Keep the parts of `data` no earlier fragment holds; False if too many parts.

        Held parts are disjoint and their offsets sorted, so only the neighbours found by
        bisection are compared: O(log n + overlaps) per fragment, not O(n).
        """
        starts, parts = p.starts, p.parts
        end = offset + len(data)
        i = bisect_right(starts, offset) - 1
        if i < 0 or starts[i] + len(parts[starts[i]]) <= offset:
            i += 1                                   # first held part that could intersect
        pos = offset                                 # next byte of `data` not yet placed
        new = []
        while i < len(starts) and starts[i] < end:
            o = starts[i]
            d = parts[o]
            lo, hi = max(o, offset), min(o + len(d), end)
            if d[lo - o:hi - o] != data[lo - offset:hi - offset]:
                self.stats.overlaps += 1
            else:
                self.stats.duplicates += 1
            if pos < o:
                new.append((pos, data[pos - offset:o - offset]))
            pos = max(pos, hi)
            i += 1
        if pos < end:
            new.append((pos, data[pos - offset:]))
        if len(starts) + len(new) > self.max_parts:
            return False
        for s, b in new:
            insort(starts, s)
            parts[s] = b
            p.held += len(b)
            self._held += len(b)
        return True

    def _drop(self, key: tuple) -> None:
        self._held -= self._pending.pop(key).held

    def _drop_oldest(self) -> None:
        self._held -= self._pending.popitem(last=False)[1].held

    def _expire(self, now: int) -> None:
        pending = self._pending
        limit = now - self.timeout_ns
        while pending:
            p = next(iter(pending.values()))
            if p.first_ts >= limit:
                return
            self._drop_oldest()
            self.stats.timeouts += 1


def _contiguous(starts: list[int], parts: dict[int, bytes], total: int) -> bytes | None:
    """The parts joined if they cover 0..total without a hole, else None."""
    pos = 0
    out = []
    for o in starts:
        if o > pos:
            return None
        d = parts[o]
        out.append(d)
        pos = o + len(d)
        if pos >= total:
            return b"".join(out)[:total]
    return None
