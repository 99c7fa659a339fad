"""The unit every capture source hands to the pipeline: one reassembled UDP datagram."""
from __future__ import annotations

from typing import NamedTuple

# Packet times documents can carry (ISO 8601 @timestamp, years 1970-9998: the last year is left
# for time arithmetic such as rule windows). A capture frame outside is damaged, not a packet.
TS_NS_MIN = 0
TS_NS_MAX = 253_370_764_800 * 1_000_000_000      # 9999-01-01T00:00:00Z


class Datagram(NamedTuple):
    """Immutable; a NamedTuple because one is built per packet (cheaper than a dataclass)."""

    ts_ns: int          # packet time, nanoseconds since the epoch (never the wall clock)
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload: bytes
    frame: int          # 1-based frame number in its file (the last fragment's, if reassembled)
    source: str         # file path offline, interface name live
    live: bool = False

    @property
    def src(self) -> tuple[str, int]:
        return (self.src_ip, self.src_port)

    @property
    def dst(self) -> tuple[str, int]:
        return (self.dst_ip, self.dst_port)
