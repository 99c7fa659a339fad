"""The rule catalog as Elasticsearch queries and Kibana detection rules (pySigma ES backend).

Queries come from `sigma.backends.elasticsearch` (LuceneBackend / EqlBackend) with a small
processing pipeline that turns the logsource category into `event.dataset:<category>`, the
same pre-filter the in-pipeline engine applies. The Kibana NDJSON is written here rather than
with the backend's `siem_rule_ndjson` format because that format downloads the MITRE data at
conversion time (the sensor may be offline) and has no threshold rules for correlations.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import yaml
from sigma.backends.elasticsearch import EqlBackend, LuceneBackend
from sigma.collection import SigmaCollection
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import AddConditionTransformation

from .alerts import RISK_SCORE
from .rule_engine import Correlation, Rule, RuleEngine

DATASETS = ("lwm2m.operation", "dtls.handshake", "dtls.alert", "oscore.context", "coap.request")
INDEX_ALL = ["logs-lwm2m.*-*", "logs-dtls.*-*", "logs-oscore.*-*"]
KIBANA_SEVERITY = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}

# MITRE ATT&CK (for ICS where it has the technique) of the tags the catalog uses.
TECHNIQUES = {
    "t0830": ("Adversary-in-the-Middle", "TA0100", "Collection"),
    "t0842": ("Network Sniffing", "TA0102", "Discovery"),
    "t0846": ("Remote System Discovery", "TA0102", "Discovery"),
    "t0888": ("Remote System Information Discovery", "TA0102", "Discovery"),
    "t0848": ("Rogue Master", "TA0108", "Initial Access"),
    "t0849": ("Masquerading", "TA0103", "Evasion"),
    "t0859": ("Valid Accounts", "TA0110", "Persistence"),
    "t0816": ("Device Restart/Shutdown", "TA0107", "Inhibit Response Function"),
    "t0857": ("System Firmware", "TA0110", "Persistence"),
    "t0839": ("Module Firmware", "TA0110", "Persistence"),
    "t1110": ("Brute Force", "TA0006", "Credential Access"),
}


def dataset_pipeline() -> ProcessingPipeline:
    items = [ProcessingItem(AddConditionTransformation({"event.dataset": ds}),
                            rule_conditions=[LogsourceCondition(product="lwm2m-monitor", category=ds)])
             for ds in DATASETS]
    return ProcessingPipeline(name="lwm2m-monitor logsource", priority=20, items=items)


@dataclass(frozen=True)
class Query:
    rule: str
    level: str
    title: str
    query: str
    language: str                  # lucene | eql
    threshold: dict | None = None  # correlations: {"field": [...], "value": n, "timespan_s": s}


def _raw(item) -> dict:
    with open(item.path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def queries(engine: RuleEngine, language: str = "lucene") -> list[Query]:
    backend_cls = LuceneBackend if language == "lucene" else EqlBackend
    pipeline = dataset_pipeline()
    by_name = {r.info.name: r for r in engine.rules}
    out: list[Query] = []
    base_query: dict[str, str] = {}
    for r in engine.rules:
        coll = SigmaCollection.from_dicts([_raw(r)])
        q = backend_cls(pipeline).convert(coll)[0]
        base_query[r.info.name] = q
        if not r.silent:
            out.append(Query(r.info.name, r.level, r.info.title, q, language))
    for c in engine.correlations:
        parts = [base_query[b] for b in c.base if b in by_name]
        q = parts[0] if len(parts) == 1 else " OR ".join(f"({p})" for p in parts)
        out.append(Query(c.info.name, c.level, c.info.title, q, language,
                         {"field": list(c.group_by), "value": c.threshold, "timespan_s": c.timespan_ns // 10**9}))
    return sorted(out, key=lambda q: q.rule)


def _threat(tags: tuple[str, ...]) -> list[dict]:
    by_tactic: dict[str, dict] = {}
    for t in tags:
        tid = t.split(".", 1)[-1].lower()
        if tid not in TECHNIQUES:
            continue
        name, tactic_id, tactic = TECHNIQUES[tid]
        entry = by_tactic.setdefault(tactic_id, {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": tactic_id, "name": tactic, "reference": f"https://attack.mitre.org/tactics/{tactic_id}/"},
            "technique": []})
        entry["technique"].append({"id": tid.upper(), "name": name,
                                   "reference": f"https://attack.mitre.org/techniques/{tid.upper()}/"})
    return [by_tactic[k] for k in sorted(by_tactic)]


def _index(item, engine: RuleEngine) -> list[str]:
    category = item.category if isinstance(item, Rule) else next(
        (r.category for r in engine.rules if r.info.name in item.base), None)
    if category:
        return [f"logs-{category.split('.')[0]}.*-*"]
    return list(INDEX_ALL)


def kibana_rules(engine: RuleEngine) -> list[dict]:
    """Kibana detection-engine rules, one dict per alerting rule (import with _import / the UI)."""
    out: list[dict] = []
    items = {q.rule: q for q in queries(engine, "lucene")}
    all_items = {**{r.info.name: r for r in engine.rules}, **{c.info.name: c for c in engine.correlations}}
    for name in sorted(items):
        q, it = items[name], all_items[name]
        raw = _raw(it)
        rule: dict = {
            "rule_id": it.info.id, "name": f"LwM2M: {it.info.title}", "description": it.info.description,
            "risk_score": RISK_SCORE[it.level], "severity": KIBANA_SEVERITY[it.level],
            "type": "threshold" if q.threshold else "query", "language": "lucene", "query": q.query,
            "index": _index(it, engine), "enabled": it.enabled, "interval": "5m", "from": "now-6m",
            "author": [str(raw.get("author", "lwm2m-monitor"))], "references": list(it.info.references),
            "false_positives": [str(f) for f in raw.get("falsepositives") or []],
            "tags": ["lwm2m-monitor", f"rule:{name}", *it.info.tags], "threat": _threat(it.info.tags),
            "max_signals": 100, "version": 1,
        }
        if q.threshold:
            rule["threshold"] = {"field": q.threshold["field"], "value": q.threshold["value"]}
            rule["from"] = f"now-{q.threshold['timespan_s']}s"
            rule["interval"] = f"{max(60, q.threshold['timespan_s'])}s"
        mapping = raw.get("severity_mapping") or []
        if mapping:
            rule["severity_mapping"] = [{"field": m["field"], "operator": "equals",
                                         "value": str(m["value"]).lower() if isinstance(m["value"], bool) else str(m["value"]),
                                         "severity": KIBANA_SEVERITY[m["level"]]} for m in mapping]
        out.append(rule)
    return out


def render(engine: RuleEngine, target: str) -> str:
    if target == "kibana":
        return "".join(json.dumps(r, sort_keys=True) + "\n" for r in kibana_rules(engine))
    lines: list[str] = []
    for q in queries(engine, target):
        note = ""
        if q.threshold:
            note = (f" [correlation: at least {q.threshold['value']} matches per "
                    f"{', '.join(q.threshold['field'])} within {q.threshold['timespan_s']}s]")
        lines.append(f"# {q.rule} ({q.level}): {q.title}{note}")
        lines.append(q.query)
    return "\n".join(lines) + "\n"
