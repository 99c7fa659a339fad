"""OMA LwM2M TLV reader (Content-Format 11542): a façade over the Kaitai-generated parser.

Regenerate `tlv_generated.py` from `tlv.ksy` (JS build of kaitai-struct-compiler, pinned):
    cd parsers/kaitai && npm ci && node compile.js

`decode(data)` returns the entries or raises `Truncated` (a length runs past the end) or
`Malformed` (a container holding what it may not hold). TLV values carry no type; the
`as_*` readers turn value bytes into the type the object model names, or raise `Malformed`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from kaitaistruct import BytesIO, KaitaiStream, KaitaiStructError

from .errors import Malformed, ParseError, Truncated
from .tlv_generated import Lwm2mTlv


class Kind(IntEnum):
    """Identifier type, bits 7-6 of the type byte."""

    OBJECT_INSTANCE = 0
    RESOURCE_INSTANCE = 1
    MULTIPLE_RESOURCE = 2
    RESOURCE_VALUE = 3


# Which kinds a container may hold (TS Core §7.4.3): an object instance holds resources,
# a multiple resource holds resource instances; nothing else nests.
_ALLOWED_CHILDREN = {
    Kind.OBJECT_INSTANCE: frozenset({Kind.RESOURCE_VALUE, Kind.MULTIPLE_RESOURCE}),
    Kind.MULTIPLE_RESOURCE: frozenset({Kind.RESOURCE_INSTANCE}),
}


@dataclass(frozen=True, slots=True)
class Header:
    kind: Kind
    identifier: int
    header_length: int
    value_length: int

    @property
    def total_length(self) -> int:
        return self.header_length + self.value_length


@dataclass(frozen=True, slots=True)
class TlvEntry:
    """One TLV; `value` holds the raw bytes of a leaf, `children` the entries of a container."""

    kind: Kind
    identifier: int
    value: bytes = b""
    children: tuple[TlvEntry, ...] = ()

    @property
    def is_container(self) -> bool:
        return self.kind in _ALLOWED_CHILDREN


def decode(data: bytes) -> list[TlvEntry]:
    entries, error = decode_partial(data)
    if error is not None:
        raise error
    return entries


def decode_partial(data: bytes) -> tuple[list[TlvEntry], ParseError | None]:
    """The top-level entries read before the first problem, and that problem (or None): a
    capture cut short still yields the resources that arrived whole."""
    data = bytes(data)
    io = KaitaiStream(BytesIO(data))
    entries: list[TlvEntry] = []
    start = 0
    try:
        while not io.is_eof():
            start = io.pos()
            entries.append(_convert(Lwm2mTlv.Entry(io), None))
    except EOFError as exc:
        # Running out inside a container whose own length fits the payload is not truncation:
        # a nested length overruns its container.
        try:
            whole = read_header(data[start:]).total_length <= len(data) - start
        except ParseError:
            whole = False
        return entries, (Malformed if whole else Truncated)(f"TLV: {exc}")
    except (KaitaiStructError, ValueError) as exc:
        return entries, Malformed(f"TLV: {exc}") if not isinstance(exc, ParseError) else exc
    except RecursionError:
        return entries, Malformed("TLV: containers nested too deeply")
    return entries, None


def read_header(data: bytes) -> Header:
    """Only the first entry's header, for callers that must not touch the value."""
    io = KaitaiStream(BytesIO(bytes(data)))
    try:
        h = Lwm2mTlv.Header(io)
        h.length  # noqa: B018 - evaluate the instance while the stream is open
    except EOFError as exc:
        raise Truncated(f"TLV header: {exc}") from None
    return Header(Kind(int(h.identifier_type)), h.identifier, io.pos(), h.length)


def _convert(entry: Lwm2mTlv.Entry, parent: Kind | None) -> TlvEntry:
    kind = Kind(int(entry.header.identifier_type))
    if parent is not None and kind not in _ALLOWED_CHILDREN[parent]:
        raise Malformed(f"TLV: {kind.name.lower()} {entry.header.identifier} inside "
                        f"{parent.name.lower()}")
    if kind in _ALLOWED_CHILDREN:
        return TlvEntry(kind, entry.header.identifier,
                        children=tuple(_convert(c, kind) for c in entry.value.entries))
    return TlvEntry(kind, entry.header.identifier, value=entry.value)


# Value readers (TS Core §7.4.3 / Appendix C data types).

_FLOATS = {4: struct.Struct("!f"), 8: struct.Struct("!d")}


def as_integer(value: bytes) -> int:
    if len(value) not in (1, 2, 4, 8):
        raise Malformed(f"TLV integer of {len(value)} bytes")
    return int.from_bytes(value, "big", signed=True)


def as_unsigned(value: bytes) -> int:
    if len(value) not in (1, 2, 4, 8):
        raise Malformed(f"TLV unsigned integer of {len(value)} bytes")
    return int.from_bytes(value, "big", signed=False)


def as_float(value: bytes) -> float:
    codec = _FLOATS.get(len(value))
    if codec is None:
        raise Malformed(f"TLV float of {len(value)} bytes")
    return codec.unpack(value)[0]


def as_boolean(value: bytes) -> bool:
    if value not in (b"\x00", b"\x01"):
        raise Malformed("TLV boolean is not one byte 0 or 1")
    return value == b"\x01"


def as_objlnk(value: bytes) -> tuple[int, int]:
    if len(value) != 4:
        raise Malformed(f"TLV objlnk of {len(value)} bytes")
    return int.from_bytes(value[:2], "big"), int.from_bytes(value[2:], "big")


def as_string(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("TLV string is not UTF-8") from None
