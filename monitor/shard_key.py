"""Which worker analyses a datagram: the shard key of `monitor.sharding` (see its module doc).

Shard key: the LwM2M client's IP address. On each datagram the client side is the one whose
UDP port is not a well-known LwM2M server port; when both or neither side uses one, the
smaller address is taken. The shard is CRC-32 of the raw address modulo the worker count.
`parsers/_udpscan.c` applies the same policy in the capture reader's fast path (given
`udp_shard`'s port bitmap); tests/test_udpscan.py checks the two agree.
"""
from __future__ import annotations

import ipaddress
import zlib
from typing import Any

from parsers.pcapfile import UdpShard

LWM2M_SERVER_PORTS = frozenset({5683, 5684, 5685, 5783})
MAX_CACHED_KEYS = 1 << 20          # address → shard memo; cleared when full (bounded)


def shard_address(src_ip: Any, src_port: int, dst_ip: Any, dst_port: int) -> Any:
    """The address that identifies the LwM2M client of a datagram (see the module doc): both
    raw bytes (as the workers filter) or both text."""
    src_server = src_port in LWM2M_SERVER_PORTS
    if src_server != (dst_port in LWM2M_SERVER_PORTS):
        return dst_ip if src_server else src_ip
    return src_ip if src_ip <= dst_ip else dst_ip


def shard_of(address: bytes | str, workers: int) -> int:
    """CRC-32 of the raw address (4 or 16 bytes; text is converted): stable across processes
    and runs (unlike `hash()`)."""
    raw = ipaddress.ip_address(address).packed if isinstance(address, str) else address
    return zlib.crc32(raw) % workers


class ShardFilter:
    """`capture.UdpFilter` of one worker: `shard_of(shard_address(...)) == index`, memoised per
    address (this runs for every datagram in every worker)."""

    def __init__(self, index: int, workers: int) -> None:
        self.index = index
        self.workers = workers
        self.memo: dict[bytes, int] = {}

    def keep(self, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        addr: bytes = shard_address(src, sport, dst, dport)
        memo = self.memo
        shard = memo.get(addr)
        if shard is None:
            if len(memo) >= MAX_CACHED_KEYS:
                memo.clear()
            shard = memo[addr] = zlib.crc32(addr) % self.workers
        return shard == self.index


def _port_bits(ports: frozenset[int]) -> bytes:
    bits = bytearray(8192)
    for port in ports:
        bits[port >> 3] |= 1 << (port & 7)
    return bytes(bits)


_SERVER_PORT_BITS = _port_bits(LWM2M_SERVER_PORTS)


def udp_shard(index: int, workers: int) -> UdpShard:
    """The fast path's form of this policy (`parsers.pcapfile.Reader.feed_udp`)."""
    return UdpShard(workers, index, _SERVER_PORT_BITS)
