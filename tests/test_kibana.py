"""Kibana saved objects: structure, references, and the panels' aggregations run on a real node."""
from __future__ import annotations

import io
import json

from es.documents import all_documents
from monitor import kibana
from monitor.es_sink import EsSink
from monitor.fields import FIELDS

AGGREGATABLE = {"keyword", "long", "integer", "float", "double", "date", "ip", "boolean"}


def _objects(extra=None):
    buf = io.StringIO()
    n = kibana.write_ndjson(buf, kibana.kibana_saved_objects(extra))
    lines = buf.getvalue().splitlines()
    assert len(lines) == n
    return [json.loads(line) for line in lines]


def _vis_aggs(obj):
    return json.loads(obj["attributes"]["visState"])["aggs"]


def test_each_line_is_a_saved_object_and_every_reference_resolves():
    objs = _objects()
    by_id = {}
    for o in objs:
        assert set(o) == {"id", "type", "attributes", "references"}, o.get("id")
        assert isinstance(o["attributes"], dict) and isinstance(o["references"], list)
        assert (o["type"], o["id"]) not in by_id
        by_id[(o["type"], o["id"])] = o
        for ref in o["references"]:
            assert set(ref) == {"name", "type", "id"}
            assert (ref["type"], ref["id"]) in by_id or any(
                x["type"] == ref["type"] and x["id"] == ref["id"] for x in objs), ref
    types = sorted(o["type"] for o in objs)
    assert types.count("index-pattern") == 2 and types.count("dashboard") == 1
    for view in (o for o in objs if o["type"] == "index-pattern"):
        assert view["attributes"]["timeFieldName"] == "@timestamp"


def test_dashboard_panels_reach_a_data_view():
    objs = {(o["type"], o["id"]): o for o in _objects()}
    board = objs[("dashboard", kibana.DASHBOARD)]
    panels = json.loads(board["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in board["references"]}
    titles = set()
    assert len(panels) >= 3
    for panel in panels:
        ref = refs[panel["panelRefName"]]
        vis = objs[(ref["type"], ref["id"])]
        titles.add(vis["attributes"]["title"])
        source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (view_ref,) = [r for r in vis["references"] if r["name"] == source["indexRefName"]]
        assert ("index-pattern", view_ref["id"]) in objs
        grid = panel["gridData"]
        assert {"x", "y", "w", "h", "i"} <= set(grid) and grid["x"] + grid["w"] <= 48
    assert {"Events over time by action", "Top endpoints", "Alerts by rule and severity"} <= titles


def test_panels_only_aggregate_declared_aggregatable_fields():
    for o in _objects():
        if o["type"] != "visualization":
            continue
        for agg in _vis_aggs(o):
            field = agg["params"].get("field")
            if field is not None:
                assert field in FIELDS and FIELDS[field].type in AGGREGATABLE, (o["attributes"]["title"], field)


def test_extra_rules_are_appended_unchanged():
    rule = {"id": "d7f0c3b2-0000-4000-8000-000000000001", "type": "alert", "attributes": {"name": "x"},
            "references": []}
    objs = _objects([rule])
    assert objs[-1] == rule
    assert objs[:-1] == _objects()


def test_panel_aggregations_return_buckets_on_real_data(es_node, es_config):
    """The same aggregations, run by the real node over real documents: fields exist in the
    mapping, are aggregatable, and the data view patterns match the sink's indices."""
    config = es_config()
    sink = EsSink(config)
    sink.write(all_documents())
    assert sink.close().sent > 0
    objs = {(o["type"], o["id"]): o for o in _objects()}
    for o in objs.values():
        if o["type"] != "visualization":
            continue
        view = objs[("index-pattern", o["references"][0]["id"])]
        patterns = ",".join(p.replace("-*", "-" + config.namespace, 1) if p.endswith("-*") else p
                            for p in view["attributes"]["title"].split(","))
        es_node.request("POST", f"/{patterns}/_refresh?ignore_unavailable=true")
        aggs = {}
        for agg in _vis_aggs(o):
            if agg["type"] == "terms":
                aggs[agg["id"]] = {"terms": {"field": agg["params"]["field"], "size": agg["params"]["size"]}}
            elif agg["type"] == "date_histogram":
                aggs[agg["id"]] = {"date_histogram": {"field": "@timestamp", "calendar_interval": "year"}}
        res = es_node.request("POST", f"/{patterns}/_search?ignore_unavailable=true",
                              {"size": 0, "aggs": aggs})
        assert "_status" not in res, res
        for agg_id in aggs:
            assert res["aggregations"][agg_id]["buckets"], (o["attributes"]["title"], agg_id)


def test_cli_kibana_export_writes_the_same_objects(tmp_path):
    import subprocess
    import sys
    out, rules_out = tmp_path / "k.ndjson", tmp_path / "rules.ndjson"
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "kibana", "export", "--out", str(out),
                           "--rules-out", str(rules_out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == _objects()
    rules = [json.loads(line) for line in rules_out.read_text().splitlines()]
    assert rules and all({"rule_id", "name", "query", "index"} <= set(r) for r in rules)
    # The detection rules search indices the sink writes and the data views cover.
    from monitor.es_template import INDEX_PATTERNS
    assert all(set(r["index"]) <= set(INDEX_PATTERNS) for r in rules), {tuple(r["index"]) for r in rules}
