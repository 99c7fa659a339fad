"""OMA LwM2M CBOR reader (Content-Format 11544, TS Core 1.2 §7.4.6).

The payload is a CBOR map whose keys are path components, either one unsigned integer or an
array of them; a nested map goes one level deeper, any other value is a leaf. `decode(data)`
returns the leaves as (path, CBOR value) in payload order, or raises `Truncated`/`Malformed`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import Malformed
from .senml import load_cbor

MAX_DEPTH = 4   # object / instance / resource / resource instance


@dataclass(frozen=True, slots=True)
class Leaf:
    path: tuple[int, ...]
    value: object        # int, float, str, bytes, bool, or a cbor2 tagged value


def decode(data: bytes) -> list[Leaf]:
    root = load_cbor(data, "LwM2M CBOR")
    if not isinstance(root, dict):
        raise Malformed("LwM2M CBOR: top level is not a map")
    leaves: list[Leaf] = []
    _walk(root, (), leaves)
    return leaves


def _walk(node: dict, prefix: tuple[int, ...], out: list[Leaf]) -> None:
    for key, value in node.items():
        path = prefix + _components(key)
        if len(path) > MAX_DEPTH:
            raise Malformed(f"LwM2M CBOR: path {'/'.join(map(str, path))} deeper than {MAX_DEPTH}")
        if isinstance(value, dict):
            _walk(value, path, out)
        elif isinstance(value, list):
            raise Malformed(f"LwM2M CBOR: array value at /{'/'.join(map(str, path))}")
        else:
            if not path:
                raise Malformed("LwM2M CBOR: value without a path")
            out.append(Leaf(path, value))


def _components(key) -> tuple[int, ...]:
    parts = key if isinstance(key, (list, tuple)) else (key,)
    if not parts:
        raise Malformed("LwM2M CBOR: empty path array as key")
    for p in parts:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535:
            raise Malformed(f"LwM2M CBOR: key {key!r} is not a path component")
    return tuple(parts)
