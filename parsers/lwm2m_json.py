"""OMA LwM2M JSON reader (Content-Format 11543, TS 1.0 §6.4.4): `{"bn", "bt", "e": [...]}`.

`decode(data)` returns SenML-style resolved records (name = bn + n, time = bt + t) or raises
`Truncated`/`Malformed`. Value labels map onto SenML's: v → v, sv → vs, bv → vb, ov → vlo
(object link "OID:IID"); LwM2M JSON has no opaque label (opaque travels base64 in sv).
"""
from __future__ import annotations

from .errors import Malformed
from .senml import Record, load_json, resolve

_LABELS = {"n": "n", "v": "v", "sv": "vs", "bv": "vb", "ov": "vlo", "t": "t"}


def decode(data: bytes) -> list[Record]:
    doc = load_json(data, "LwM2M JSON")
    if not isinstance(doc, dict):
        raise Malformed("LwM2M JSON: top level is not an object")
    entries = doc.get("e")
    if not isinstance(entries, list):
        raise Malformed("LwM2M JSON: no e array")
    base: dict = {}
    if "bn" in doc:
        base["bn"] = doc["bn"]
    if "bt" in doc:
        base["bt"] = doc["bt"]
    records = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise Malformed("LwM2M JSON: entry is not an object")
        rec = {_LABELS[k]: v for k, v in entry.items() if k in _LABELS}
        records.append(rec)
    if records:
        records[0] = {**base, **records[0]}
    return resolve(records, binary_vd=False)
