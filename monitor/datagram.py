"""The unit every capture source hands to the pipeline: one reassembled UDP datagram."""
from __future__ import annotations

from typing import Any

# Packet times documents can carry (ISO 8601 @timestamp, years 1970-9998: the last year is left
# for time arithmetic such as rule windows). A capture frame outside is damaged, not a packet.
TS_NS_MIN = 0
TS_NS_MAX = 253_370_764_800 * 1_000_000_000      # 9999-01-01T00:00:00Z


class Datagram:
    """One per packet; never modified after it is built (`_replace` makes a changed copy).

    A plain class with slots rather than a NamedTuple: compiled by mypyc, its fields are read at
    fixed offsets, and `src`/`dst` (read several times per packet) are built once."""

    __slots__ = ("ts_ns", "src_ip", "src_port", "dst_ip", "dst_port", "payload", "frame", "source",
                 "live", "src", "dst")

    def __init__(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes,
                 frame: int, source: str, live: bool = False) -> None:
        self.ts_ns = ts_ns          # packet time, nanoseconds since the epoch (never the wall clock)
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.payload = payload
        self.frame = frame          # 1-based frame number in its file (the last fragment's, if reassembled)
        self.source = source        # file path offline, interface name live
        self.live = live
        self.src: tuple[str, int] = (src_ip, src_port)
        self.dst: tuple[str, int] = (dst_ip, dst_port)

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
