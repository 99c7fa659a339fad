"""Outage: the node is SIGKILLed while the sink writes, then restarted on the same data dir and
port; after close every document is in Elasticsearch exactly once."""
from __future__ import annotations

import json
import threading
import time

from es.documents import all_documents
from monitor.es_sink import EsSink
from monitor.fields import undeclared

TOTAL = 5000         # documents in the run: the capture documents, repeated with fresh event.ids


def _documents() -> list[dict]:
    # Delivery is under test here, not the schema (test_es_fields.py): only documents that
    # fields.yml fully declares, so a schema slip elsewhere cannot show up as a dead letter.
    base = [d for d in all_documents() if not undeclared(d)]
    out = []
    r = 0
    while len(out) < TOTAL:
        for d in base[:TOTAL - len(out)]:
            d = json.loads(json.dumps(d))
            d["event"]["id"] = f"{d['event']['id']}-r{r}"
            out.append(d)
        r += 1
    return out


def test_sigkill_mid_run_then_restart_loses_and_duplicates_nothing(es_node, es_config):
    config = es_config(batch_docs=50, flush_seconds=0.0, max_retries=2, backoff_initial=0.1,
                       backoff_max=0.5, probe_seconds=0.3, timeout=5.0)
    docs = _documents()
    sink = EsSink(config)
    killed = threading.Event()

    def killer():
        while sink.sent < len(docs) // 4:
            time.sleep(0.005)
        es_node.kill()                      # SIGKILL to the node's process group, mid-stream
        killed.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        half = len(docs) // 2
        for i in range(0, half, 25):
            sink.write(docs[i:i + 25])
            time.sleep(0.01)
        assert killed.wait(60), "the sink never got a quarter of the documents through"
        sent_at_outage = sink.sent
        sink.write(docs[half:half + 100])      # with the node down these must go to the spool
        deadline = time.monotonic() + 30
        while sink.spool.pending == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.spool.pending > 0
        es_node.start()                       # same data dir, same port
        for i in range(half + 100, len(docs), 25):
            sink.write(docs[i:i + 25])
        report = sink.close()
    finally:
        if es_node.proc is None:
            es_node.start()
    assert sent_at_outage < len(docs)
    assert report.retries > 0
    assert (report.dead_lettered, report.spooled_remaining) == (0, 0)
    # Delivered = stored now or found already stored (a batch acknowledged by a dying node).
    assert report.sent <= len(docs) <= report.sent + report.duplicates
    assert any("Connection" in e for e in report.errors), report.errors
    es_node.request("POST", f"/logs-*-{config.namespace}/_refresh")
    ids = []
    search_after = None
    while True:
        body = {"size": 1000, "sort": [{"event.id": "asc"}], "_source": False}
        if search_after:
            body["search_after"] = search_after
        hits = es_node.request("POST", f"/logs-*-{config.namespace}/_search?track_total_hits=true", body)["hits"]
        if not hits["hits"]:
            break
        ids += [h["_id"] for h in hits["hits"]]
        search_after = hits["hits"][-1]["sort"]
    assert hits["total"]["value"] == len(docs)
    assert sorted(ids) == sorted(d["event"]["id"] for d in docs)
    assert len(set(ids)) == len(ids)
