"""Elasticsearch sink against a real single-node Elasticsearch (tests/es/, no mocks)."""
from __future__ import annotations

import collections
import ipaddress
import json
import os
import time

from es.documents import alert_document, all_documents
from monitor.es_sink import EsSink
from monitor.fields import undeclared


def _declared_documents():
    """For tests whose subject is not the schema: documents fields.yml fully declares (a schema
    slip is reported by test_bulk_every_document_type and test_es_fields.py, once)."""
    return [d for d in all_documents() if not undeclared(d)]


def _index_all(node, config, docs=None):
    sink = EsSink(config)
    docs = _declared_documents() if docs is None else docs
    sink.write(docs)
    report = sink.close()
    node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    return docs, report, sink


def _search(node, ns, query, size=2000):
    return node.request("POST", f"/logs-*-{ns}/_search?track_total_hits=true",
                        {"size": size, "query": query, "_source": ["event.id"]})


def _all_hits(node, ns, query) -> list[dict]:
    """Every hit of `query`, paged with search_after on event.id (no result-window limit)."""
    out, after = [], None
    while True:
        body = {"size": 2000, "query": query, "sort": [{"event.id": "asc"}], "_source": ["event.id"]}
        if after:
            body["search_after"] = after
        hits = node.request("POST", f"/logs-*-{ns}/_search", body)["hits"]["hits"]
        if not hits:
            return out
        out += hits
        after = hits[-1]["sort"]


def test_bulk_every_document_type_lands_once_per_event_id(es_node, es_config):
    config = es_config()
    docs, report, sink = _index_all(es_node, config, all_documents())
    ids = [d["event"]["id"] for d in docs]
    assert len(set(ids)) == len(ids), "the pipeline produced duplicate event.id values"
    datasets = collections.Counter(d["event"]["dataset"] for d in docs)
    assert {"lwm2m.operation", "dtls.handshake", "dtls.alert", "oscore.context", "lwm2m.alert"} <= set(datasets)
    rejected = []
    if os.path.exists(sink.dead_letter_path):
        with open(sink.dead_letter_path, encoding="utf-8") as f:
            rejected = [(r["document"]["event"]["dataset"], r["reason"][:160]) for r in map(json.loads, f)]
    assert rejected == []
    assert (report.sent, report.duplicates, report.dead_lettered, report.spooled_remaining) == (len(docs), 0, 0, 0)
    # One index per dataset, named after the data stream convention, holding exactly its documents.
    for dataset, n in datasets.items():
        got = es_node.request("GET", f"/logs-{dataset}-{config.namespace}/_count")
        assert got.get("count") == n, (dataset, got)
    assert _search(es_node, config.namespace, {"match_all": {}})["hits"]["total"]["value"] == len(docs)
    hits = _all_hits(es_node, config.namespace, {"match_all": {}})
    assert sorted(h["_id"] for h in hits) == sorted(ids)
    assert all(h["_id"] == h["_source"]["event"]["id"] for h in hits)
    # The node of the tests has no data-streams module: plain indices (see tests/es/README.md).
    assert sink.data_streams is False
    assert es_node.request("GET", f"/logs-lwm2m.operation-{config.namespace}").get("_status") is None


def test_mappings_come_from_fields_yml(es_node, es_config):
    config = es_config()
    _index_all(es_node, config)
    index = f"logs-lwm2m.operation-{config.namespace}"
    fields = ["@timestamp", "source.ip", "client.ip", "lwm2m.endpoint", "event.action", "lwm2m.values",
              "event.duration", "coap.mid", "lwm2m.identity.matches_endpoint"]
    got = es_node.request("GET", f"/{index}/_mapping/field/{','.join(fields)}")[index]["mappings"]
    types = {name: next(iter(m["mapping"].values()))["type"] for name, m in got.items()}
    assert types == {"@timestamp": "date", "source.ip": "ip", "client.ip": "ip", "lwm2m.endpoint": "keyword",
                     "event.action": "keyword", "lwm2m.values": "flattened", "event.duration": "long",
                     "coap.mid": "long", "lwm2m.identity.matches_endpoint": "boolean"}
    template = es_node.request("GET", "/_index_template/lwm2m-monitor")["index_templates"][0]["index_template"]
    assert "logs-lwm2m.*-*" in template["index_patterns"]


