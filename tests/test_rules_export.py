"""SIEM export: the Lucene queries run on a real Elasticsearch node (tests/es/) over the indexed
pipeline output and hit exactly the documents the in-pipeline engine matched; the Kibana
NDJSON carries what Kibana's rule import requires; the CLI prints the catalog."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monitor.rule_engine import RuleEngine
from monitor.rule_export import kibana_rules, queries, render
from rules_cases import ROOT, capture_documents

# Captures whose documents are indexed: together they make every capture-tested rule match.
INDEXED = [
    ("pcaps/leshan-nosec-operations.pcap", None),
    ("pcaps/leshan-nosec-bootstrap.pcap", "pcaps/leshan-nosec-bootstrap.keys.yaml"),
    ("pcaps/dtls-clean-psk.pcap", "pcaps/dtls-clean-psk.keys.yaml"),
    ("pcaps/dtls-mbedtls-identity-mismatch.pcap", "pcaps/dtls-mbedtls-identity-mismatch.keys.yaml"),
    ("pcaps/dtls-mbedtls-psk-aes128-cbc-sha.pcap", "pcaps/dtls-mbedtls-psk-aes128-cbc-sha.keys.yaml"),
    ("pcaps/dtls-openssl-dtls10-psk-aes128-cbc-sha.pcap", "pcaps/dtls-openssl-dtls10-psk-aes128-cbc-sha.keys.yaml"),
    ("pcaps/dtls-openssl-no-ems.pcap", "pcaps/dtls-openssl-no-ems.keys.yaml"),
    ("pcaps/dtls-mbedtls-wrong-psk.pcap", "pcaps/dtls-mbedtls-wrong-psk.keys.yaml"),
    ("pcaps/oscore-lwm2m.pcap", "pcaps/oscore-wrong.keys.yaml"),
    ("pcaps/rules-weak-cert.pcap", None),
    ("pcaps/rules-psk-guessing.pcap", "pcaps/rules-psk-guessing.keys.yaml"),
    ("pcaps/rules-lwm2m-scan.pcap", None),
]


def _engine_matches(engine: RuleEngine, docs: list[dict]) -> dict[str, set[str]]:
    """event.ids each rule's compiled detection matches (the in-pipeline decision)."""
    out: dict[str, set[str]] = {r.info.name: set() for r in engine.rules}
    for d in docs:
        if d["event"]["kind"] == "alert":
            continue
        for r in engine.rules:
            if r.category in (None, d["event"]["dataset"]) and r.match(d):
                out[r.info.name].add(d["event"]["id"])
    return out


def test_lucene_export_hits_exactly_what_the_pipeline_matched(es_node, es_config):
    from monitor.es_sink import EsSink
    docs = []
    for pcap, keys in INDEXED:
        docs.extend(capture_documents(pcap, keys))
    config = es_config()
    sink = EsSink(config)
    sink.write(docs)
    report = sink.close()
    assert report.dead_lettered == 0, report
    ns = config.namespace
    es_node.request("POST", f"/logs-*-{ns}/_refresh")
    engine = RuleEngine.from_paths()
    want = _engine_matches(engine, docs)
    lucene = {r.info.name: q for r, q in zip(engine.rules, _rule_queries(engine))}
    checked = 0
    for name, query in sorted(lucene.items()):
        valid = es_node.request("POST", f"/logs-*-{ns}/_validate/query",
                                {"query": {"query_string": {"query": query}}})
        assert valid.get("valid") is True, (name, query, valid)
        res = es_node.request("POST", f"/logs-*-{ns}/_search",
                              {"size": 1000, "_source": ["event.id"],
                               "query": {"query_string": {"query": query}}})
        got = {h["_source"]["event"]["id"] for h in res["hits"]["hits"]}
        assert got == want[name], (name, query, sorted(got ^ want[name])[:5])
        checked += bool(got)
    # not vacuous: most rules match something in the indexed captures
    assert checked >= 14, checked
    # and every alert the pipeline raised points at documents the SIEM query finds too
    for a in (d for d in docs if d["event"]["kind"] == "alert"):
        base = [c.base for c in engine.correlations if c.info.name == a["rule"]["name"]]
        names = base[0] if base else (a["rule"]["name"],)
        assert set(a["related"]["id"]) <= set().union(*(want[n] for n in names)), a["rule"]["name"]


