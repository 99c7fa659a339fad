"""Incremental reader of capture files: classic pcap and pcapng.

Contract: `Reader.feed(chunk)` returns the records completed by that chunk (a list, maybe
empty: "incomplete" is a normal state); it raises `Malformed` when the bytes cannot be a
capture file (after first returning the records before the damage), and `close()` raises
`Truncated` when the input ended inside the header or a record. Error messages name the
byte offset of the damage. Nothing else is raised. `Reader.feed_udp(chunk, shard)` is the
same with the capture reader's fast path (`_udpscan.c`, when built): packets holding a plain
UDP datagram come already decoded, and those of other shards' clients as None.

Supported: pcap in both byte orders with microsecond (a1b2c3d4) and nanosecond (a1b23c4d)
magic; pcapng sections of either byte order, several interfaces each with its own link type,
`if_tsresol` (decimal and power-of-2) and `if_tsoffset`, Enhanced, Simple and obsolete Packet
Blocks, and Decryption Secrets Blocks (exposed as `Secrets`). Other blocks (NRB, ISB, custom,
unknown) are skipped.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple, Union, cast

from ._accel import compiled
from .errors import Malformed, Truncated

# The C fast path of `Reader.feed_udp` (see _udpscan.c); None in a pure-Python run, or when the
# extension is not built or older than its source: `feed_udp` then does the same in Python.
def _fast_path() -> Any:
    if not compiled("parsers._udpscan"):
        return None
    import importlib
    return importlib.import_module("parsers._udpscan")


_udpscan: Any = _fast_path()

# Link types used by the rest of the code (tcpdump.org LINKTYPE_* registry).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12     # BSD's DLT_RAW number, as some OpenBSD files carry it
LINKTYPE_RAW_14 = 14     # another historical DLT_RAW number
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SECRETS_TLS_KEYLOG = 0x544C534B  # "TLSK": NSS key log text (pcapng DSB secrets type)

# A single record above this size is corrupt, not big: no link type needs more than this.
MAX_RECORD = 16 * 1024 * 1024

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 0),   # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000, 0),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 0),      # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1, 0),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 8),   # Kuznetzov's modified pcap: 8 more header bytes
    b"\xa1\xb2\xcd\x34": (">", 1000, 8),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"

_BT_IDB, _BT_OPB, _BT_SPB, _BT_EPB, _BT_DSB = 1, 2, 3, 6, 0x0A
# Blocks Wireshark shows as frames although they hold no packet: systemd journal export,
# custom blocks (copyable and not).
_NUMBERED = frozenset((0x09, 0x00000BAD, 0x40000BAD))
_OPT_END, _OPT_TSRESOL, _OPT_TSOFFSET, _OPT_NAME = 0, 9, 14, 2


class Packet(NamedTuple):
    """One captured frame. A NamedTuple, not a dataclass: built once per packet (hot path)."""

    ts_ns: int          # nanoseconds since the epoch
    linktype: int
    origlen: int        # length on the wire; len(data) is the captured length
    data: bytes
    interface: int      # pcapng interface index (0 for pcap)


# A NamedTuple's own __new__ is Python code, interpreted even in the compiled build; tuple's
# (in C) makes the same object in well under half the time.
_TUPLE_NEW: Any = tuple.__new__


def _packet(ts_ns: int, linktype: int, origlen: int, data: bytes, interface: int) -> Packet:
    return cast(Packet, _TUPLE_NEW(Packet, (ts_ns, linktype, origlen, data, interface)))


def udp_ends(src: bytes, src_port: int, dst: bytes, dst_port: int) -> bytes:
    """Both ends of a datagram as the fast path gives them: raw source address, source port
    (2 bytes, big-endian), raw destination address, destination port."""
    return src + src_port.to_bytes(2, "big") + dst + dst_port.to_bytes(2, "big")


def split_ends(ends: bytes) -> tuple[bytes, int, bytes, int]:
    """`udp_ends` undone: (src, src_port, dst, dst_port)."""
    a = (len(ends) - 4) // 2
    return (ends[:a], int.from_bytes(ends[a:a + 2], "big"), ends[a + 2:2 * a + 2],
            int.from_bytes(ends[2 * a + 2:], "big"))


@dataclass(frozen=True, slots=True)
class UdpShard:
    """What `Reader.feed_udp` keeps: datagrams whose client address (the side whose port is
    not in `server_ports`, else the smaller address) has crc32 % workers == index; workers 1
    keeps every datagram. `server_ports`: 8192 bytes, bit p (byte p >> 3, bit p & 7) set for
    each server port p. The policy itself is monitor/shard_key.py's."""

    workers: int
    index: int
    server_ports: bytes


