"""From a captured frame to its UDP datagram: link layer, IPv4/IPv6, UDP.

Contract: `decode(linktype, frame, origlen)` returns a `Udp`, a `Fragment` (an IP fragment
the caller must reassemble, then hand to `transport`), or a `Skip` saying why the frame holds
no UDP datagram (`kind`: "non_ip", "non_udp", "truncated" or "malformed"). It never raises:
a frame that is not UDP is a normal result, not an error.

Hot path: results are NamedTuples (half the cost of frozen dataclasses to build), the common
`Skip`s are shared constants, and addresses stay raw bytes: turning them into text is done
once per address by the caller's cache (state belongs in monitor/, not here).
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple, cast

from .pcapfile import (LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
                       LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
                       LINKTYPE_RAW_12, LINKTYPE_RAW_14)

IPPROTO_UDP = 17
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_LLC_SNAP_ETHERTYPE = b"\xaa\xaa\x03\x00\x00\x00"   # SNAP with OUI 0: an EtherType follows
_ETH_VLAN = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))   # 802.1Q, 802.1ad, legacy QinQ
# BSD loopback address families for IPv4 and IPv6 (IPv6 differs between BSDs).
_AF_INET = 2
_AF_INET6 = (10, 24, 28, 30)
# IPv6 extension headers walked before the transport header (RFC 8200 §4).
_HOPOPT, _ROUTING, _FRAGMENT, _DSTOPTS, _AH, _NONXT = 0, 43, 44, 60, 51, 59


class Udp(NamedTuple):
    """A UDP datagram; addresses are the raw 4 or 16 bytes (text is the caller's concern)."""

    src: bytes
    src_port: int
    dst: bytes
    dst_port: int
    payload: bytes


class Fragment(NamedTuple):
    """One IP fragment. `key` identifies its datagram (RFC 791 / RFC 8200 §4.5)."""

    key: tuple
    offset: int         # byte offset of `data` within the reassembled IP payload
    more: bool          # more fragments follow
    proto: int          # transport protocol (IPv6: the Fragment header's next header)
    data: bytes
    ipv6: bool


class Skip(NamedTuple):
    kind: str           # "non_ip", "non_udp", "truncated" or "malformed"
    reason: str


# A NamedTuple's own __new__ is Python code, interpreted even in the compiled build; tuple's
# (in C) makes the same object in well under half the time. One Udp per packet.
_TUPLE_NEW: Any = tuple.__new__


def _new_udp(src: bytes, src_port: int, dst: bytes, dst_port: int, payload: bytes) -> Udp:
    return cast(Udp, _TUPLE_NEW(Udp, (src, src_port, dst, dst_port, payload)))


NON_IP = Skip("non_ip", "not IP")
UNSUPPORTED_LINK = Skip("non_ip", "unsupported link type")
NON_UDP = Skip("non_udp", "not UDP")
TRUNCATED = Skip("truncated", "frame captured shorter than its headers")
NESTED_FRAGMENT = Skip("malformed", "IPv6 fragment inside a reassembled fragment")


def _bad(reason: str) -> Skip:
    return Skip("malformed", reason)


_H = struct.Struct("!H")
_IPV4 = struct.Struct("!BxHHHBB")        # ver/ihl, total length, id, flags/frag, ttl, proto
_IPV6 = struct.Struct("!IHB")            # ver/class/flow, payload length, next header
_UDP = struct.Struct("!HHH")             # ports, length
_EXT = struct.Struct("!BB")              # next header, length
_FRAG6 = struct.Struct("!BxHI")          # next header, offset/M, identification
_LE32 = struct.Struct("<I")
_BE32 = struct.Struct(">I")

def decode(linktype: int, frame: bytes, origlen: int) -> Udp | Fragment | Skip:
    """The UDP datagram in `frame` (captured bytes of a packet `origlen` long on the wire)."""
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return TRUNCATED
        etype = _H.unpack_from(frame, 12)[0]
        off = 14
        while etype in _ETH_VLAN:
            if n < off + 4:
                return TRUNCATED
            etype = _H.unpack_from(frame, off + 2)[0]
            off += 4
        if etype <= 1500 and frame[off:off + 6] == _LLC_SNAP_ETHERTYPE:  # 802.3 + LLC/SNAP
            if n < off + 8:
                return TRUNCATED
            etype = _H.unpack_from(frame, off + 6)[0]
            off += 8
    elif linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return TRUNCATED
        etype = _H.unpack_from(frame, 14)[0]
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return TRUNCATED
        etype = _H.unpack_from(frame, 0)[0]
        off = 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_IPV4,
                      LINKTYPE_IPV6):
        if n < 1:
            return TRUNCATED
        v = frame[0] >> 4
        etype = _ETH_IPV4 if v == 4 else _ETH_IPV6 if v == 6 else 0
        off = 0
    elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if n < 4:
            return TRUNCATED
        # The family is in the writer's host byte order (NULL) or big-endian (LOOP);
        # accept either order: the valid values are small, the swapped ones are not.
        af = _LE32.unpack_from(frame, 0)[0]
        if af > 0xFFFF:
            af = _BE32.unpack_from(frame, 0)[0]
        etype = _ETH_IPV4 if af == _AF_INET else _ETH_IPV6 if af in _AF_INET6 else 0
        off = 4
    else:
        return UNSUPPORTED_LINK
    # Fast paths for the common case (plain IPv4 or IPv6 header, then UDP, all captured);
    # everything else, including every anomaly, goes through the full walkers below.
    if etype == _ETH_IPV4:
        if n >= off + 28:
            vihl, total, _ident, frag, _ttl, proto = _IPV4.unpack_from(frame, off)
            if (vihl == 0x45 and proto == IPPROTO_UDP and not frag & 0x3FFF
                    and off + total <= n):
                sport, dport, ulen = _UDP.unpack_from(frame, off + 20)
                if 8 <= ulen <= total - 20:
                    return _new_udp(frame[off + 12:off + 16], sport, frame[off + 16:off + 20], dport,
                               frame[off + 28:off + 20 + ulen])
        return _ipv4(frame, off, n < origlen)
    if etype == _ETH_IPV6:
        if n >= off + 48:
            vtf, plen, nh = _IPV6.unpack_from(frame, off)
            if nh == IPPROTO_UDP and vtf >> 28 == 6 and off + 40 + plen <= n:
                sport, dport, ulen = _UDP.unpack_from(frame, off + 40)
                if 8 <= ulen <= plen:
                    return _new_udp(frame[off + 8:off + 24], sport, frame[off + 24:off + 40], dport,
                               frame[off + 48:off + 40 + ulen])
        return _ipv6(frame, off, n < origlen)
    return NON_IP


