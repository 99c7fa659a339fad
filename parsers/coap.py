"""CoAP message reader (RFC 7252, with RFC 7641 Observe and RFC 7959 Block options).

`parse(data)` returns a `Message` or raises `Truncated`/`Malformed`; nothing else. Unknown
options are kept as numbers with their raw value. Reserved token lengths (9-15), the
reserved option nibble 15 outside the payload marker, Block1/Block2 values longer than
3 bytes, and Observe / Content-Format / Accept values beyond their 3 / 2 / 2 bytes (RFC 7641
§2, RFC 7252 §5.10) are `Malformed`, unlike lenient stacks.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import Malformed, Truncated

# Message types (RFC 7252 §3).
CON, NON, ACK, RST = 0, 1, 2, 3
TYPE_NAMES = ("CON", "NON", "ACK", "RST")

# Option numbers (IANA CoAP Option Numbers registry).
IF_MATCH = 1
URI_HOST = 3
ETAG = 4
IF_NONE_MATCH = 5
OBSERVE = 6
URI_PORT = 7
LOCATION_PATH = 8
OSCORE = 9
URI_PATH = 11
CONTENT_FORMAT = 12
MAX_AGE = 14
URI_QUERY = 15
ACCEPT = 17
LOCATION_QUERY = 20
BLOCK2 = 23
BLOCK1 = 27
SIZE2 = 28
PROXY_URI = 35
PROXY_SCHEME = 39
SIZE1 = 60
NO_RESPONSE = 258

OPTION_NAMES = {
    IF_MATCH: "If-Match", URI_HOST: "Uri-Host", ETAG: "ETag", IF_NONE_MATCH: "If-None-Match",
    OBSERVE: "Observe", URI_PORT: "Uri-Port", LOCATION_PATH: "Location-Path", OSCORE: "OSCORE",
    URI_PATH: "Uri-Path", CONTENT_FORMAT: "Content-Format", MAX_AGE: "Max-Age",
    URI_QUERY: "Uri-Query", ACCEPT: "Accept", LOCATION_QUERY: "Location-Query",
    BLOCK2: "Block2", BLOCK1: "Block1", SIZE2: "Size2", PROXY_URI: "Proxy-Uri",
    PROXY_SCHEME: "Proxy-Scheme", SIZE1: "Size1", NO_RESPONSE: "No-Response",
}

# Request method codes (class 0).
GET, POST, PUT, DELETE, FETCH, PATCH, IPATCH = 1, 2, 3, 4, 5, 6, 7

_HEADER = struct.Struct("!BBH")  # ver|type|tkl, code, message id


# `c.dd` of every code byte, built once: two documents per exchange print codes
CODE_TEXT: tuple[str, ...] = tuple(f"{c >> 5}.{c & 0x1F:02d}" for c in range(256))

@dataclass(frozen=True, slots=True)
class Block:
    """A Block1/Block2 option value (RFC 7959 §2.2)."""

    num: int
    more: bool
    szx: int

    @property
    def size(self) -> int:
        return 1 << (self.szx + 4)

    @property
    def offset(self) -> int:
        return self.num * self.size


@dataclass(slots=True, init=False)
class Message:
    """One CoAP message as on the wire. `options` keeps wire order as (number, value) pairs.

    Not frozen, and its own `__init__`: one is built per packet, and a frozen dataclass's
    generated `__init__` (interpreted, even in the compiled build, one `object.__setattr__` per
    field) cost more than the parse itself. Nothing assigns to a message after it is built."""

    type: int
    code: int
    mid: int
    token: bytes
    options: tuple[tuple[int, bytes], ...]
    payload: bytes
    # Options every layer above asks for, decoded once here (the per-packet hot path).
    _path: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _query: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _cf: int | None = field(init=False, repr=False, compare=False)
    _observe: int | None = field(init=False, repr=False, compare=False)
    _accept: int | None = field(init=False, repr=False, compare=False)
    _oscore: bytes | None = field(init=False, repr=False, compare=False)
    _block1: bytes | None = field(init=False, repr=False, compare=False)
    _block2: bytes | None = field(init=False, repr=False, compare=False)

    def __init__(self, type: int, code: int, mid: int, token: bytes,
                 options: tuple[tuple[int, bytes], ...], payload: bytes) -> None:
        self.type = type
        self.code = code
        self.mid = mid
        self.token = token
        self.options = options
        self.payload = payload
        path: list[str] = []
        query: list[str] = []
        cf = observe = accept = oscore = block1 = block2 = None
        for n, v in options:
            if n == URI_PATH:
                path.append(v.decode("utf-8", "replace"))
            elif n == URI_QUERY:
                query.append(v.decode("utf-8", "replace"))
            elif n == CONTENT_FORMAT and cf is None:
                cf = int.from_bytes(v, "big")
            elif n == OBSERVE and observe is None:
                observe = int.from_bytes(v, "big")
            elif n == ACCEPT and accept is None:
                accept = int.from_bytes(v, "big")
            elif n == OSCORE and oscore is None:
                oscore = v
            elif n == BLOCK2 and block2 is None:
                block2 = v
            elif n == BLOCK1 and block1 is None:
                block1 = v
        self._path = tuple(path)
        self._query = tuple(query)
        self._cf = cf
        self._observe = observe
        self._accept = accept
        self._oscore = oscore
        self._block1 = block1
        self._block2 = block2

    # --- codes -------------------------------------------------------------------------
    @property
    def code_class(self) -> int:
        return self.code >> 5

    @property
    def code_text(self) -> str:
        """The code as `c.dd`, e.g. `2.05`, `0.01`."""
        return CODE_TEXT[self.code]

    @property
    def is_request(self) -> bool:
        return self.code_class == 0 and self.code != 0

    @property
    def is_response(self) -> bool:
        return self.code_class >= 2

    @property
    def is_empty(self) -> bool:
        return self.code == 0

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]

    # --- options -----------------------------------------------------------------------
    def option_values(self, number: int) -> list[bytes]:
        return [v for n, v in self.options if n == number]

    def option(self, number: int) -> bytes | None:
        for n, v in self.options:
            if n == number:
                return v
        return None

    def has_option(self, number: int) -> bool:
        return any(n == number for n, _ in self.options)

    def uint_option(self, number: int) -> int | None:
        value = self.option(number)
        return None if value is None else int.from_bytes(value, "big")

    @property
    def uri_path(self) -> tuple[str, ...]:
        return self._path

    @property
    def uri_query(self) -> tuple[str, ...]:
        return self._query

    @property
    def location_path(self) -> tuple[str, ...]:
        return tuple(v.decode("utf-8", "replace") for v in self.option_values(LOCATION_PATH))

    @property
    def content_format(self) -> int | None:
        return self._cf

    @property
    def accept(self) -> int | None:
        return self._accept

    @property
    def observe(self) -> int | None:
        return self._observe

    @property
    def block1(self) -> Block | None:
        return _block(self._block1)

    @property
    def block2(self) -> Block | None:
        return _block(self._block2)

    @property
    def oscore(self) -> bytes | None:
        return self._oscore


def _block(value: bytes | None) -> Block | None:
    if value is None:
        return None
    n = int.from_bytes(value, "big")
    return Block(num=n >> 4, more=bool(n & 0x08), szx=n & 0x07)


def parse(data: bytes) -> Message:
    """Parse one CoAP-over-UDP datagram; raises `Truncated` or `Malformed`."""
    if len(data) < 4:
        raise Truncated("CoAP header needs 4 bytes")
    first, code, mid = _HEADER.unpack_from(data)
    if first >> 6 != 1:
        raise Malformed(f"CoAP version {first >> 6}")
    tkl = first & 0x0F
    if tkl > 8:
        raise Malformed(f"reserved token length {tkl}")
    mtype = (first >> 4) & 0x03
    end = 4 + tkl
    if len(data) < end:
        raise Truncated("token")
    token = data[4:end]
    if code == 0 and (tkl or len(data) > 4):
        raise Malformed("empty message with token or options")
    if code >> 5 in (1, 6, 7):
        raise Malformed(f"reserved code class {code >> 5}")
    options, payload = parse_options(data, end)
    msg = Message(mtype, code, mid, token, options, payload)
    if (msg._block1 is not None or msg._block2 is not None or (msg._observe or 0) > 0xFFFFFF
            or (msg._cf or 0) > 0xFFFF or (msg._accept or 0) > 0xFFFF):
        check_option_lengths(options)
    return msg


# uint options whose value would otherwise be unbounded: an Observe of 2,000 bytes is a number
# of 4,800 digits that no document can carry (and a Block number addressing beyond any body)
MAX_OPTION_LENGTH = {BLOCK1: 3, BLOCK2: 3, OBSERVE: 3, CONTENT_FORMAT: 2, ACCEPT: 2}


def check_option_lengths(options: tuple[tuple[int, bytes], ...]) -> None:
    """Block1/Block2 (RFC 7959 §2.2) and Observe (RFC 7641 §2) values are 0-3 bytes,
    Content-Format and Accept 0-2 (RFC 7252 §5.10); a longer one is `Malformed`. `parse`
    calls it when a value is out of range (a long encoding of a small number passes there)."""
    for number, value in options:
        limit = MAX_OPTION_LENGTH.get(number)
        if limit is not None and len(value) > limit:
            raise Malformed(f"{OPTION_NAMES[number]} option of {len(value)} bytes (at most {limit})")


def parse_options(data: bytes, pos: int) -> tuple[tuple[tuple[int, bytes], ...], bytes]:
    """Read the option list from `pos` to the payload marker; return (options, payload)."""
    options: list[tuple[int, bytes]] = []
    number = 0
    size = len(data)
    while pos < size:
        byte = data[pos]
        if byte == 0xFF:
            if pos + 1 == size:
                raise Malformed("payload marker followed by no payload")
            return tuple(options), data[pos + 1:]
        pos += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta > 12:                       # extended forms are rare: no call otherwise
            delta, pos = _extended(data, pos, delta, "option delta")
        if length > 12:
            length, pos = _extended(data, pos, length, "option length")
        if pos + length > size:
            raise Truncated("option value")
        number += delta
        options.append((number, data[pos:pos + length]))
        pos += length
    return tuple(options), b""


def _extended(data: bytes, pos: int, nibble: int, what: str) -> tuple[int, int]:
    if nibble < 13:
        return nibble, pos
    if nibble == 13:
        if pos + 1 > len(data):
            raise Truncated(what)
        return data[pos] + 13, pos + 1
    if nibble == 14:
        if pos + 2 > len(data):
            raise Truncated(what)
        return ((data[pos] << 8) | data[pos + 1]) + 269, pos + 2
    raise Malformed(f"reserved {what} nibble 15")


def looks_like_coap(data: bytes) -> bool:
    """Cheap content test used to find CoAP on any port before a full parse."""
    if len(data) < 4:
        return False
    first, code = data[0], data[1]
    return first >> 6 == 1 and (first & 0x0F) <= 8 and (code >> 5) not in (1, 6, 7)


def encode_option_uint(value: int) -> bytes:
    """Minimal-length big-endian unsigned integer, as CoAP uint options are carried."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


def serialize(msg: Message) -> bytes:
    """Encode a message (used to rebuild the inner message of OSCORE and in tests)."""
    out = bytearray(_HEADER.pack(0x40 | (msg.type << 4) | len(msg.token), msg.code, msg.mid))
    out += msg.token
    out += serialize_options(msg.options)
    if msg.payload:
        out += b"\xff" + msg.payload
    return bytes(out)


def serialize_options(options: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta, length = number - last, len(value)
        last = number
        d_nib, d_ext = _nibble(delta)
        l_nib, l_ext = _nibble(length)
        out.append((d_nib << 4) | l_nib)
        out += d_ext + l_ext + value
    return bytes(out)


def _nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")