def test_queries_by_endpoint_action_and_cidr(es_node, es_config):
    config = es_config()
    docs, _, _ = _index_all(es_node, config)
    ns = config.namespace

    def ids(query):
        return sorted(h["_id"] for h in _all_hits(es_node, ns, query))

    def expected(pred):
        return sorted(d["event"]["id"] for d in docs if pred(d))

    endpoints = collections.Counter(d.get("lwm2m", {}).get("endpoint") for d in docs) - collections.Counter({None: 10**9})
    assert endpoints, "no document names an endpoint"
    for endpoint in endpoints:
        assert ids({"term": {"lwm2m.endpoint": endpoint}}) == expected(lambda d: d.get("lwm2m", {}).get("endpoint") == endpoint)
    for action in ("register", "read", "write", "notify"):
        want = expected(lambda d: d["event"]["action"] == action)
        assert want, action
        assert ids({"term": {"event.action": action}}) == want
    # term on an ip field with a CIDR: the node does the prefix match, Python's ipaddress checks it.
    for cidr in ("127.0.0.0/8", "192.0.2.0/24", "::1/128"):
        net = ipaddress.ip_network(cidr)
        want = expected(lambda d: ipaddress.ip_address(d["source"]["ip"]) in net)
        assert ids({"term": {"source.ip": cidr}}) == want
    assert expected(lambda d: d["source"]["ip"].startswith("127."))
    assert ids({"term": {"source.ip": "203.0.113.0/24"}}) == [alert_document()["event"]["id"]]
    # alerts by rule and severity
    assert ids({"bool": {"filter": [{"term": {"event.kind": "alert"}}, {"range": {"event.severity": {"gte": 3}}}]}}) \
        == expected(lambda d: d["event"]["kind"] == "alert" and d["event"].get("severity", 0) >= 3)
    for rule in {d["rule"]["name"] for d in docs if d["event"]["kind"] == "alert"}:
        assert ids({"term": {"rule.name": rule}}) == expected(lambda d: d.get("rule", {}).get("name") == rule)


def test_mixed_value_types_never_conflict(es_node, es_config):
    config = es_config()
    base = alert_document()
    docs = []
    for i, value in enumerate([21.5, "21.5", True, 7, {"redacted": True, "sha256_8": "0a1b2c3d"}, "x" * 5000]):
        d = json.loads(json.dumps(base))
        d["event"].update(id=f"mixed-{i}", dataset="lwm2m.operation", kind="event", action="read")
        d["lwm2m"]["values"] = [{"path": "/3303/0/5700", "type": "float", "value": value}]
        docs.append(d)
    sink = EsSink(config)
    sink.write(docs)
    report = sink.close()
    assert (report.sent, report.dead_lettered) == (len(docs), 0)
    es_node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    got = _search(es_node, config.namespace, {"term": {"lwm2m.values.path": "/3303/0/5700"}})
    assert got["hits"]["total"]["value"] == len(docs)
    got = _search(es_node, config.namespace, {"term": {"lwm2m.values.value.sha256_8": "0a1b2c3d"}})
    assert [h["_id"] for h in got["hits"]["hits"]] == ["mixed-4"]


