"""A single-value CBOR payload (Content-Format 60 carrying one LwM2M resource value).

Read by hand rather than with a generic decoder because the LwM2M meaning depends on the
encoding details a generic decoder hides: which semantic tag was used, and that arrays, maps,
null/undefined/simple values, indefinite-length strings and nested tags are not resource
values (wakaama rejects them). `decode(data)` returns an `Item` or raises `Truncated` /
`Malformed`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import Malformed, Truncated

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Tags a single value may carry, and the major types each applies to.
_TAGS = {
    0: (3,),          # date/time string
    1: (0, 1, 7),     # epoch time: integer or float
    23: (2,),         # expected conversion to base16
    24: (2,),         # embedded CBOR data item, kept as bytes
    32: (3,),         # URI
}


@dataclass(frozen=True, slots=True)
class Item:
    kind: str              # "integer", "unsigned", "float", "boolean", "string", "opaque"
    value: int | float | bool | str | bytes
    tag: int | None = None


def decode(data: bytes) -> Item:
    data = bytes(data)
    if not data:
        raise Truncated("CBOR: empty payload")
    tag = None
    pos = 0
    major, info, arg, pos = _head(data, pos)
    if major == 6:
        tag = arg
        if tag not in _TAGS:
            raise Malformed(f"CBOR: tag {tag} is not a resource value")
        major, info, arg, pos = _head(data, pos)
        if major == 6:
            raise Malformed("CBOR: nested tags")
        if major not in _TAGS[tag]:
            raise Malformed(f"CBOR: tag {tag} on major type {major}")
    item, pos = _value(data, major, info, arg, pos)
    if pos != len(data):
        raise Malformed(f"CBOR: {len(data) - pos} bytes after the value")
    if tag == 1 and item.kind in ("integer", "unsigned") and item.value >= 0:
        # wakaama decodes a tag-1 integer time as an unsigned integer
        return Item("unsigned", item.value, tag)
    return Item(item.kind, item.value, tag)


def _head(data: bytes, pos: int) -> tuple[int, int, int | None, int]:
    if pos >= len(data):
        raise Truncated("CBOR: missing data item")
    ib = data[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise Truncated("CBOR: argument runs past the end")
        return major, info, int.from_bytes(data[pos:pos + size], "big"), pos + size
    if info == 31:
        return major, info, None, pos        # indefinite length / break
    raise Malformed(f"CBOR: reserved additional information {info}")


def _value(data: bytes, major: int, info: int, arg: int | None, pos: int) -> tuple[Item, int]:
    if major in (0, 1):
        if arg is None:
            raise Malformed("CBOR: indefinite integer")
        if major == 0:
            return Item("integer" if arg <= INT64_MAX else "unsigned", arg), pos
        value = -1 - arg
        if value < INT64_MIN:
            raise Malformed("CBOR: negative integer below int64")
        return Item("integer", value), pos
    if major in (2, 3):
        if arg is None:
            raise Malformed("CBOR: indefinite-length string")
        if pos + arg > len(data):
            raise Truncated("CBOR: string runs past the end")
        raw = data[pos:pos + arg]
        if major == 2:
            return Item("opaque", raw), pos + arg
        try:
            return Item("string", raw.decode("utf-8")), pos + arg
        except UnicodeDecodeError:
            raise Malformed("CBOR: text string is not UTF-8") from None
    if major == 7:
        if info == 20:
            return Item("boolean", False), pos
        if info == 21:
            return Item("boolean", True), pos
        if info == 25:
            return Item("float", _half(arg)), pos
        if info == 26:
            return Item("float", struct.unpack("!f", arg.to_bytes(4, "big"))[0]), pos
        if info == 27:
            return Item("float", struct.unpack("!d", arg.to_bytes(8, "big"))[0]), pos
        raise Malformed("CBOR: null, undefined or simple value is not a resource value")
    raise Malformed(f"CBOR: major type {major} (array/map) is not a resource value")


def _half(bits: int) -> float:
    return struct.unpack("!e", bits.to_bytes(2, "big"))[0]
