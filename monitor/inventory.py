"""Device inventory: one `Device` per LwM2M endpoint, folded from the documents of a run.

Facts come only from documents (../shared/EVENTS.md), never from packets, so an NDJSON file
written by `analyze` and a fresh pipeline run give the same inventory. Documents without an
endpoint (DTLS handshakes, OSCORE contexts, some alerts) are attributed through their client
address when exactly one endpoint used that address; otherwise they stay unattributed.

Outputs: `Device` rows, a pandas table (`to_frame`, `write_table`, `read_table`: list columns
as JSON text so CSV and Parquet hold the same thing), and `lwm2m.inventory` state documents.
"""
from __future__ import annotations

import bisect
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from .ecs import base_document, event_id, get_path

# Device object resources worth tracking, by path (OMA object 3).
DEVICE_RESOURCES = {"/3/0/0": "manufacturer", "/3/0/1": "model", "/3/0/3": "firmware_version"}
# Operations whose values the client reports about itself (a server's write is not the truth).
REPORTING_ACTIONS = frozenset({"read", "read-composite", "notify", "observe", "observe-composite", "send"})
FIRMWARE_PACKAGE = "/5/0/0"
REGISTRATION_FIELDS = ("version", "binding", "lifetime")


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A Device resource value seen for the first time, or different from the one before."""

    timestamp: str
    field: str
    path: str
    value: object
    previous: object = None


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """A firmware package body that crossed the wire (block-wise write to /5/0/0, or a read)."""

    timestamp: str
    action: str
    path: str
    sha256: str
    size: int | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class Device:
    endpoint: str | None                       # None: no register/bootstrap-request seen; keyed by client address
    first_seen: str
    last_seen: str
    client_addresses: tuple[str, ...]
    server_addresses: tuple[str, ...]
    security: tuple[str, ...]                  # lwm2m.security values seen
    identities: tuple[str, ...]                # "type:value"
    identity_matches_endpoint: bool | None     # False as soon as one operation's identity did not match
    lwm2m_version: str | None
    binding: str | None
    lifetime: int | None
    objects: tuple[str, ...]
    registration_location: str | None
    manufacturer: str | None
    model: str | None
    firmware_version: str | None
    device_changes: tuple[DeviceChange, ...]
    firmware_images: tuple[FirmwareImage, ...]
    firmware_package_uris: tuple[str, ...]
    operations: int
    registrations: int
    bootstrapped: bool
    registered: bool                           # registered at the end of the data (no deregister after)
    dtls_sessions: int
    dtls_decrypted: int
    alerts: tuple[tuple[str, int], ...]        # (rule.name, alert documents), by name
    alert_total: int
    # Where the last document came from, for the inventory document's addresses and observer.
    last_client: tuple[str, int] | None = None
    last_server: tuple[str, int] | None = None
    observer: str = ""
    live: bool = False


def _addr(doc: dict, key: str) -> tuple[str, int] | None:
    a = doc.get(key)
    if isinstance(a, dict) and isinstance(a.get("ip"), str):
        port = a.get("port")
        return (a["ip"], port if isinstance(port, int) else 0)
    return None


def address_text(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def _observer(doc: dict) -> tuple[str, bool] | None:
    path = get_path(doc, "file.path")
    if isinstance(path, str):
        return path, False
    name = get_path(doc, "observer.ingress.interface.name")
    if isinstance(name, str):
        return name, True
    return None


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool)) and value is not None


@dataclass
class _Builder:
    endpoint: str | None
    first_seen: str = ""
    last_seen: str = ""
    clients: set = field(default_factory=set)
    servers: set = field(default_factory=set)
    security: set = field(default_factory=set)
    identities: set = field(default_factory=set)
    matches: bool | None = None
    registration: dict = field(default_factory=dict)
    location: str | None = None
    objects: tuple = ()
    device: dict = field(default_factory=dict)
    changes: list = field(default_factory=list)
    images: list = field(default_factory=list)
    image_ids: set = field(default_factory=set)
    uris: list = field(default_factory=list)
    operations: int = 0
    registrations: int = 0
    bootstrapped: bool = False
    registered: bool = False
    dtls_sessions: int = 0
    dtls_decrypted: int = 0
    alerts: Counter = field(default_factory=Counter)
    last_client: tuple | None = None
    last_server: tuple | None = None
    observer: tuple[str, bool] | None = None

    def seen(self, doc: dict) -> None:
        ts = doc.get("@timestamp")
        if isinstance(ts, str):
            if not self.first_seen or ts < self.first_seen:
                self.first_seen = ts
            if ts >= self.last_seen:
                self.last_seen = ts
                self.last_client = _addr(doc, "client") or self.last_client
                self.last_server = _addr(doc, "server") or self.last_server
                self.observer = _observer(doc) or self.observer
        c, s = _addr(doc, "client"), _addr(doc, "server")
        if c:
            self.clients.add(c)
        if s:
            self.servers.add(s)

    def operation(self, doc: dict) -> None:
        self.operations += 1
        lw = doc.get("lwm2m") or {}
        action = get_path(doc, "event.action")
        outcome = get_path(doc, "event.outcome")
        ts = doc.get("@timestamp") or ""
        if isinstance(lw.get("security"), str):
            self.security.add(lw["security"])
        ident = lw.get("identity")
        if isinstance(ident, dict) and _scalar(ident.get("value")):
            self.identities.add(f"{ident.get('type', '?')}:{ident['value']}")
            m = ident.get("matches_endpoint")
            if m is False:
                self.matches = False
            elif m is True and self.matches is None:
                self.matches = True
        if action in ("register", "update") and outcome != "failure":
            reg = lw.get("registration") or {}
            for k in REGISTRATION_FIELDS:
                if reg.get(k) is not None:
                    self.registration[k] = reg[k]
            if isinstance(reg.get("location"), str):
                self.location = reg["location"]
            if isinstance(reg.get("objects"), list):
                self.objects = tuple(str(o) for o in reg["objects"])
        if action == "register" and outcome != "failure":
            self.registrations += 1
            self.registered = True
        elif action == "deregister" and outcome != "failure":
            self.registered = False
        elif action == "bootstrap-finish" and outcome == "success":
            self.bootstrapped = True
        if action in REPORTING_ACTIONS and outcome != "failure":
            self._device_values(ts, lw.get("values"))
        self._firmware(doc, ts, action, outcome, lw)

    def _device_values(self, ts: str, values) -> None:
        if not isinstance(values, list):
            return
        for v in values:
            if not isinstance(v, dict):
                continue
            name = DEVICE_RESOURCES.get(v.get("path"))
            value = v.get("value")
            if name is None or not _scalar(value):
                continue
            previous = self.device.get(name)
            if name not in self.device or previous != value:
                self.changes.append(DeviceChange(ts, name, v["path"], value, previous))
                self.device[name] = value

    def _firmware(self, doc: dict, ts: str, action, outcome, lw: dict) -> None:
        uri = get_path(doc, "lwm2m.firmware.package_uri")
        if isinstance(uri, str) and uri not in self.uris:
            self.uris.append(uri)
        path = lw.get("path")
        sha = get_path(doc, "file.hash.sha256")
        size = get_path(doc, "file.size")
        if not isinstance(sha, str):
            for v in lw.get("values") or ():
                val = v.get("value") if isinstance(v, dict) else None
                if v.get("path") == FIRMWARE_PACKAGE and isinstance(val, dict) and isinstance(val.get("sha256"), str):
                    sha, size, path = val["sha256"], val.get("size"), FIRMWARE_PACKAGE
                    break
        if not isinstance(sha, str) or not isinstance(path, str) or not path.startswith("/5/"):
            return
        key = (get_path(doc, "event.id"), sha)
        if key in self.image_ids:
            return
        self.image_ids.add(key)
        self.images.append(FirmwareImage(ts, str(action), path, sha, size if isinstance(size, int) else None,
                                         outcome if isinstance(outcome, str) else None))

    def handshake(self, doc: dict) -> None:
        self.dtls_sessions += 1
        if get_path(doc, "dtls.decrypted") is True:
            self.dtls_decrypted += 1
        ident = get_path(doc, "lwm2m.identity")
        if isinstance(ident, dict) and _scalar(ident.get("value")):
            self.identities.add(f"{ident.get('type', '?')}:{ident['value']}")

    def device_row(self) -> Device:
        obs = self.observer or ("", False)
        return Device(
            endpoint=self.endpoint, first_seen=self.first_seen, last_seen=self.last_seen,
            client_addresses=tuple(address_text(a) for a in sorted(self.clients)),
            server_addresses=tuple(address_text(a) for a in sorted(self.servers)),
            security=tuple(sorted(self.security)), identities=tuple(sorted(self.identities)),
            identity_matches_endpoint=self.matches,
            lwm2m_version=_text(self.registration.get("version")),
            binding=_text(self.registration.get("binding")),
            lifetime=self.registration.get("lifetime") if isinstance(self.registration.get("lifetime"), int) else None,
            objects=self.objects, registration_location=self.location,
            manufacturer=_text(self.device.get("manufacturer")), model=_text(self.device.get("model")),
            firmware_version=_text(self.device.get("firmware_version")),
            device_changes=tuple(self.changes), firmware_images=tuple(self.images),
            firmware_package_uris=tuple(self.uris),
            operations=self.operations, registrations=self.registrations, bootstrapped=self.bootstrapped,
            registered=self.registered, dtls_sessions=self.dtls_sessions, dtls_decrypted=self.dtls_decrypted,
            alerts=tuple(sorted(self.alerts.items())), alert_total=sum(self.alerts.values()),
            last_client=self.last_client, last_server=self.last_server, observer=obs[0], live=obs[1])


def _text(v) -> str | None:
    return None if v is None else str(v)


@dataclass
class Inventory:
    devices: list[Device]
    unattributed_alerts: Counter          # rule.name -> alert documents naming no known endpoint


def _endpoint(doc: dict) -> str | None:
    ep = get_path(doc, "lwm2m.endpoint")
    if isinstance(ep, str) and ep:
        return ep
    if get_path(doc, "event.kind") == "alert":
        hosts = get_path(doc, "related.hosts")
        if isinstance(hosts, list) and hosts and isinstance(hosts[0], str):
            return hosts[0]
    return None


def device_keys(docs: list[dict]) -> list[tuple | None]:
    """Per document, the device it belongs to: (0, endpoint), (1, client address) for a client
    never named, or None (no client address). A document without endpoint goes to the endpoint
    seen nearest in time at its client address: an address:port is one device at a time, and
    ports get reused over time."""
    by_address: dict[tuple, list[tuple[str, str]]] = {}
    for d in docs:
        ep, c = _endpoint(d), _addr(d, "client")
        if ep and c:
            by_address.setdefault(c, []).append((str(d.get("@timestamp", "")), ep))
    for seen in by_address.values():
        seen.sort()
    keys: list[tuple | None] = []
    for d in docs:
        ep, client = _endpoint(d), _addr(d, "client")
        if client is None:              # no client/server roles: either end may be a known client
            client = next((a for a in (_addr(d, "source"), _addr(d, "destination")) if a in by_address), None)
        if ep is None and client is not None and client in by_address:
            ep = _nearest(by_address[client], str(d.get("@timestamp", "")))
        if ep is None and client is None:
            keys.append(None)
            continue
        keys.append((0, ep) if ep is not None else (1, client))
    return keys


def _nearest(seen: list[tuple[str, str]], ts: str) -> str:
    if len({ep for _, ep in seen}) == 1:
        return seen[0][1]
    i = bisect.bisect_left(seen, (ts, ""))
    candidates = seen[max(i - 1, 0): i + 1]
    t = _ts_ns(ts)
    return min(candidates, key=lambda c: abs(_ts_ns(c[0]) - t))[1]


def key_name(key: tuple) -> str:
    return key[1] if key[0] == 0 else f"(unnamed) {address_text(key[1])}"


def build(docs: list[dict], keys: list[tuple | None] | None = None) -> Inventory:
    """The inventory of `docs` (any order; named devices sorted by endpoint, then unnamed ones)."""
    builders: dict[tuple, _Builder] = {}
    unattributed: Counter = Counter()
    keys = keys if keys is not None else device_keys(docs)
    # packet-time order (stable): output order may differ, and history and state depend on order
    order = sorted(range(len(docs)), key=lambda i: str(docs[i].get("@timestamp", "")))
    for i in order:
        d, key = docs[i], keys[i]
        kind, dataset = get_path(d, "event.kind"), get_path(d, "event.dataset")
        if key is None:
            if kind == "alert":
                unattributed[str(get_path(d, "rule.name") or get_path(d, "event.action") or "?")] += 1
            continue
        b = builders.get(key)
        if b is None:
            b = builders[key] = _Builder(key[1] if key[0] == 0 else None)
        b.seen(d)
        if kind == "alert":
            b.alerts[str(get_path(d, "rule.name") or get_path(d, "event.action") or "?")] += 1
        elif dataset == "lwm2m.operation":
            b.operation(d)
        elif dataset == "dtls.handshake":
            b.handshake(d)
    return Inventory([builders[k].device_row() for k in sorted(builders)], unattributed)


def device_name(d: Device) -> str:
    """The endpoint name, or how to recognise a client that never said its name."""
    if d.endpoint is not None:
        return d.endpoint
    return f"(unnamed) {d.client_addresses[0]}" if d.client_addresses else "(unnamed)"


# ---- pandas table -------------------------------------------------------------------------

COLUMNS: dict[str, str] = {                 # column -> pandas dtype (the same after a CSV round trip)
    "endpoint": "string", "first_seen": "string", "last_seen": "string",
    "client_addresses": "string", "server_addresses": "string", "security": "string",
    "identities": "string", "identity_matches_endpoint": "boolean",
    "lwm2m_version": "string", "binding": "string", "lifetime": "Int64", "objects": "string",
    "registration_location": "string",
    "manufacturer": "string", "model": "string", "firmware_version": "string",
    "device_changes": "string", "firmware_images": "string", "firmware_package_uris": "string",
    "operations": "Int64", "registrations": "Int64", "bootstrapped": "boolean", "registered": "boolean",
    "dtls_sessions": "Int64", "dtls_decrypted": "Int64", "alerts": "string", "alert_total": "Int64",
}


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _record(d: Device) -> dict:
    return {
        "endpoint": d.endpoint, "first_seen": d.first_seen, "last_seen": d.last_seen,
        "client_addresses": _json(list(d.client_addresses)), "server_addresses": _json(list(d.server_addresses)),
        "security": _json(list(d.security)), "identities": _json(list(d.identities)),
        "identity_matches_endpoint": d.identity_matches_endpoint,
        "lwm2m_version": d.lwm2m_version, "binding": d.binding, "lifetime": d.lifetime,
        "objects": _json(list(d.objects)), "registration_location": d.registration_location,
        "manufacturer": d.manufacturer, "model": d.model, "firmware_version": d.firmware_version,
        "device_changes": _json([_change(c) for c in d.device_changes]),
        "firmware_images": _json([_image(i) for i in d.firmware_images]),
        "firmware_package_uris": _json(list(d.firmware_package_uris)),
        "operations": d.operations, "registrations": d.registrations, "bootstrapped": d.bootstrapped,
        "registered": d.registered, "dtls_sessions": d.dtls_sessions, "dtls_decrypted": d.dtls_decrypted,
        "alerts": _json(dict(d.alerts)), "alert_total": d.alert_total,
    }


def _change(c: DeviceChange) -> dict:
    return {"timestamp": c.timestamp, "field": c.field, "path": c.path, "value": c.value, "previous": c.previous}


def _image(i: FirmwareImage) -> dict:
    return {"timestamp": i.timestamp, "action": i.action, "path": i.path, "sha256": i.sha256,
            "size": i.size, "outcome": i.outcome}


def to_frame(devices: list[Device]):
    """One row per endpoint; list/dict columns hold JSON text (`json.loads` them back)."""
    import pandas as pd
    frame = pd.DataFrame([_record(d) for d in devices], columns=list(COLUMNS))
    return frame.astype(COLUMNS)


TABLE_FORMATS = ("csv", "parquet")


def table_format(path: str, fmt: str | None = None) -> str | None:
    """The format `write_table` uses for `path`: `fmt` if given, else the extension (.csv,
    .parquet), else CSV for standard output (`-`); None when none of them says."""
    if fmt is not None:
        return fmt
    if path == "-":
        return "csv"
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return ext if ext in TABLE_FORMATS else None


def write_table(frame, path: str, fmt: str | None = None) -> str:
    """CSV or Parquet (`table_format`), to a file or, for `-`, to standard output; returns the
    format written. Raises OSError, ValueError."""
    kind = table_format(path, fmt)
    if kind is None:
        raise ValueError(f"{path}: the table format comes from the extension (.csv or .parquet) or --format")
    if path == "-":
        import sys
        sys.stdout.flush()
        target = sys.stdout.buffer
        if kind == "parquet":
            frame.to_parquet(target, index=False)
        else:
            target.write(frame.to_csv(index=False).encode("utf-8"))
        target.flush()
        return kind
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return kind


def read_table(path: str):
    """A table written by `write_table`, with the dtypes of `to_frame`."""
    import pandas as pd
    if path.lower().endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={k: v for k, v in COLUMNS.items()},
                            keep_default_na=False, na_values=[""])
    return frame[list(COLUMNS)].astype(COLUMNS)


# ---- on screen -----------------------------------------------------------------------------

SCREEN_COLUMNS = (("endpoint", 24), ("first seen", 19), ("last seen", 19), ("clients", 22),
                  ("security", 12), ("identity", 20), ("ver", 4), ("bind", 4), ("lifetime", 8),
                  ("objects", 7), ("manufacturer", 16), ("model", 16), ("firmware", 10),
                  ("images", 6), ("alerts", 6))


def printable(text: str, width: int) -> str:
    """Network text on a terminal: control characters (escape sequences) shown as '?', cut to width."""
    clean = text if text.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def screen_cells(d: Device) -> tuple[str, ...]:
    def opt(v) -> str:
        return "-" if v is None else str(v)
    clients = d.client_addresses[0] + (f" +{len(d.client_addresses) - 1}" if len(d.client_addresses) > 1 else "") \
        if d.client_addresses else "-"
    ident = d.identities[0] + (f" +{len(d.identities) - 1}" if len(d.identities) > 1 else "") if d.identities else "-"
    return (device_name(d), d.first_seen[:19].replace("T", " "), d.last_seen[:19].replace("T", " "), clients,
            ",".join(d.security) or "-", ident, opt(d.lwm2m_version), opt(d.binding), opt(d.lifetime),
            str(len(d.objects)), opt(d.manufacturer), opt(d.model), opt(d.firmware_version),
            str(len(d.firmware_images)), str(d.alert_total))


def format_table(devices: list[Device]) -> str:
    rows = [tuple(h for h, _ in SCREEN_COLUMNS)] + [screen_cells(d) for d in devices]
    cut = [[printable(c, w) for c, (_, w) in zip(r, SCREEN_COLUMNS)] for r in rows]
    widths = [max(len(r[i]) for r in cut) for i in range(len(SCREEN_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cut]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- lwm2m.inventory documents ---------------------------------------------------------------

def _ts_ns(iso: str) -> int:
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0                        # no usable time in the data: the epoch, still deterministic
    return (int(dt.timestamp()) * 1_000_000 + dt.microsecond) * 1000


def inventory_document(d: Device) -> dict:
    """The row as an `event.kind: state` document; its id depends only on the data."""
    client = d.last_client or ("0.0.0.0", 0)
    server = d.last_server or ("0.0.0.0", 0)
    eid = event_id("lwm2m.inventory", d.endpoint, d.client_addresses[:1], d.observer, d.first_seen, d.last_seen)
    doc = base_document(dataset="lwm2m.inventory", action="device-inventory", ts_ns=_ts_ns(d.last_seen),
                        src=client, dst=server, client=d.last_client, server=d.last_server,
                        observer=d.observer, live=d.live, eid=eid, kind="state")
    doc["event"]["start"] = d.first_seen
    doc["event"]["end"] = d.last_seen
    doc["event"]["category"] = ["host"]
    doc["event"]["type"] = ["info"]
    lw: dict = {"endpoint": d.endpoint} if d.endpoint is not None else {}
    reg = {k: v for k, v in (("version", d.lwm2m_version), ("binding", d.binding), ("lifetime", d.lifetime))
           if v is not None}
    if d.objects:
        reg["objects"] = list(d.objects)
    if d.registration_location is not None:
        reg["location"] = d.registration_location
    if reg:
        lw["registration"] = reg
    if d.security:
        lw["security"] = list(d.security)
    if d.identity_matches_endpoint is not None:
        lw["identity"] = {"matches_endpoint": d.identity_matches_endpoint}
    if d.firmware_version is not None:
        lw["device"] = {"firmware_version": d.firmware_version}
    fw: dict = {}
    if d.firmware_images:
        fw["images"] = [_image(i) for i in d.firmware_images]
    if d.firmware_package_uris:
        fw["package_uri"] = list(d.firmware_package_uris)
    if fw:
        lw["firmware"] = fw
    inv: dict = {
        "client_addresses": list(d.client_addresses), "server_addresses": list(d.server_addresses),
        "identities": list(d.identities), "operations": d.operations, "registrations": d.registrations,
        "bootstrapped": d.bootstrapped, "registered": d.registered,
        "dtls_sessions": d.dtls_sessions, "dtls_decrypted": d.dtls_decrypted,
        "alerts": [{"rule": name, "count": n} for name, n in d.alerts], "alert_total": d.alert_total,
    }
    if d.device_changes:
        # values as text: one field, mixed types would conflict in a SIEM mapping
        inv["device_changes"] = [{**_change(c), "value": str(c.value),
                                  "previous": None if c.previous is None else str(c.previous)}
                                 for c in d.device_changes]
    lw["inventory"] = inv
    doc["lwm2m"] = lw
    device = {}
    if d.manufacturer is not None:
        device["manufacturer"] = d.manufacturer
    if d.model is not None:
        device["model"] = {"identifier": d.model}
    if device:
        doc["device"] = device
    related: dict = {"hosts": [d.endpoint]} if d.endpoint is not None else {}
    ips = sorted({a.rsplit(":", 1)[0].strip("[]") for a in d.client_addresses + d.server_addresses})
    if ips:
        related["ip"] = ips
    if d.firmware_images:
        related["hash"] = sorted({i.sha256 for i in d.firmware_images})
    doc["related"] = related
    return doc


def inventory_documents(inventory: Inventory) -> list[dict]:
    return [inventory_document(d) for d in inventory.devices]
