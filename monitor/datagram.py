"""The unit every capture source hands to the pipeline: one reassembled UDP datagram."""
from __future__ import annotations

from typing import Any

# Packet times documents can carry (ISO 8601 @timestamp, years 1970-9998: the last year is left
# for time arithmetic such as rule windows). A capture frame outside is damaged, not a packet.
TS_NS_MIN = 0
TS_NS_MAX = 253_370_764_800 * 1_000_000_000      # 9999-01-01T00:00:00Z


# (ip text, port). Spelled as a plain `tuple`, not tuple[str, int], for the compiled build:
# mypyc keeps a fixed-length tuple type unboxed and builds a new tuple object each time one is
# used as an object (a dict key, an argument), so the same address was re-built and re-hashed
# several times per packet, and the flow tables could never find a key by identity.
Address = tuple
FlowKey = tuple         # (Address, Address), the smaller first: `flow_key`
# (src, dst, flow) of a datagram, built once per pair of ends and shared by their datagrams
Ends = tuple


def flow_key(a: Address, b: Address) -> FlowKey:
    """The flow of a datagram between `a` and `b`, either way: the smaller address first."""
    return (a, b) if a <= b else (b, a)


class Datagram:
    """One per packet; never modified after it is built (`_replace` makes a changed copy).

    A plain class with slots rather than a NamedTuple: compiled by mypyc, its fields are read at
    fixed offsets, and `src`/`dst`/`flow` (read several times per packet) are built once. A
    capture reader passes `ends` it keeps per pair of addresses: every datagram of a flow then
    holds the very same tuples, and the flow tables find them by identity, without comparing
    or hashing new tuples per packet (a tenth of a plain run's CPU went to those tables)."""

    __slots__ = ("ts_ns", "src_ip", "src_port", "dst_ip", "dst_port", "payload", "frame", "source",
                 "live", "src", "dst", "flow")

    def __init__(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes,
                 frame: int, source: str, live: bool = False, ends: Ends | None = None) -> None:
        self.ts_ns = ts_ns          # packet time, nanoseconds since the epoch (never the wall clock)
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.payload = payload
        self.frame = frame          # 1-based frame number in its file (the last fragment's, if reassembled)
        self.source = source        # file path offline, interface name live
        self.live = live
        if ends is None:
            src: Address = (src_ip, src_port)
            dst: Address = (dst_ip, dst_port)
            self.src: Address = src
            self.dst: Address = dst
            self.flow: FlowKey = flow_key(src, dst)
        else:
            self.src, self.dst, self.flow = ends

    def _replace(self, **changes: Any) -> Datagram:
        """A copy with some fields changed (the NamedTuple method, kept for tests and the fuzzer)."""
        fields: dict[str, Any] = {
            "ts_ns": self.ts_ns, "src_ip": self.src_ip, "src_port": self.src_port, "dst_ip": self.dst_ip,
            "dst_port": self.dst_port, "payload": self.payload, "frame": self.frame, "source": self.source,
            "live": self.live}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Datagram has no field {sorted(unknown)[0]!r}")
        fields.update(changes)
        return Datagram(**fields)

    def _key(self) -> tuple:
        return (self.ts_ns, self.src_ip, self.src_port, self.dst_ip, self.dst_port, self.payload,
                self.frame, self.source, self.live)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datagram) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Datagram(ts_ns={self.ts_ns}, src={self.src_ip}:{self.src_port}, dst={self.dst_ip}:{self.dst_port}, "
                f"{len(self.payload)} bytes, frame={self.frame}, source={self.source!r}, live={self.live})")


def datagram_of(ts_ns: int, ends: Ends, payload: bytes, frame: int, source: str,
                live: bool = False) -> Datagram:
    """A datagram between the shared `ends` a capture reader keeps (`AddressText.ends`)."""
    a, b = ends[0], ends[1]
    return Datagram(ts_ns, a[0], a[1], b[0], b[1], payload, frame, source, live, ends)
