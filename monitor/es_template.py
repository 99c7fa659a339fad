"""Composable index template for Elasticsearch, generated from monitor/fields.yml.

Two component templates (mappings, settings) and one index template over the indices / data
streams `logs-<dataset>-<namespace>` of our dataset families. Mapping choices that matter:
- `lwm2m.values` is `flattened`: a value is a number in one document, a string or a
  `{redacted, sha256_8}` object in the next; flattened indexes every leaf as a keyword, so
  mixed value types never cause a mapping conflict (and searches `lwm2m.values.path: "/3/0/0"`
  still work).
- `date_detection` is off and undeclared strings map to `keyword`: an undeclared field can
  never turn an index into a date/text mapping that rejects the next document.
- `ignore_malformed` stays off on purpose: a wrong-typed declared field must be rejected and
  dead-lettered by the sink, not silently stored without its index entry.
"""
from __future__ import annotations

import hashlib
import json

from .fields import FIELDS, Field

NAME = "lwm2m-monitor"
COMPONENT_MAPPINGS = f"{NAME}@mappings"
COMPONENT_SETTINGS = f"{NAME}@settings"
# Dataset families this monitor writes (event.dataset prefixes).
DATASET_FAMILIES = ("lwm2m", "dtls", "oscore", "coap")
INDEX_PATTERNS = [f"logs-{family}.*-*" for family in DATASET_FAMILIES]
# Above the stack's built-in `logs` template (priority 100), below user overrides.
PRIORITY = 250
KEYWORD_IGNORE_ABOVE = 1024


def mappings(fields: dict[str, Field] | None = None) -> dict:
    """`{"properties": ...}` tree for every declared field."""
    fields = FIELDS if fields is None else fields
    root: dict = {}
    for f in sorted(fields.values(), key=lambda f: f.name):
        props = root
        parts = f.name.split(".")
        for part in parts[:-1]:
            node = props.setdefault(part, {"type": "object", "properties": {}})
            props = node.setdefault("properties", {})
        leaf = props.setdefault(parts[-1], {})
        leaf.update(_leaf(f))
    return {
        "dynamic": True,
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [
            {"strings_as_keyword": {"match_mapping_type": "string",
                                    "mapping": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}},
        ],
        "_meta": {"managed_by": NAME, "fields_sha256": fields_fingerprint(fields)},
        "properties": root,
    }


def _leaf(f: Field) -> dict:
    if f.type == "keyword":
        return {"type": "keyword", "ignore_above": f.ignore_above or KEYWORD_IGNORE_ABOVE}
    if f.type == "flattened":
        out = {"type": "flattened"}
        if f.ignore_above:
            out["ignore_above"] = f.ignore_above
        return out
    if f.type == "date":
        return {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
    if f.type == "object":
        return {"type": "object"} if f.enabled else {"type": "object", "enabled": False}
    return {"type": f.type}


def settings(replicas: int | None = None) -> dict:
    out: dict = {"index": {"mapping": {"total_fields": {"limit": 2000}}, "refresh_interval": "5s"}}
    if replicas is not None:
        out["index"]["number_of_replicas"] = replicas
    return out


def component_templates(replicas: int | None = None) -> dict[str, dict]:
    return {
        COMPONENT_MAPPINGS: {"template": {"mappings": mappings()}, "_meta": {"managed_by": NAME}},
        COMPONENT_SETTINGS: {"template": {"settings": settings(replicas)}, "_meta": {"managed_by": NAME}},
    }


def index_template(data_stream: bool) -> dict:
    """The composable index template; `data_stream` only where the server supports them."""
    body: dict = {
        "index_patterns": INDEX_PATTERNS,
        "composed_of": [COMPONENT_MAPPINGS, COMPONENT_SETTINGS],
        "priority": PRIORITY,
        "_meta": {"managed_by": NAME, "fields_sha256": fields_fingerprint()},
    }
    if data_stream:
        body["data_stream"] = {}
    return body


def fields_fingerprint(fields: dict[str, Field] | None = None) -> str:
    fields = FIELDS if fields is None else fields
    canon = json.dumps([[f.name, f.type, f.ignore_above, f.enabled] for f in sorted(fields.values(), key=lambda f: f.name)])
    return hashlib.sha256(canon.encode()).hexdigest()[:16]