def _ipv4(frame: bytes, off: int, cut: bool) -> Udp | Fragment | Skip:
    n = len(frame)
    if n < off + 20:
        return TRUNCATED if cut or n > off else _bad("IPv4 header too short")
    vihl, total, ident, frag, _ttl, proto = _IPV4.unpack_from(frame, off)
    if vihl >> 4 != 4:
        return _bad("IP version mismatch")
    hl = (vihl & 15) * 4
    if hl < 20 or total < hl:
        return _bad("IPv4 header length invalid")
    end = off + total
    if end > n:
        if cut:
            return TRUNCATED
        if total != 0:                      # 0 = TSO-offloaded packet: trust the frame
            return _bad("IPv4 total length exceeds frame")
        end = n
    if frag & 0x3FFF:                       # MF set or non-zero offset
        return Fragment((4, frame[off + 12:off + 16], frame[off + 16:off + 20], ident, proto),
                        (frag & 0x1FFF) * 8,
                        bool(frag & 0x2000), proto, frame[off + hl:end], False)
    if proto != IPPROTO_UDP:
        return NON_UDP
    return _udp(frame, off + hl, end, frame[off + 12:off + 16], frame[off + 16:off + 20], cut)


def _ipv6(frame: bytes, off: int, cut: bool) -> Udp | Fragment | Skip:
    n = len(frame)
    if n < off + 40:
        return TRUNCATED if cut or n > off else _bad("IPv6 header too short")
    vtf, plen, nh = _IPV6.unpack_from(frame, off)
    if vtf >> 28 != 6:
        return _bad("IP version mismatch")
    src = frame[off + 8:off + 24]
    dst = frame[off + 24:off + 40]
    end = off + 40 + plen
    if end > n:
        if cut:
            return TRUNCATED
        return _bad("IPv6 payload length exceeds frame")
    if plen == 0:                           # jumbogram or offloaded: trust the frame
        end = n
    return _ipv6_ext(frame, off + 40, end, nh, src, dst, cut)


def _ipv6_ext(buf: bytes, pos: int, end: int, nh: int, src: bytes, dst: bytes,
              cut: bool) -> Udp | Fragment | Skip:
    while nh != IPPROTO_UDP:
        if nh == _HOPOPT or nh == _ROUTING or nh == _DSTOPTS or nh == _AH:
            if pos + 2 > end:
                return TRUNCATED if cut else _bad("IPv6 extension header truncated")
            nxt, hlen = _EXT.unpack_from(buf, pos)
            pos += (hlen + 2) * 4 if nh == _AH else (hlen + 1) * 8
            nh = nxt
        elif nh == _FRAGMENT:
            if pos + 8 > end:
                return TRUNCATED if cut else _bad("IPv6 fragment header truncated")
            nxt, offm, ident = _FRAG6.unpack_from(buf, pos)
            if offm & 0xFFF9:               # non-zero offset or M set: a real fragment
                return Fragment((6, src, dst, ident), offm & 0xFFF8, bool(offm & 1), nxt,
                                buf[pos + 8:end], True)
            pos += 8                        # atomic fragment (RFC 6946): just skip it
            nh = nxt
        else:
            return NON_UDP
        if pos > end:
            return TRUNCATED if cut else _bad("IPv6 extension header overruns packet")
    return _udp(buf, pos, end, src, dst, cut)


def _udp(buf: bytes, pos: int, end: int, src: bytes, dst: bytes, cut: bool) -> Udp | Skip:
    if pos + 8 > end:
        return TRUNCATED if cut else _bad("UDP header truncated")
    sport, dport, ulen = _UDP.unpack_from(buf, pos)
    if ulen < 8:
        if ulen == 0 and len(src) == 16:    # IPv6 jumbogram UDP (RFC 2675): use IP length
            ulen = end - pos
        else:
            return _bad("UDP length below header size")
    if pos + ulen > end:
        return TRUNCATED if cut else _bad("UDP length exceeds IP payload")
    return _new_udp(src, sport, dst, dport, buf[pos + 8:pos + ulen])


def transport(frag: Fragment, payload: bytes) -> Udp | Skip:
    """The UDP datagram in a reassembled IP payload whose first fragment is `frag`'s kin."""
    src, dst = frag.key[1], frag.key[2]
    if frag.ipv6:
        # Headers after the Fragment header belong to the reassembled payload.
        r = _ipv6_ext(payload, 0, len(payload), frag.proto, src, dst, False)
        return NESTED_FRAGMENT if isinstance(r, Fragment) else r
    if frag.proto != IPPROTO_UDP:
        return NON_UDP
    return _udp(payload, 0, len(payload), src, dst, False)
