"""`lwm2m-monitor analyze --es URL` end to end: the CLI, credentials from LWM2M_ES_* and the
documents in the node equal the NDJSON the same run wrote."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from es.node import ADMIN_USER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_analyze_with_es_indexes_what_it_writes(es_node, tmp_path):
    capture = os.path.join(ROOT, "pcaps", "leshan-nosec-operations.pcap")
    out = tmp_path / "events.ndjson"
    env = {**os.environ, "LWM2M_ES_USER": ADMIN_USER, "LWM2M_ES_PASSWORD": es_node.password,
           "LWM2M_ES_CA": es_node.ca_path, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", capture, "--out", str(out),
                           "--es", es_node.url], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert es_node.password not in proc.stdout + proc.stderr
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(docs) > 20
    es_node.request("POST", "/logs-*-default/_refresh")
    got = {}
    for dataset in {d["event"]["dataset"] for d in docs}:
        res = es_node.request("POST", f"/logs-{dataset}-default/_search",
                              {"size": 1000, "query": {"ids": {"values": [d["event"]["id"] for d in docs]}}})
        got.update({h["_id"]: h["_source"] for h in res["hits"]["hits"]})
    assert got == {d["event"]["id"]: d for d in docs}
    # no spool left behind, nothing dead-lettered
    spool = tmp_path / "lwm2m-es-spool"
    leftovers = [n for n in os.listdir(spool) if os.path.getsize(spool / n)] if spool.exists() else []
    assert leftovers == []


def test_unreachable_node_is_reported_and_spooled(tmp_path):
    """No node at all: the run still succeeds, says how many documents wait in the spool."""
    from es.node import free_port
    capture = os.path.join(ROOT, "pcaps", "leshan-nosec-operations.pcap")
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", capture, "--out", str(tmp_path / "e.ndjson"),
                           "--es", f"http://127.0.0.1:{free_port()}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    n = len((tmp_path / "e.ndjson").read_text().splitlines())
    assert f"elasticsearch: 0 sent, {n:,} NOT YET DELIVERED" in proc.stdout, proc.stdout + proc.stderr
    spooled = sum(len(open(tmp_path / "lwm2m-es-spool" / f).read().splitlines())
                  for f in os.listdir(tmp_path / "lwm2m-es-spool") if f.startswith("spool-"))
    assert spooled == n