def _rule_queries(engine):
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection

    from monitor.rule_export import _raw, dataset_pipeline
    for r in engine.rules:
        yield LuceneBackend(dataset_pipeline()).convert(SigmaCollection.from_dicts([_raw(r)]))[0]


def test_every_rule_exports_to_lucene_eql_and_kibana():
    engine = RuleEngine.from_paths()
    alerting = {r.info.name for r in engine.rules if not r.silent} | {c.info.name for c in engine.correlations}
    for lang in ("lucene", "eql"):
        qs = queries(engine, lang)
        assert {q.rule for q in qs} == alerting
        assert all(q.query for q in qs)
    kib = kibana_rules(engine)
    assert {r["rule_id"] for r in kib} == {r.info.id for r in engine.rules if not r.silent} | \
        {c.info.id for c in engine.correlations}
    for r in kib:
        for key in ("rule_id", "name", "description", "risk_score", "severity", "type", "query", "language",
                    "index", "threat", "from", "interval"):
            assert key in r, (r["name"], key)
        assert r["severity"] in ("low", "medium", "high", "critical")
        assert r["index"] and all(i.startswith("logs-") and i.endswith("-*") for i in r["index"])
        if r["type"] == "threshold":
            assert r["threshold"]["value"] >= 1 and r["threshold"]["field"]
        assert all(t["framework"] == "MITRE ATT&CK" and t["technique"] for t in r["threat"])
    by_name = {r["tags"][1]: r for r in kib}
    assert by_name["rule:dtls-handshake-failures"]["threshold"] == {"field": ["client.ip"], "value": 3}
    assert by_name["rule:dangerous-execute"]["severity_mapping"] == [
        {"field": "lwm2m.security", "operator": "equals", "value": "nosec", "severity": "high"}]
    assert by_name["rule:weak-psk"]["enabled"] is False
    lines = render(engine, "kibana").splitlines()
    assert [json.loads(x)["rule_id"] for x in lines] == [r["rule_id"] for r in kib]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_cli_rules_list_export_and_test():
    ls = _cli("rules", "list")
    assert ls.returncode == 0, ls.stderr
    assert "endpoint-identity-mismatch" in ls.stdout and "weak-psk" in ls.stdout
    ex = _cli("rules", "export", "--target", "lucene")
    assert ex.returncode == 0 and "event.dataset:dtls.handshake AND dtls.key.weak:true" in ex.stdout
    ok = _cli("rules", "test", "rules/firmware-insecure-uri.yml", "pcaps/leshan-nosec-operations.pcap")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[0])["rule"] == "firmware-insecure-uri"
    no = _cli("rules", "test", "rules/firmware-insecure-uri.yml", "pcaps/dtls-clean-psk.pcap",
              "--keys", "pcaps/dtls-clean-psk.keys.yaml")
    assert no.returncode == 1 and no.stdout == ""


def test_cli_rule_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("title: x\nid: 0b0d8a4e-8b0e-4c5e-9d0a-4b7c1f0e2a11\nname: bad-rule\nstatus: experimental\n"
                   "logsource: {product: lwm2m-monitor}\ndetection:\n  sel:\n    a|nosuchmodifier: 1\n"
                   "  condition: sel\nlevel: high\n")
    r = _cli("rules", "list", "--rules", str(tmp_path))
    assert r.returncode == 4
    assert f"{bad}:8:" in r.stderr and "nosuchmodifier" in r.stderr
