"""Fields every document carries (../shared/EVENTS.md "Every document").

Each document family has its builder (`lwm2m_events`, `dtls_events`, `oscore_events`,
`alerts`); they all start from `base_document` so the common fields are written in one place.
Documents are plain nested dicts; key order is fixed by construction so NDJSON is byte-stable.

The address, network and file namespaces (`source`, `destination`, `client`, `server`,
`network`, `file`, `observer`) are shared between the documents of a flow: built once per
address or flow instead of four to seven dicts per document. Documents are read-only once
built: code that changes one of these namespaces replaces it (`doc["file"] = {**...}`).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
from datetime import datetime, timezone
from typing import Any

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address


_SECOND_TEXT: dict[int, str] = {}


def timestamp(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds, from packet time."""
    secs = ts_ns // 1_000_000_000
    text = _SECOND_TEXT.get(secs)          # "YYYY-MM-DDTHH:MM:SS." of that second
    if text is None:
        if len(_SECOND_TEXT) > 4096:
            _SECOND_TEXT.clear()
        text = _SECOND_TEXT[secs] = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    # zero-padded microseconds without a format spec (this runs for every document)
    return text + str(1_000_000 + ts_ns % 1_000_000_000 // 1000)[1:] + "Z"


def event_id(*parts: object) -> str:
    """Deterministic id: the same capture and keys give the same ids."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def text_id(key: str) -> str:
    """`event_id` of a key the caller wrote as text (per-operation documents: `repr` of the
    parts tuple was most of the cost)."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


MAX_SHARED = 65_536
_ADDRESS_FIELDS: dict[Address, dict] = {}
_NETWORK_FIELDS: dict[str, dict] = {}
_ORIGIN_FIELDS: dict[tuple[str, bool], tuple[str, dict]] = {}


def address_fields(a: Address) -> dict:
    """`{"ip", "port"}` of an address: one shared (read-only) dict per address."""
    d = _ADDRESS_FIELDS.get(a)
    if d is None:
        if len(_ADDRESS_FIELDS) >= MAX_SHARED:
            _ADDRESS_FIELDS.clear()
        d = _ADDRESS_FIELDS[a] = {"ip": a[0], "port": a[1]}
    return d


def _network_fields(community: str) -> dict:
    d = _NETWORK_FIELDS.get(community)
    if d is None:
        if len(_NETWORK_FIELDS) >= MAX_SHARED:
            _NETWORK_FIELDS.clear()
        d = _NETWORK_FIELDS[community] = {"transport": "udp", "community_id": community}
    return d


def _origin_fields(observer: str, live: bool) -> tuple[str, dict]:
    """("observer", {...}) for a live interface, ("file", {"path"}) for a capture file."""
    key = (observer, live)
    o = _ORIGIN_FIELDS.get(key)
    if o is None:
        if len(_ORIGIN_FIELDS) >= MAX_SHARED:
            _ORIGIN_FIELDS.clear()
        o = _ORIGIN_FIELDS[key] = (("observer", {"ingress": {"interface": {"name": observer}}}) if live
                                   else ("file", {"path": observer}))
    return o


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
    sip, dip = _packed(src[0]), _packed(dst[0])
    sport, dport = src[1], dst[1]
    if (sip, sport) > (dip, dport):
        sip, dip, sport, dport = dip, sip, dport, sport
    data = struct.pack("!H", seed) + sip + dip + struct.pack("!BBHH", proto, 0, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def _packed(ip: str) -> bytes:
    # inet_pton: a tenth of ipaddress's cost, paid per new flow; ipaddress for the rest (a scope id)
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        return ipaddress.ip_address(ip).packed


def base_document(*, dataset: str, action: str, ts_ns: int, src: Address, dst: Address,
                  client: Address | None, server: Address | None, observer: str, live: bool,
                  eid: str, outcome: str | None = None, kind: str = "event",
                  community: str | None = None) -> dict:
    event: dict = {"kind": kind, "dataset": dataset, "action": action}
    if outcome is not None:
        event["outcome"] = outcome
    event["id"] = eid
    source, destination = address_fields(src), address_fields(dst)
    doc: dict = {"@timestamp": timestamp(ts_ns), "event": event, "source": source, "destination": destination}
    if client is not None:                   # client and server are mostly source and destination
        doc["client"] = source if client == src else destination if client == dst else address_fields(client)
    if server is not None:
        doc["server"] = destination if server == dst else source if server == src else address_fields(server)
    doc["network"] = _network_fields(community if community is not None else community_id(src, dst))
    name, origin = _origin_fields(observer, live)
    doc[name] = origin
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
