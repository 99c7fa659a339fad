"""Fields every document carries (../shared/EVENTS.md "Every document").

Each document family has its builder (`lwm2m_events`, `dtls_events`, `oscore_events`,
`alerts`); they all start from `base_document` so the common fields are written in one place.
Documents are plain nested dicts; key order is fixed by construction so NDJSON is byte-stable.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct
from datetime import datetime, timezone
from typing import Any

Address = tuple[str, int]


_SECOND_TEXT: dict[int, str] = {}


def timestamp(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds, from packet time."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    text = _SECOND_TEXT.get(secs)
    if text is None:
        if len(_SECOND_TEXT) > 4096:
            _SECOND_TEXT.clear()
        text = _SECOND_TEXT[secs] = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ns // 1000:06d}Z"


def event_id(*parts: object) -> str:
    """Deterministic id: the same capture and keys give the same ids."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


_COMMUNITY: dict[tuple, str] = {}


def community_id(src: Address, dst: Address, proto: int = 17, seed: int = 0) -> str:
    """Community ID v1 flow hash (corelight/community-id-spec), ordered so both directions agree."""
    # the hash is the same both ways, so one cache entry serves both directions
    key = (src, dst, proto, seed) if src <= dst else (dst, src, proto, seed)
    cid = _COMMUNITY.get(key)
    if cid is None:
        if len(_COMMUNITY) > 65536:
            _COMMUNITY.clear()
        cid = _COMMUNITY[key] = _community_id(src, dst, proto, seed)
    return cid


def _community_id(src: Address, dst: Address, proto: int, seed: int) -> str:
    sip, dip = ipaddress.ip_address(src[0]).packed, ipaddress.ip_address(dst[0]).packed
    sport, dport = src[1], dst[1]
    if (sip, sport) > (dip, dport):
        sip, dip, sport, dport = dip, sip, dport, sport
    data = struct.pack("!H", seed) + sip + dip + struct.pack("!BBHH", proto, 0, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def base_document(*, dataset: str, action: str, ts_ns: int, src: Address, dst: Address,
                  client: Address | None, server: Address | None, observer: str, live: bool,
                  eid: str, outcome: str | None = None, kind: str = "event",
                  community: str | None = None) -> dict:
    event: dict = {"kind": kind, "dataset": dataset, "action": action}
    if outcome is not None:
        event["outcome"] = outcome
    event["id"] = eid
    doc: dict = {
        "@timestamp": timestamp(ts_ns),
        "event": event,
        "source": {"ip": src[0], "port": src[1]},
        "destination": {"ip": dst[0], "port": dst[1]},
    }
    if client is not None:
        doc["client"] = {"ip": client[0], "port": client[1]}
    if server is not None:
        doc["server"] = {"ip": server[0], "port": server[1]}
    doc["network"] = {"transport": "udp",
                      "community_id": community if community is not None else community_id(src, dst)}
    if live:
        doc["observer"] = {"ingress": {"interface": {"name": observer}}}
    else:
        doc["file"] = {"path": observer}
    return doc


def set_path(doc: dict, dotted: str, value) -> None:
    """Set a dotted field in a nested document (for callers that hold flat names)."""
    cur: Any = doc
    parts = dotted.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def get_path(doc: dict, dotted: str, default=None):
    cur: Any = doc                # any JSON value on the way (mypyc: not checked as a dict)
    for p in dotted.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur
