"""SenML reader (RFC 8428) for Content-Formats 110 (senml+json) and 112 (senml+cbor).

`decode_json(data)` / `decode_cbor(data)` return resolved records (base name, base time and
base value applied, RFC 8428 §4.6) or raise `Truncated`/`Malformed`. The LwM2M `vlo`
(object link) value label is accepted in both encodings. Types are left to the caller: the
record says which value label carried the value, the object model says what it means.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO

import cbor2

from .errors import Malformed, Truncated

Number = int | float

# RFC 8428 §6 CBOR labels.
CBOR_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs",
               0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}
VALUE_LABELS = ("v", "vs", "vb", "vd", "vlo")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


@dataclass(frozen=True, slots=True)
class Record:
    """One resolved record: `kind` is the value label ("v", "vs", "vb", "vd", "vlo") or None
    for a name-only record (a Read-Composite path); `time` is None when no bt/t was given."""

    name: str
    kind: str | None
    value: Number | str | bool | bytes | None
    time: Number | None = None
    unit: str | None = None


def decode_json(data: bytes) -> list[Record]:
    doc = load_json(data, "SenML JSON")
    if not isinstance(doc, list):
        raise Malformed("SenML JSON: top level is not an array")
    return resolve(doc, binary_vd=False)


def decode_cbor(data: bytes) -> list[Record]:
    doc = load_cbor(data, "SenML CBOR")
    if not isinstance(doc, list):
        raise Malformed("SenML CBOR: top level is not an array")
    records = []
    for rec in doc:
        if not isinstance(rec, dict):
            raise Malformed("SenML CBOR: record is not a map")
        named = {}
        for label, value in rec.items():
            name = CBOR_LABELS.get(label, label) if isinstance(label, int) else label
            if not isinstance(name, str):
                raise Malformed(f"SenML CBOR: label {label!r} is neither integer nor text")
            named[name] = _plain_number(value)
        records.append(named)
    return resolve(records, binary_vd=True)


def resolve(records: list, *, binary_vd: bool) -> list[Record]:
    """RFC 8428 §4.6: base fields persist until the next record that sets them."""
    out: list[Record] = []
    bn, bt, bv, bu = "", None, None, None
    for rec in records:
        if not isinstance(rec, dict):
            raise Malformed("SenML: record is not an object")
        if "bn" in rec:
            bn = _expect(rec["bn"], str, "bn")
        if "bt" in rec:
            bt = _number(rec["bt"], "bt")
        if "bv" in rec:
            bv = _number(rec["bv"], "bv")
        if "bu" in rec:
            bu = _expect(rec["bu"], str, "bu")
        name = bn + _expect(rec.get("n", ""), str, "n")
        t = _number(rec["t"], "t") if "t" in rec else None
        time = None if bt is None and t is None else (bt or 0) + (t or 0)
        present = [k for k in VALUE_LABELS if k in rec]
        if len(present) > 1:
            raise Malformed(f"SenML: record {name!r} has several values {present}")
        kind = present[0] if present else None
        value = None
        if kind == "v":
            value = _number(rec["v"], "v")
            if bv is not None:
                value = value + bv
        elif kind == "vs":
            value = _expect(rec["vs"], str, "vs")
        elif kind == "vb":
            value = _expect(rec["vb"], bool, "vb")
        elif kind == "vd":
            value = _expect(rec["vd"], bytes, "vd") if binary_vd else b64url(rec["vd"])
        elif kind == "vlo":
            value = _expect(rec["vlo"], str, "vlo")
        elif bv is not None and "s" not in rec:
            kind, value = "v", bv   # a record with only a base value carries that value
        unit = rec.get("u", bu)
        out.append(Record(name, kind, value, time, unit if isinstance(unit, str) else None))
    return out


def b64url(text: object) -> bytes:
    """SenML `vd` in JSON: base64url, padding optional (RFC 8428 §5)."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise Malformed("SenML: vd is not base64url")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise Malformed("SenML: vd has an impossible base64 length")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise Malformed("SenML: vd is not base64url") from None


def load_json(data: bytes, what: str):
    """Strict JSON (no NaN/Infinity literals), integers kept exact."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{what}: not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        raise (Truncated if ends_early else Malformed)(f"{what}: {exc.msg} at {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"{what}: {exc}") from None


def load_cbor(data: bytes, what: str):
    """One CBOR data item filling the whole payload."""
    fp = BytesIO(bytes(data))
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except cbor2.CBORDecodeEOF as exc:
        raise Truncated(f"{what}: {exc}") from None
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError,
            MemoryError, LookupError) as exc:
        raise Malformed(f"{what}: {exc}") from None
    if fp.tell() != len(data):
        raise Malformed(f"{what}: {len(data) - fp.tell()} bytes after the CBOR item")
    return item


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _plain_number(value):
    # CBOR tag 4 (decimal fraction), as Leshan encodes bt, arrives as Decimal.
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value.adjusted()) > 40:
            raise Malformed("SenML CBOR: decimal fraction out of range")
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _number(value, label: str) -> Number:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Malformed(f"SenML: {label} is not a number")
    if isinstance(value, float) and label in ("bt", "t") and not math.isfinite(value):
        raise Malformed(f"SenML: {label} is not finite")
    return value


def _expect(value, kind: type, label: str):
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise Malformed(f"SenML: {label} is not {kind.__name__}")
    return value