def test_wrong_typed_field_goes_to_dead_letter_with_reason(es_node, es_config, tmp_path):
    config = es_config(dead_letter=str(tmp_path / "dead.ndjson"))
    good = alert_document()
    bad = json.loads(json.dumps(good))
    bad["event"]["id"] = "bad-ip-1"
    bad["source"]["ip"] = "not-an-ip"
    sink = EsSink(config)
    sink.write([good, bad])
    report = sink.close()
    assert (report.sent, report.dead_lettered, report.spooled_remaining) == (1, 1, 0)
    with open(tmp_path / "dead.ndjson", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 1
    rec = records[0]
    assert rec["_id"] == "bad-ip-1" and rec["status"] == 400
    assert rec["document"] == bad
    assert "source.ip" in rec["reason"] and "not-an-ip" in rec["reason"]
    es_node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    assert _search(es_node, config.namespace, {"match_all": {}})["hits"]["total"]["value"] == 1


def test_resending_is_idempotent(es_node, es_config):
    config = es_config()
    docs, first, _ = _index_all(es_node, config)
    sink = EsSink(config)
    sink.write(docs)
    second = sink.close()
    assert (second.sent, second.duplicates, second.dead_lettered) == (0, len(docs), 0)
    es_node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    assert _search(es_node, config.namespace, {"match_all": {}})["hits"]["total"]["value"] == len(docs)


def test_wrong_password_spools_and_a_later_run_replays(es_node, es_config, tmp_path):
    wrong = "definitely-not-the-password"
    config = es_config(max_retries=1, backoff_initial=0.05)
    bad = type(config)(**{**config.__dict__, "password": wrong})
    docs = _declared_documents()[:50]
    sink = EsSink(bad)
    sink.write(docs)
    report = sink.close()
    assert (report.sent, report.spooled_remaining, report.dead_lettered) == (0, len(docs), 0)
    assert report.retries == 1
    assert any("401" in e for e in report.errors), report.errors
    assert not any(wrong in e for e in report.errors) and wrong not in repr(bad)
    # Same spool dir, right password: the spool of the earlier run is delivered, in order, once.
    sink = EsSink(config)
    report = sink.close()
    assert (report.sent, report.spooled_remaining, report.duplicates) == (len(docs), 0, 0)
    assert not [n for n in os.listdir(config.spool_dir) if n.startswith("spool-") and os.path.getsize(os.path.join(config.spool_dir, n))]


def test_ca_file_is_what_makes_tls_work(es_node, es_config):
    config = es_config(max_retries=0)
    no_ca = type(config)(**{**config.__dict__, "ca": None})
    sink = EsSink(no_ca)
    sink.write([alert_document()])
    report = sink.close()
    assert (report.sent, report.spooled_remaining) == (0, 1)
    assert any("CERTIFICATE_VERIFY_FAILED" in e or "certificate verify failed" in e for e in report.errors), report.errors
    sink = EsSink(config)
    assert sink.close().sent == 1


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_batches_by_size_and_by_time(es_node, es_config):
    docs = _declared_documents()[:25]
    sink = EsSink(es_config(batch_docs=10, flush_seconds=3600))
    sink.write(docs)                      # a full batch goes at once, no waiting for the clock
    assert _wait_for(lambda: sink.sent == 25)
    sink.close()

    sink = EsSink(es_config(batch_docs=1000, flush_seconds=3600))
    for d in docs[:9]:
        sink.write([d])
    time.sleep(1.5)
    assert sink.sent == 0                 # below size, not yet due
    assert sink.close().sent == 9         # close delivers the rest

    sink = EsSink(es_config(batch_docs=1000, flush_seconds=0.5))
    started = time.monotonic()
    sink.write(docs[:3])                  # then silence: the time limit alone sends them
    assert _wait_for(lambda: sink.sent == 3)
    assert time.monotonic() - started >= 0.45
    assert sink.close().sent == 3


def test_write_never_waits_for_a_dead_node(tmp_path):
    """The caller (live capture loop) is not held up by retries and backoff: the delivery
    thread is. With the node down everything ends in the spool, none of it lost."""
    from es.node import free_port
    from monitor.es_sink import EsConfig
    config = EsConfig.from_env_and_args(f"http://127.0.0.1:{free_port()}", env={}, spool_dir=str(tmp_path / "s"),
                                        batch_docs=10, max_retries=3, backoff_initial=0.5, max_pending=50)
    sink = EsSink(config)
    docs = _declared_documents()[:200]
    started = time.monotonic()
    for i in range(0, len(docs), 10):
        sink.write(docs[i:i + 10])
    assert time.monotonic() - started < 1.0, "write() blocked on the dead node"
    report = sink.close()
    assert (report.sent, report.spooled_remaining, report.dead_lettered) == (0, len(docs), 0)
    lines = []
    for name in sorted(os.listdir(tmp_path / "s")):
        if name.startswith("spool-") and name.endswith(".ndjson"):
            lines += (tmp_path / "s" / name).read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["event"]["id"] for line in lines) == sorted(d["event"]["id"] for d in docs)


