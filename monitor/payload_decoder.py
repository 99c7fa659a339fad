"""LwM2M payload → typed values: the one entry point the pipeline calls per payload.

`decode_payload(payload, content_format, request_path, model)` never raises: a payload it
cannot read gives a `DecodedPayload` whose `error` says why, with whatever values were read
before the problem. Types come from the object model when the format carries none (TLV,
text/plain) or an ambiguous one (a SenML number); a resource the model does not know is typed
by its encoding, and in TLV (no encoding types at all) it is opaque. Secret resources (see
`objects.is_secret`) carry `redact()`'s digest as their value; their bytes stay in
`Value.raw`, which is never printed, so the pipeline can harvest provisioned keys.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import math
import re
from dataclasses import dataclass, field

from parsers import cbor_value, linkformat, lwm2m_cbor, lwm2m_json, senml, tlv
from parsers import content_formats as cf
from parsers.errors import ParseError
from parsers.linkformat import Link

from .objects import ObjectModel, ResourceDef, is_secret

_PATH = re.compile(r"/?([0-9]{1,5})(?:/([0-9]{1,5}))?(?:/([0-9]{1,5}))?(?:/([0-9]{1,5}))?/?")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_OBJLNK_TEXT = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Value:
    """One resource (instance) value. `value` is JSON-able: opaque as hex, objlnk "OID:IID",
    time as integer seconds, non-finite floats as "NaN"/"Infinity"/"-Infinity"."""

    path: str
    type: str
    value: object
    name: str | None = None
    timestamp: float | int | None = None
    secret: bool = False
    raw: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    values: list[Value] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    error: str | None = None
    cbor: object = None


def redact(value: Value | bytes | bytearray | str) -> dict:
    """What output shows instead of a secret: the first 8 hex digits of SHA-256 of its bytes,
    enough to tell two keys apart without revealing either."""
    if isinstance(value, Value):
        raw = value.raw if value.raw is not None else _bytes_of(value.value)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = _bytes_of(value)
    return {"redacted": True, "sha256_8": hashlib.sha256(raw).hexdigest()[:8]}


def decode_payload(payload: bytes, content_format: int | None, request_path: str,
                   model: ObjectModel) -> DecodedPayload:
    builder = _Builder(model)
    cbor_item = None
    try:
        if not payload:
            return DecodedPayload()
        if content_format in (cf.LWM2M_TLV, cf.LWM2M_TLV_OLD):
            entries, problem = tlv.decode_partial(payload)
            _from_tlv(builder, entries, _path_ids(request_path))
            if problem is not None:
                raise problem
        elif content_format in (cf.SENML_JSON, cf.LWM2M_JSON, cf.LWM2M_JSON_OLD, cf.SENML_CBOR):
            if content_format == cf.SENML_JSON:
                records = senml.decode_json(payload)
            elif content_format == cf.SENML_CBOR:
                records = senml.decode_cbor(payload)
            else:
                records = lwm2m_json.decode(payload)
            _from_records(builder, records)
        elif content_format == cf.LWM2M_CBOR:
            for leaf in lwm2m_cbor.decode(payload):
                builder.add_encoded(leaf.path, _cbor_leaf(leaf.value), None)
        elif content_format == cf.CBOR:
            try:
                cbor_item = senml.load_cbor(payload, "CBOR")
            except ParseError:
                cbor_item = None
            _from_cbor_value(builder, cbor_value.decode(payload), _path_ids(request_path))
        elif content_format == cf.TEXT_PLAIN or content_format is None and _is_text(payload):
            _from_text(builder, payload, _path_ids(request_path))
        elif content_format == cf.OCTET_STREAM or content_format is None:
            ids = _path_ids(request_path)
            builder.add(ids, "opaque", payload.hex(), bytes(payload))
        elif content_format == cf.LINK_FORMAT:
            links = linkformat.parse(payload)
            builder.links = links
            builder.paths.extend(linkformat.lwm2m_paths(links)[1])
        elif content_format == cf.JSON:
            senml.load_json(payload, "JSON")   # validity only; plain JSON is no LwM2M format
        else:
            builder.error = f"content-format {cf.lookup(content_format)} not decoded"
    except ParseError as exc:
        builder.error = str(exc) if builder.error is None else builder.error
    if cbor_item is not None and any(v.secret for v in builder.values):
        cbor_item = builder.values[0].value    # the generic decode holds the same secret
    return DecodedPayload(builder.values, builder.paths, builder.links, builder.error, cbor_item)


class _Builder:
    """Collects values, typing each by the model; records the first problem as the error."""

    def __init__(self, model: ObjectModel):
        self.model = model
        self.values: list[Value] = []
        self.paths: list[str] = []
        self.links: list[Link] = []
        self.error: str | None = None

    def fail(self, text: str) -> None:
        if self.error is None:
            self.error = text

    def resource(self, ids: tuple[int, ...]) -> ResourceDef | None:
        return self.model.resource(ids[0], ids[2]) if len(ids) >= 3 else None

    @staticmethod
    def secret(ids: tuple[int, ...], res: ResourceDef | None) -> bool:
        return len(ids) >= 3 and is_secret(ids[0], ids[2], res)

    def add(self, ids: tuple[int, ...] | None, type_: str, value: object, raw: bytes | None,
            timestamp=None) -> None:
        if ids is None or len(ids) < 3:
            self.fail(f"value without a resource path: {_path_text(ids)}")
            return
        res = self.resource(ids)
        secret = self.secret(ids, res)
        if isinstance(value, float) and not math.isfinite(value):
            value = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if secret:
            if raw is None:
                raw = _bytes_of(value)
            value = redact(raw)
        self.values.append(Value(_path_text(ids), type_, value, res.name if res else None,
                                 timestamp, secret, raw))

    def add_typed_bytes(self, ids: tuple[int, ...], data: bytes) -> None:
        """TLV leaf: bytes typed by the model; bytes that do not fit the type stay opaque."""
        res = self.resource(ids)
        kind = res.type if res is not None else "opaque"
        try:
            value = _tlv_value(kind, data)
        except ParseError as exc:
            self.fail(f"{_path_text(ids)}: {exc}")
            kind, value = "opaque", data.hex()
        self.add(ids, kind, value, bytes(data))

    def add_encoded(self, ids: tuple[int, ...], item: tuple[str, object] | None, timestamp) -> None:
        """A value whose encoding says what it is (SenML label, CBOR major type); the model
        refines numbers and strings (time, unsigned, objlnk, corelnk)."""
        if item is None:
            self.fail(f"{_path_text(ids)}: value of an unsupported CBOR type")
            return
        kind, value = item
        res = self.resource(ids)
        model_type = res.type if res is not None else None
        raw = None
        if kind == "number":
            kind, value = _number_as(model_type, value)
        elif kind == "string":
            raw = value.encode("utf-8")
            if model_type in ("objlnk", "corelnk") and (model_type == "corelnk" or _OBJLNK_TEXT.fullmatch(value)):
                kind = model_type
        elif kind == "opaque":
            raw, value = bytes(value), bytes(value).hex()
        elif kind == "objlnk" and not _OBJLNK_TEXT.fullmatch(value) and not self.secret(ids, res):
            # (a key resource's value, however encoded, is added and so redacted, never quoted)
            self.fail(f"{_path_text(ids)}: object link {value!r} is not OID:IID")
            return
        self.add(ids, kind, value, raw, timestamp)


def _from_tlv(b: _Builder, entries: list[tlv.TlvEntry], base: tuple[int, ...] | None) -> None:
    if base is None or not base:
        b.fail("TLV payload without an object in the request path")
        return
    oid = base[:1]
    for e in entries:
        if e.kind == tlv.Kind.OBJECT_INSTANCE:
            for child in e.children:
                _tlv_resource(b, oid + (e.identifier,), child)
        elif e.kind == tlv.Kind.RESOURCE_INSTANCE:
            if len(base) < 3:
                b.fail("TLV resource instance without a resource in the request path")
                return
            b.add_typed_bytes(base[:3] + (e.identifier,), e.value)
        else:
            if len(base) < 2:
                b.fail("TLV resource without an object instance in the request path")
                return
            _tlv_resource(b, base[:2], e)


def _tlv_resource(b: _Builder, instance: tuple[int, ...], e: tlv.TlvEntry) -> None:
    ids = instance + (e.identifier,)
    if e.kind == tlv.Kind.MULTIPLE_RESOURCE:
        for child in e.children:
            b.add_typed_bytes(ids + (child.identifier,), child.value)
    else:
        b.add_typed_bytes(ids, e.value)


def _tlv_value(kind: str, data: bytes) -> object:
    if kind in ("string", "corelnk"):
        return tlv.as_string(data)
    if kind in ("integer", "time"):
        return tlv.as_integer(data)
    if kind == "unsigned":
        return tlv.as_unsigned(data)
    if kind == "float":
        return tlv.as_float(data)
    if kind == "boolean":
        return tlv.as_boolean(data)
    if kind == "objlnk":
        oid, iid = tlv.as_objlnk(data)
        return f"{oid}:{iid}"
    return data.hex()   # opaque, none


def _from_records(b: _Builder, records: list[senml.Record]) -> None:
    for rec in records:
        ids = _path_ids(rec.name)
        if ids is None:
            b.fail(f"SenML name {rec.name!r} is not an LwM2M path")
            continue
        if rec.kind is None:
            b.paths.append(_path_text(ids))
            continue
        if len(ids) < 3:
            b.fail(f"value for {rec.name!r}, which is not a resource")
            continue
        item = {"v": "number", "vs": "string", "vb": "boolean", "vd": "opaque",
                "vlo": "objlnk"}[rec.kind]
        b.add_encoded(ids, (item, rec.value), rec.time)


def _from_cbor_value(b: _Builder, item: cbor_value.Item, ids: tuple[int, ...] | None) -> None:
    if ids is None or len(ids) < 3:
        b.fail("CBOR single value without a resource in the request path")
        return
    res = b.resource(ids)
    model_type = res.type if res is not None else None
    kind, value, raw = item.kind, item.value, None
    if kind == "opaque":
        raw, value = bytes(value), bytes(value).hex()
    elif kind == "string":
        raw = value.encode("utf-8")
        if model_type == "objlnk" and _OBJLNK_TEXT.fullmatch(value) or model_type == "corelnk":
            kind = model_type
    elif kind == "integer" and model_type == "time" or kind == "integer" and model_type == "unsigned" and value >= 0:
        kind = model_type
    b.add(ids, kind, value, raw)


def _from_text(b: _Builder, payload: bytes, ids: tuple[int, ...] | None) -> None:
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        b.fail("text/plain payload is not UTF-8")
        return
    if ids is None or len(ids) < 3:
        b.fail("text/plain value without a resource in the request path")
        return
    res = b.resource(ids)
    kind = res.type if res is not None else "string"
    stripped = text.strip()
    if kind in ("integer", "time", "unsigned"):
        if not _INTEGER_TEXT.fullmatch(stripped) or kind == "unsigned" and stripped.startswith("-"):
            b.fail(f"text/plain {kind} {stripped[:32]!r} is not a number")
            return
        b.add(ids, kind, int(stripped), None)
    elif kind == "float":
        try:
            b.add(ids, kind, float(stripped), None)
        except ValueError:
            b.fail(f"text/plain float {stripped[:32]!r} is not a number")
    elif kind == "boolean":
        if stripped not in ("0", "1"):
            b.fail("text/plain boolean is not 0 or 1")
            return
        b.add(ids, kind, stripped == "1", None)
    elif kind == "opaque":
        try:
            raw = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            b.fail("text/plain opaque is not base64")
            return
        b.add(ids, kind, raw.hex(), raw)
    elif kind == "objlnk":
        if not _OBJLNK_TEXT.fullmatch(stripped):
            b.fail("text/plain object link is not OID:IID")
            return
        b.add(ids, kind, stripped, None)
    else:   # string, corelnk, none
        b.add(ids, "string" if kind == "none" else kind, text, text.encode("utf-8"))


def _number_as(model_type: str | None, number) -> tuple[str, object]:
    """A SenML/JSON number typed by the model; without one, by how it was written."""
    integral = isinstance(number, int) or number.is_integer()
    if model_type in ("integer", "unsigned", "time") and integral:
        value = int(number)
        if model_type == "integer" and value > INT64_MAX:
            return "unsigned", value
        if model_type == "unsigned" and value < 0:
            return "integer", value
        return model_type, value
    if model_type == "time" and math.isfinite(number):
        return "time", int(number)      # fractional seconds dropped: time is whole seconds
    if model_type == "float" or not isinstance(number, int):
        return "float", float(number)
    return ("unsigned" if number > INT64_MAX else "integer"), number


def _cbor_leaf(value) -> tuple[str, object] | None:
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, (int, float)):
        return "number", value
    if isinstance(value, str):
        return "string", value
    if isinstance(value, (bytes, bytearray)):
        return "opaque", bytes(value)
    if isinstance(value, datetime.datetime):           # tag 1 (epoch time), as LwM2M CBOR sends Time
        return "time", int(value.timestamp())
    return None


def _path_ids(path: str | None) -> tuple[int, ...] | None:
    if path is None:
        return None
    if path in ("", "/"):
        return ()
    m = _PATH.fullmatch(path)
    if m is None:
        return None
    ids = tuple(int(g) for g in m.groups() if g is not None)
    return ids if all(i <= 65535 for i in ids) else None


def _path_text(ids: tuple[int, ...] | None) -> str:
    return "/" + "/".join(str(i) for i in ids) if ids else "/"


def _is_text(payload: bytes) -> bool:
    try:
        return bytes(payload).decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _bytes_of(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8")
