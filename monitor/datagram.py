"""The unit every capture source hands to the pipeline: one reassembled UDP datagram."""
from __future__ import annotations

from typing import NamedTuple


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