@dataclass(frozen=True, slots=True)
class Interface:
    """A pcapng Interface Description Block, or the single interface of a pcap file."""

    index: int
    linktype: int
    snaplen: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Secrets:
    """A pcapng Decryption Secrets Block; `data` of SECRETS_TLS_KEYLOG is NSS key log text."""

    secrets_type: int
    data: bytes = b""

    def __repr__(self) -> str:  # secrets never reach a log through repr()
        return f"Secrets(secrets_type={self.secrets_type:#x}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class Numbered:
    """A block without a packet that Wireshark still numbers as a frame (custom, journal).

    The file source counts it, so our frame numbers stay Wireshark's frame numbers.
    """

    block_type: int


Record = Union[Packet, Interface, Secrets, Numbered]


@dataclass(frozen=True, slots=True)
class _Iface:
    linktype: int
    snaplen: int
    mul: int            # ticks -> ns: ticks * mul // div + offset_ns
    div: int
    offset_ns: int


_I64 = 1 << 63


def _fast_interface(i: _Iface) -> tuple[int, int, int, int]:
    """An interface as `_udpscan.scan_pcapng` takes it; linktype -1 (left to this reader) when
    its timestamp scale or offset does not fit in 64 bits (if_tsresol beyond 10^-19 s, ...)."""
    if i.mul < _I64 and i.div < _I64 and -_I64 <= i.offset_ns < _I64:
        return (i.linktype, i.mul, i.div, i.offset_ns)
    return (-1, 1, 1, 0)


def _ts_scale(tsresol: int) -> tuple[int, int]:
    """(mul, div) turning if_tsresol ticks into nanoseconds, exactly (truncating like Wireshark)."""
    exp = tsresol & 0x7F
    if tsresol & 0x80:                     # negative power of 2
        return 1_000_000_000, 1 << exp
    if exp <= 9:
        return 10 ** (9 - exp), 1
    return 1, 10 ** (exp - 9)