def test_spool_left_by_a_crashed_run_is_replayed_from_its_offset(es_node, es_config, tmp_path):
    from monitor.sinks import dumps
    docs = _declared_documents()[:4]
    spool = tmp_path / "crashed-spool"
    spool.mkdir()
    seg = spool / "spool-000001.ndjson"
    # doc 0 was delivered before the crash (offset 1); the last line was torn by the crash.
    seg.write_text("".join(dumps(d) + "\n" for d in docs[:3]) + dumps(docs[3])[:40], encoding="utf-8")
    (spool / "spool-000001.ndjson.done").write_text("1")
    config = es_config(spool_dir=str(spool), dead_letter=str(tmp_path / "dead.ndjson"))
    sink = EsSink(config)
    assert sink.spool.pending == 3
    sink.write([docs[3]])                 # the torn document, whole this time
    report = sink.close()
    assert (report.sent, report.dead_lettered, report.spooled_remaining, report.duplicates) == (3, 1, 0, 0)
    with open(tmp_path / "dead.ndjson", encoding="utf-8") as f:
        (rec,) = [json.loads(line) for line in f]
    assert rec["reason"].startswith("unreadable spool line") and rec["document"] == dumps(docs[3])[:40]
    es_node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    got = _search(es_node, config.namespace, {"match_all": {}})["hits"]["hits"]
    assert sorted(h["_id"] for h in got) == sorted(d["event"]["id"] for d in docs[1:])
    assert not [n for n in os.listdir(spool) if n.endswith(".ndjson") and os.path.getsize(spool / n)]


def test_api_key_is_sent_and_never_shown(es_node, es_config):
    """The node cannot mint API keys (tests/es/README.md), so this proves the API-key path
    reaches the node as credentials (a bogus key gets 401, documents are kept) and that the
    key stays out of the report."""
    import base64
    key = base64.b64encode(b"bogus-id:bogus-api-key-secret").decode()
    config = es_config(max_retries=0)
    keyed = type(config)(**{**config.__dict__, "user": None, "password": None, "api_key": key})
    sink = EsSink(keyed)
    sink.write(_declared_documents()[:5])
    report = sink.close()
    assert (report.sent, report.spooled_remaining) == (0, 5)
    assert any("HTTP 401" in e for e in report.errors), report.errors
    assert not any(key in e or "bogus-api-key-secret" in e for e in report.errors)


def test_node_refusing_writes_then_accepting_again(es_node, es_config):
    """A live node that refuses a batch (index write block: 403 per document) is a transient
    failure: retried, spooled, and replayed in order once the block is lifted."""
    config = es_config(batch_docs=20, flush_seconds=0.0, max_retries=1, backoff_initial=0.05,
                       probe_seconds=0.2)
    docs = _declared_documents()[:120]
    sink = EsSink(config)
    sink.write(docs[:20])
    assert _wait_for(lambda: sink.sent == 20)
    index = "logs-*-" + config.namespace
    blocked = es_node.request("PUT", f"/{index}/_settings", {"index.blocks.write": True})
    assert blocked.get("acknowledged"), blocked
    try:
        sink.write(docs[20:60])
        assert _wait_for(lambda: sink.spool.pending >= 20), sink.errors
        assert any("403" in e for e in sink.errors), sink.errors
    finally:
        es_node.request("PUT", f"/{index}/_settings", {"index.blocks.write": None})
    sink.write(docs[60:])
    report = sink.close()
    assert (report.dead_lettered, report.spooled_remaining) == (0, 0)
    assert report.sent == len(docs) and report.retries > 0
    es_node.request("POST", f"/{index}/_refresh")
    assert sorted(h["_id"] for h in _all_hits(es_node, config.namespace, {"match_all": {}})) \
        == sorted(d["event"]["id"] for d in docs)
