"""`lwm2m.alert` documents (../shared/EVENTS.md "Alerts"): the one place writing alert fields.

An alert starts from the triggering document's time and addresses, names the rule, says in one
sentence what was seen, and copies the evidence (`lwm2m.*`, `client.*`, `server.*`, `tls.*`,
`dtls.*`, `oscore.*`). Ids derive from the rule id and the triggering ids: deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .ecs import base_document, event_id

SEVERITY = {"informational": 1, "low": 1, "medium": 2, "high": 3, "critical": 4}
RISK_SCORE = {"informational": 10, "low": 21, "medium": 47, "high": 73, "critical": 99}
EVIDENCE = ("lwm2m", "client", "server", "tls", "dtls", "oscore", "coap")
MAX_RELATED_IDS = 20


@dataclass(frozen=True)
class RuleInfo:
    """What an alert says about the rule that raised it."""

    name: str
    id: str
    title: str
    description: str
    references: tuple[str, ...]
    category: str
    tags: tuple[str, ...]


def ts_ns(iso: str) -> int:
    """Packet time back from `@timestamp` (microsecond precision, as written by ecs.timestamp)."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (int(dt.timestamp()) * 1_000_000 + dt.microsecond) * 1000


_LEAVES = frozenset((str, int, float, bool, type(None)))


def _copy(value):
    # leaves are copied inline: most values are scalars, and a call per scalar dominated
    if isinstance(value, dict):
        return {k: v if v.__class__ in _LEAVES else _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if v.__class__ in _LEAVES else _copy(v) for v in value]
    return value


def _addr(doc: dict, key: str) -> tuple[str, int] | None:
    a = doc.get(key)
    if isinstance(a, dict) and "ip" in a:
        return (a["ip"], a.get("port", 0))
    return None


def _where(doc: dict, addrs: dict | None = None) -> str:
    a = addrs if addrs is not None else _addresses(doc)
    c, s = a["client"], a["server"]
    if c and s:
        return f"between client {c[0]}:{c[1]} and server {s[0]}:{s[1]}"
    src, dst = a["source"], a["destination"]
    if src and dst:
        return f"from {src[0]}:{src[1]} to {dst[0]}:{dst[1]}"
    return "at an unknown address"


def _addresses(doc: dict) -> dict[str, tuple[str, int] | None]:
    return {k: _addr(doc, k) for k in ("client", "server", "source", "destination")}


def message(rule: RuleInfo, doc: dict, count: int = 1, group: str | None = None,
            addrs: dict | None = None) -> str:
    lw = doc.get("lwm2m") or {}
    ep = lw.get("endpoint")
    ident = (lw.get("identity") or {}).get("value")
    if ep:
        who = f"endpoint {ep}"
    elif ident is not None:
        who = f"no endpoint name yet, {(lw.get('identity') or {}).get('type', '')} identity {ident}".replace("  ", " ")
    else:
        who = "no known endpoint"
    what = rule.title.rstrip(".")
    path = (doc.get("lwm2m") or {}).get("path")
    detail = f" on {path}" if path and path != "/" else ""
    times = f" ({count} times)" if count > 1 else ""
    grp = f" [{group}]" if group else ""
    return f"{what}{detail}{times}: {who}, {_where(doc, addrs)}{grp}."


def alert_document(rule: RuleInfo, level: str, trigger: dict, *, related_ids: list[str],
                   count: int = 1, first: str | None = None, last: str | None = None,
                   group: str | None = None, folded: bool = False, owned: bool = False) -> dict:
    """One alert about `trigger` (the latest matching document when folded). With `owned`, the
    trigger is the alert's own (decoded from a fold's evidence line): its parts are taken, not
    copied."""
    addrs = _addresses(trigger)              # read once: the message and related.ip use them too
    src = addrs["source"] or ("0.0.0.0", 0)
    dst = addrs["destination"] or ("0.0.0.0", 0)
    f = trigger.get("file")
    observer, live = (f["path"], False) if isinstance(f, dict) and "path" in f else (
        str(((trigger.get("observer") or {}).get("ingress") or {}).get("interface", {}).get("name", "")), True)
    eid = event_id("alert", rule.id, "folded" if folded else "first", count, *related_ids[:2], *related_ids[-1:])
    doc = base_document(dataset="lwm2m.alert", action=rule.name, ts_ns=ts_ns(trigger["@timestamp"]),
                        src=src, dst=dst, client=addrs["client"], server=addrs["server"],
                        observer=observer, live=live, eid=eid, kind="alert")
    ev = doc["event"]
    ev["severity"] = SEVERITY[level]
    ev["risk_score"] = RISK_SCORE[level]
    ev["count"] = count
    ev["start"] = first or trigger["@timestamp"]
    ev["end"] = last or trigger["@timestamp"]
    ev["category"] = ["intrusion_detection"]
    ev["type"] = ["indicator"]
    ev["reason"] = rule.title
    doc["message"] = message(rule, trigger, count, group, addrs)
    doc["rule"] = {"name": rule.name, "id": rule.id, "description": rule.description,
                   "reference": list(rule.references), "category": rule.category,
                   "ruleset": "lwm2m-monitor", "level": level}
    if folded:
        doc["rule"]["folded"] = True
    if rule.tags:
        doc["tags"] = list(rule.tags)
    for key in EVIDENCE:
        if key in trigger and key not in ("client", "server"):
            doc[key] = trigger[key] if owned else _copy(trigger[key])
    hosts: list[str] = []
    ep = (trigger.get("lwm2m") or {}).get("endpoint")
    if ep:
        hosts.append(ep)
    ips: list[str] = []
    for a in addrs.values():
        if a and a[0] not in ips:
            ips.append(a[0])
    users: list[str] = []
    for ident in ((trigger.get("lwm2m") or {}).get("identity", {}).get("value"),
                  (trigger.get("dtls") or {}).get("psk_identity")):
        if isinstance(ident, str) and ident not in users:
            users.append(ident)
    doc["related"] = {**({"hosts": hosts} if hosts else {}), "ip": ips, **({"user": users} if users else {}),
                      "id": related_ids[:MAX_RELATED_IDS]}
    return doc