class Reader:
    """Sans-IO capture file reader; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._buf = b""
        self._error: Malformed | None = None
        self._offset = 0            # file offset of self._buf[0]
        self._kind = ""             # "", "pcap" or "pcapng"
        self._rec = struct.Struct("<IIII")   # struct of a pcap record header (the file's byte order)
        self._tsmul = 1000
        self._hdr = 16              # pcap record header length
        self._linktype = 0
        self._e = "<"               # byte order of the current pcapng section
        self._blk = struct.Struct("<II")      # block header, in the section's byte order
        self._epb = struct.Struct("<IIIII")
        self._ifaces: list[_Iface] = []
        self._u32 = struct.Struct("<I")
        self._last_ts = 0           # an SPB has no timestamp: it gets its predecessor's
        self._big = False           # pcap byte order is big-endian
        self.fast_bytes = 0         # captured bytes of the frames `feed_udp` pre-decoded or dropped

    @property
    def offset(self) -> int:
        """File offset of the first byte not yet consumed into a record."""
        return self._offset

    def feed(self, chunk: bytes) -> list[Record]:
        """The records completed by `chunk`. At damage, the records before it are returned
        first and the `Malformed` error is raised by the next call (feed or close)."""
        return cast("list[Record]", self.feed_udp(chunk, None))

    def feed_udp(self, chunk: bytes, shard: UdpShard | None) -> list[Any]:
        """`feed`, with the common case pre-decoded when the C fast path is built: a pcap
        record or pcapng Enhanced Packet Block holding a plain UDP datagram (see `_udpscan.c`)
        comes as a tuple `(ts_ns, ends, payload)` (`ends`: `udp_ends` of the raw addresses and
        ports, as `netlayers.Udp` has them), or as None when the datagram's client belongs to another shard; their
        captured bytes are added to `fast_bytes` (the caller resets it). Everything else comes as from `feed`,
        which is `feed_udp` with `shard` None: no fast path."""
        if self._error is not None:
            raise self._error
        buf = self._buf + chunk if self._buf else bytes(chunk)
        out: list[Record] = []
        pos = 0
        try:
            if not self._kind:
                pos = self._start(buf, out)
                if not self._kind:
                    self._buf = buf
                    return out
            if self._kind == "pcap":
                if shard is not None and _udpscan is not None:
                    pos, nbytes = _udpscan.scan_pcap(
                        buf, pos, self._big, self._tsmul, self._hdr, self._linktype, shard.workers,
                        shard.index, shard.server_ports, _packet, out)
                    self.fast_bytes += nbytes
                pos = self._pcap_records(buf, pos, out)     # from the first incomplete record
            else:
                if shard is not None and _udpscan is not None:
                    pos = self._pcapng_fast(buf, pos, out, shard)
                else:
                    pos = self._pcapng_blocks(buf, pos, out)
        except Malformed as e:
            self._error = e
            self._buf = b""
            if out:
                return out
            raise
        self._offset += pos
        self._buf = buf[pos:]
        return out

    def close(self) -> None:
        """Declare end of input: raises Truncated if it ended inside the header or a record
        (or the pending Malformed error of a damaged file)."""
        if self._error is not None:
            raise self._error
        if not self._kind:
            if self._buf:
                raise Truncated(f"truncated file header at byte {self._offset}")
            raise Truncated("empty file")
        if self._buf:
            what = "record" if self._kind == "pcap" else "block"
            raise Truncated(f"truncated {what} at byte {self._offset}")

    # -- file header ---------------------------------------------------------------------------

    def _start(self, buf: bytes, out: list[Record]) -> int:
        if len(buf) < 4:
            return 0
        magic = buf[:4]
        if magic == _PCAPNG_SHB:
            self._kind = "pcapng"
            return 0
        fmt = _PCAP_MAGIC.get(magic)
        if fmt is None:
            raise Malformed(f"not a pcap or pcapng file (magic {magic.hex()}) at byte 0")
        if len(buf) < 24:
            return 0
        e, self._tsmul, extra = fmt
        self._hdr = 16 + extra
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(e + "HHiIII", buf, 4)
        if major != 2:
            raise Malformed(f"unsupported pcap version {major} at byte 4")
        self._linktype = network & 0xFFFF  # upper bits carry FCS length flags
        self._rec = struct.Struct(e + "IIII")
        self._big = e == ">"
        self._kind = "pcap"
        out.append(Interface(0, self._linktype, snaplen))
        return 24

    # -- pcap ----------------------------------------------------------------------------------

    def _pcap_records(self, buf: bytes, pos: int, out: list[Record]) -> int:
        unpack = self._rec.unpack_from
        n = len(buf)
        mul = self._tsmul
        lt = self._linktype
        append = out.append
        hdr = self._hdr
        while pos + hdr <= n:
            sec, frac, incl, orig = unpack(buf, pos)
            end = pos + hdr + incl
            if end > n:
                if incl > MAX_RECORD:
                    raise Malformed(
                        f"record length {incl} exceeds limit at byte {self._offset + pos}")
                break
            append(_packet(sec * 1_000_000_000 + frac * mul, lt, orig, buf[pos + hdr:end], 0))
            pos = end
        return pos

    # -- pcapng --------------------------------------------------------------------------------

    def _pcapng_fast(self, buf: bytes, pos: int, out: list[Any], shard: UdpShard) -> int:
        """The C fast path over runs of Enhanced Packet Blocks, this reader for every block it
        leaves (another type, damage, a timestamp it does not take), one at a time; returns
        the position of the first incomplete block."""
        server_ports = shard.server_ports
        while True:
            pos, nbytes, last_ts = _udpscan.scan_pcapng(
                buf, pos, self._e == ">", [_fast_interface(i) for i in self._ifaces],
                shard.workers, shard.index, server_ports, _packet, out)
            self.fast_bytes += nbytes
            if last_ts is not None:
                self._last_ts = last_ts
            after = self._pcapng_blocks(buf, pos, out, 1)
            if after == pos:
                return pos
            pos = after

    def _pcapng_blocks(self, buf: bytes, pos: int, out: list[Record], limit: int = -1) -> int:
        """The blocks from `pos` on (at most `limit` of them, if positive) until an incomplete one."""
        n = len(buf)
        append = out.append
        ifaces = self._ifaces
        unpack_blk, unpack_u32, unpack_epb = (self._blk.unpack_from, self._u32.unpack_from,
                                              self._epb.unpack_from)
        last_ts = self._last_ts
        while pos + 12 <= n:
            btype, blen = unpack_blk(buf, pos)
            if btype == 0x0A0D0D0A:              # palindromic: read right in either order
                self._section(buf, pos)
                unpack_blk, unpack_u32, unpack_epb = (
                    self._blk.unpack_from, self._u32.unpack_from, self._epb.unpack_from)
                btype, blen = unpack_blk(buf, pos)
            end = pos + blen
            if end > n or blen < 12 or blen & 3:
                if blen < 12 or blen & 3:
                    raise Malformed(f"bad block length {blen} at byte {self._offset + pos}")
                if blen > MAX_RECORD:
                    raise Malformed(
                        f"block length {blen} exceeds limit at byte {self._offset + pos}")
                break
            if unpack_u32(buf, end - 4)[0] != blen:
                raise Malformed(f"block trailer length mismatch at byte {self._offset + pos}")
            if btype == _BT_EPB and blen >= 32:
                # The per-packet path, inlined: one unpack, one slice, one tuple.
                ifid, hi, lo, cap, orig = unpack_epb(buf, pos + 8)
                if 32 + cap > blen or ifid >= len(ifaces):
                    self._bad_packet(ifid, cap, blen, pos)
                i = ifaces[ifid]
                last_ts = (hi << 32 | lo) * i.mul // i.div + i.offset_ns
                append(_packet(last_ts, i.linktype, orig, buf[pos + 28:pos + 28 + cap], ifid))
            else:
                self._last_ts = last_ts
                self._other_block(btype, buf, pos, blen, out)
                last_ts = self._last_ts
                ifaces = self._ifaces            # an SHB starts a new interface list
            pos = end
            limit -= 1
            if limit == 0:
                break
        self._last_ts = last_ts
        return pos

    def _section(self, buf: bytes, pos: int) -> None:
        """A Section Header Block starts: it sets the byte order of what follows."""
        bom = buf[pos + 8:pos + 12]
        if bom == b"\x4d\x3c\x2b\x1a":
            e = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            e = ">"
        else:
            raise Malformed(f"bad section byte-order magic at byte {self._offset + pos}")
        if e != self._e:
            self._e = e
            self._blk = struct.Struct(e + "II")
            self._u32 = struct.Struct(e + "I")
            self._epb = struct.Struct(e + "IIIII")

    def _bad_packet(self, ifid: int, cap: int, blen: int, pos: int) -> None:
        if 32 + cap > blen:
            raise Malformed(f"packet length exceeds its block at byte {self._offset + pos}")
        raise Malformed(f"packet names unknown interface {ifid} at byte {self._offset + pos}")

    def _other_block(self, btype: int, buf: bytes, pos: int, blen: int,
                     out: list[Record]) -> None:
        e = self._e
        at = self._offset + pos
        if btype == 0x0A0D0D0A:
            if blen < 28:
                raise Malformed(f"section header block too short at byte {at}")
            major = struct.unpack_from(e + "H", buf, pos + 12)[0]
            if major != 1:
                raise Malformed(f"unsupported pcapng version {major} at byte {at}")
            self._ifaces = []                  # interfaces are numbered per section
        elif btype == _BT_IDB:
            if blen < 20:
                raise Malformed(f"interface description block too short at byte {at}")
            linktype, _res, snaplen = struct.unpack_from(e + "HHI", buf, pos + 8)
            tsresol, tsoffset, name = 6, 0, ""
            for code, value in _options(buf, pos + 16, pos + blen - 4, e, at):
                if code == _OPT_TSRESOL and value:
                    tsresol = value[0]
                elif code == _OPT_TSOFFSET and len(value) >= 8:
                    tsoffset = struct.unpack_from(e + "q", value)[0]
                elif code == _OPT_NAME:
                    name = value.decode("utf-8", "replace")
            mul, div = _ts_scale(tsresol)
            self._ifaces.append(_Iface(linktype, snaplen, mul, div, tsoffset * 1_000_000_000))
            out.append(Interface(len(self._ifaces) - 1, linktype, snaplen, name))
        elif btype == _BT_EPB:
            raise Malformed(f"enhanced packet block too short at byte {at}")
        elif btype == _BT_SPB:
            if not self._ifaces:
                raise Malformed(f"simple packet block before any interface at byte {at}")
            i = self._ifaces[0]
            orig = self._u32.unpack_from(buf, pos + 8)[0] if blen >= 16 else 0
            cap = min(orig, blen - 16)
            if i.snaplen:
                cap = min(cap, i.snaplen)
            # No timestamp in an SPB (Wireshark shows none): keep time monotonic instead.
            out.append(_packet(self._last_ts, i.linktype, orig, buf[pos + 12:pos + 12 + cap], 0))
        elif btype == _BT_OPB:
            if blen < 32:
                raise Malformed(f"packet block too short at byte {at}")
            ifid, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", buf, pos + 8)
            if 28 + cap + 4 > blen:
                raise Malformed(f"packet length exceeds its block at byte {at}")
            if ifid >= len(self._ifaces):
                raise Malformed(f"packet names unknown interface {ifid} at byte {at}")
            i = self._ifaces[ifid]
            self._last_ts = ts = (hi << 32 | lo) * i.mul // i.div + i.offset_ns
            out.append(_packet(ts, i.linktype, orig, buf[pos + 28:pos + 28 + cap], ifid))
        elif btype == _BT_DSB:
            if blen < 20:
                raise Malformed(f"decryption secrets block too short at byte {at}")
            stype, slen = struct.unpack_from(e + "II", buf, pos + 8)
            if 20 + slen > blen:
                raise Malformed(f"secrets length exceeds its block at byte {at}")
            out.append(Secrets(stype, buf[pos + 16:pos + 16 + slen]))
        elif btype in _NUMBERED:
            out.append(Numbered(btype))
        # NRB (4), ISB (5) and unknown blocks: skipped.


def _options(buf: bytes, pos: int, end: int, e: str, at: int):
    """Yield (code, value) of a pcapng option list; stops at opt_endofopt or the block end."""
    hdr = struct.Struct(e + "HH")
    while pos + 4 <= end:
        code, length = hdr.unpack_from(buf, pos)
        if code == _OPT_END:
            return
        vend = pos + 4 + length
        if vend > end:
            raise Malformed(f"option {code} overruns its block at byte {at}")
        yield code, buf[pos + 4:vend]
        pos = vend + (-length & 3)
