"""Kibana saved objects (`kibana export`): data views, visualizations and a dashboard.

The NDJSON is what Kibana's Saved Objects import (Stack Management → Saved Objects, or
POST /api/saved_objects/_import) reads: one object per line with id, type, attributes and
references. Panels use classic aggregation-based visualizations, which every 8.x Kibana
imports and migrates; each references its data view by id through `references`, never by
title, so renaming a data view does not break the dashboard. Ids are fixed UUIDs: importing
again overwrites instead of duplicating.

Detection rules are the rules engineer's: `kibana_saved_objects(extra_rules)` appends them
unchanged after our objects.
"""
from __future__ import annotations

import json
from typing import IO, Iterable

from .es_template import INDEX_PATTERNS

DATA_VIEW_ALL = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4a01"
DATA_VIEW_ALERTS = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4a02"
VIS_EVENTS_BY_ACTION = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4b01"
VIS_TOP_ENDPOINTS = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4b02"
VIS_ALERTS_BY_RULE = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4b03"
VIS_OUTCOMES = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4b04"
DASHBOARD = "7d0a6c44-3f0e-4a55-9d1c-1f2b5e0c4c01"

_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def data_view(view_id: str, title: str, name: str) -> dict:
    return {
        "id": view_id,
        "type": "index-pattern",
        "attributes": {"title": title, "name": name, "timeFieldName": "@timestamp"},
        "references": [],
    }


def visualization(vis_id: str, title: str, view_id: str, vis_type: str, aggs: list[dict],
                  params: dict, query: str = "") -> dict:
    search_source = {"query": {"query": query, "language": "kuery"}, "filter": [],
                     "indexRefName": _INDEX_REF}
    return {
        "id": vis_id,
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": "",
            "uiStateJSON": "{}",
            "version": 1,
            "visState": json.dumps({"title": title, "type": vis_type, "aggs": aggs, "params": params},
                                   sort_keys=True),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source, sort_keys=True)},
        },
        "references": [{"name": _INDEX_REF, "type": "index-pattern", "id": view_id}],
    }


def _count(agg_id: str = "1") -> dict:
    return {"id": agg_id, "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _terms(agg_id: str, field: str, size: int, schema: str) -> dict:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1",
                       "otherBucket": True, "missingBucket": False}}


def _date_histogram(agg_id: str = "2") -> dict:
    return {"id": agg_id, "enabled": True, "type": "date_histogram", "schema": "segment",
            "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1,
                       "extended_bounds": {}}}


def _table_params() -> dict:
    return {"perPage": 20, "showPartialRows": False, "showMetricsAtAllLevels": False,
            "showTotal": True, "totalFunc": "sum", "percentageCol": ""}


def _bar_params() -> dict:
    return {"type": "histogram", "addLegend": True, "legendPosition": "right", "addTooltip": True,
            "seriesParams": [{"show": True, "type": "histogram", "mode": "stacked",
                              "data": {"label": "Count", "id": "1"}, "valueAxis": "ValueAxis-1"}],
            "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": True}],
            "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left",
                           "show": True}]}


def dashboard(panels: list[tuple[str, dict]]) -> dict:
    """`panels`: (visualization id, gridData) pairs, laid out as given."""
    panels_json = []
    references = []
    for i, (vis_id, grid) in enumerate(panels):
        ref = f"panel_{i}"
        panels_json.append({"panelIndex": str(i + 1), "gridData": {**grid, "i": str(i + 1)},
                            "embeddableConfig": {}, "panelRefName": ref, "version": "8.19.3"})
        references.append({"name": ref, "type": "visualization", "id": vis_id})
    return {
        "id": DASHBOARD,
        "type": "dashboard",
        "attributes": {
            "title": "LwM2M monitor",
            "description": "LwM2M operations, endpoints and alerts seen by lwm2m-monitor",
            "panelsJSON": json.dumps(panels_json, sort_keys=True),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "hidePanelTitles": False}),
            "timeRestore": False,
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                {"query": {"query": "", "language": "kuery"}, "filter": []})},
        },
        "references": references,
    }


def kibana_saved_objects(extra_rules: list[dict] | None = None) -> list[dict]:
    """Data views, visualizations and the dashboard, then `extra_rules` unchanged."""
    all_view = data_view(DATA_VIEW_ALL, ",".join(INDEX_PATTERNS), "lwm2m-monitor (all events)")
    alert_view = data_view(DATA_VIEW_ALERTS, "logs-lwm2m.alert-*", "lwm2m-monitor alerts")
    vis = [
        visualization(VIS_EVENTS_BY_ACTION, "Events over time by action", DATA_VIEW_ALL, "histogram",
                      [_count(), _date_histogram("2"), _terms("3", "event.action", 15, "group")], _bar_params()),
        visualization(VIS_TOP_ENDPOINTS, "Top endpoints", DATA_VIEW_ALL, "table",
                      [_count(), _terms("2", "lwm2m.endpoint", 20, "bucket")], _table_params(),
                      query="lwm2m.endpoint:*"),
        visualization(VIS_ALERTS_BY_RULE, "Alerts by rule and severity", DATA_VIEW_ALERTS, "table",
                      [_count(), _terms("2", "rule.name", 30, "bucket"), _terms("3", "event.severity", 4, "bucket")],
                      _table_params(), query="event.kind:alert"),
        visualization(VIS_OUTCOMES, "Operation outcomes", DATA_VIEW_ALL, "table",
                      [_count(), _terms("2", "event.dataset", 10, "bucket"), _terms("3", "event.outcome", 3, "bucket")],
                      _table_params()),
    ]
    board = dashboard([
        (VIS_EVENTS_BY_ACTION, {"x": 0, "y": 0, "w": 48, "h": 15}),
        (VIS_TOP_ENDPOINTS, {"x": 0, "y": 15, "w": 24, "h": 15}),
        (VIS_ALERTS_BY_RULE, {"x": 24, "y": 15, "w": 24, "h": 15}),
        (VIS_OUTCOMES, {"x": 0, "y": 30, "w": 24, "h": 12}),
    ])
    return [all_view, alert_view, *vis, board, *(extra_rules or [])]


def write_ndjson(out: IO[str], objects: Iterable[dict]) -> int:
    """One saved object per line, stable key order; returns the number written."""
    n = 0
    for obj in objects:
        out.write(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
        n += 1
    return n


def export(path: str, extra_rules: list[dict] | None = None) -> int:
    """`lwm2m-monitor kibana export --out PATH` ("-" for stdout)."""
    objects = kibana_saved_objects(extra_rules)
    if path == "-":
        import sys
        return write_ndjson(sys.stdout, objects)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        return write_ndjson(f, objects)
