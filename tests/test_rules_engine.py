"""Engine semantics with small user rules: Sigma value matching, folding, correlation windows,
configuration, informational levels, and errors that name file and line."""
from __future__ import annotations

import textwrap

import pytest

from monitor.rule_engine import RuleConfig, RuleEngine, RuleError

UUIDS = iter(f"7a0c3f1e-0d4b-4c1a-9e2f-{n:012x}" for n in range(1, 1000))


def _rule(tmp_path, name: str, detection: str, *, level: str = "high", category: str | None = "lwm2m.operation",
          extra: str = "") -> str:
    ls = f"{{product: lwm2m-monitor, category: {category}}}" if category else "{product: lwm2m-monitor}"
    text = textwrap.dedent(f"""\
        title: Test {name}
        id: {next(UUIDS)}
        name: {name}
        status: test
        description: test rule
        author: tests
        date: 2026-11-23
        logsource: {ls}
        detection:
        """) + textwrap.indent(textwrap.dedent(detection), "  ") + f"level: {level}\n" + extra
    p = tmp_path / f"{name}.yml"
    p.write_text(text)
    return str(p)


def _engine(tmp_path, config: dict | None = None) -> RuleEngine:
    return RuleEngine.from_paths(None, [str(tmp_path)], RuleConfig.from_dict(config or {}))


def _doc(ts: str = "2026-11-23T10:00:00.000000Z", eid: str = "e1", **lw) -> dict:
    return {"@timestamp": ts, "event": {"kind": "event", "dataset": "lwm2m.operation", "action": "read", "id": eid},
            "client": {"ip": "192.0.2.1", "port": 56830}, "server": {"ip": "198.51.100.7", "port": 5683},
            "lwm2m": {"endpoint": "ep-1", **lw}}


MATCHING = [
    ("lwm2m.path: /3/0/*", {"path": "/3/0/13"}, {"path": "/3/1/13"}),
    ("lwm2m.path: /3/?/4", {"path": "/3/0/4"}, {"path": "/3/10/4"}),
    ("lwm2m.endpoint: EP-1", {}, None),                                  # case-insensitive
    ("lwm2m.paths|contains: '/5/'", {"paths": ["/3/0/1", "/5/0/1"]}, {"paths": ["/3/0/1"]}),
    ("lwm2m.paths|contains|all: ['/3/', '/5/']", {"paths": ["/3/0/1", "/5/0/1"]}, {"paths": ["/5/0/1"]}),
    ("lwm2m.path|endswith: /4", {"path": "/3/0/4"}, {"path": "/3/0/40"}),
    ("lwm2m.path|re: '^/3/0/(4|5)$'", {"path": "/3/0/5"}, {"path": "/3/0/6"}),
    ("lwm2m.lifetime|gt: 300", {"lifetime": 301}, {"lifetime": 300}),
    ("lwm2m.lifetime|lte: 300", {"lifetime": 300}, {"lifetime": "x"}),
    ("lwm2m.lifetime: 300", {"lifetime": 300}, {"lifetime": 3000}),
    ("lwm2m.flag: true", {"flag": True}, {"flag": "yes"}),
    ("lwm2m.flag: false", {"flag": False}, {"flag": None}),
    ("lwm2m.missing: null", {}, {"missing": "x"}),
    ("lwm2m.present|exists: true", {"present": 0}, {}),
    ("client.ip|cidr: 192.0.2.0/24", {}, None),
    ("lwm2m.values.path: /3/0/9", {"values": [{"path": "/3/0/0"}, {"path": "/3/0/9"}]},
     {"values": [{"path": "/3/0/0"}]}),
]


@pytest.mark.parametrize("selection,hit,miss", MATCHING, ids=[m[0] for m in MATCHING])
def test_sigma_value_semantics(tmp_path, selection, hit, miss):
    _rule(tmp_path, "t-rule", f"sel:\n  {selection}\ncondition: sel\n")
    assert _engine(tmp_path).process(_doc(**hit)), f"{selection} should match {hit}"
    if miss is not None:
        assert not _engine(tmp_path).process(_doc(**miss)), f"{selection} should not match {miss}"


def test_condition_logic_and_keywords(tmp_path):
    _rule(tmp_path, "t-logic", """\
        a:
          lwm2m.path: /3/0/4
        b:
          lwm2m.security: nosec
        kw:
          - secret-word
        condition: (a and not b) or kw
        """)
    e = _engine(tmp_path)
    assert e.process(_doc(path="/3/0/4", security="dtls"))
    assert not _engine(tmp_path).process(_doc(path="/3/0/4", security="nosec"))
    assert _engine(tmp_path).process(_doc(path="/1", note="has SECRET-WORD in it".split()[1]))


def test_category_is_the_dataset_prefilter(tmp_path):
    _rule(tmp_path, "t-cat", "sel:\n  lwm2m.endpoint: ep-1\ncondition: sel\n", category="dtls.handshake")
    assert not _engine(tmp_path).process(_doc())


def test_folding_per_endpoint_in_packet_time(tmp_path):
    _rule(tmp_path, "t-fold", "sel:\n  lwm2m.path: /x\ncondition: sel\n")
    e = _engine(tmp_path, {"fold_window": "60s"})
    out = e.process(_doc("2026-11-23T10:00:00.000000Z", "a", path="/x"))
    assert [a["event"]["count"] for a in out] == [1]
    assert e.process(_doc("2026-11-23T10:00:10.000000Z", "b", path="/x")) == []
    assert e.process(_doc("2026-11-23T10:00:20.000000Z", "c", path="/x")) == []
    other = _doc("2026-11-23T10:00:30.000000Z", "d", path="/x")
    other["lwm2m"]["endpoint"] = "ep-2"                        # another endpoint: its own alert
    assert [a["lwm2m"]["endpoint"] for a in e.process(other)] == ["ep-2"]
    # a later document of any kind past the window end flushes the folded alert
    late = e.process(_doc("2026-11-23T10:01:05.000000Z", "z", path="/other"))
    assert len(late) == 1 and late[0]["event"]["count"] == 2 and late[0]["rule"]["folded"] is True
    assert late[0]["related"]["id"] == ["b", "c"]
    assert late[0]["event"]["start"] == "2026-11-23T10:00:10.000000Z"
    assert late[0]["event"]["end"] == "2026-11-23T10:00:20.000000Z"
    assert e.close() == []
    # pending folds come out at close
    e2 = _engine(tmp_path)
    e2.process(_doc("2026-11-23T10:00:00.000000Z", "a", path="/x"))
    e2.process(_doc("2026-11-23T10:00:01.000000Z", "b", path="/x"))
    assert [a["event"]["count"] for a in e2.close()] == [1]


def test_folded_alert_evidence_is_the_latest_repeat(tmp_path):
    """A fold keeps its latest repeat (documents are read-only once built) and the alert
    copies its evidence: the folded alert carries the latest
    repeat's evidence, including values the fast encoder refuses (an int key, a bignum), and
    changing the alert does not reach the trigger."""
    _rule(tmp_path, "t-fold", "sel:\n  lwm2m.path: /x\ncondition: sel\n")
    e = _engine(tmp_path, {"fold_window": "60s"})
    e.process(_doc("2026-11-23T10:00:00.000000Z", "a", path="/x"))
    b = _doc("2026-11-23T10:00:10.000000Z", "b", path="/x", values=[{"path": "/3/0/9", "value": 2**70}],
             registration={"objects": {5: "odd int key"}})
    e.process(b)
    c = _doc("2026-11-23T10:00:20.000000Z", "c", path="/x", values=[{"path": "/3/0/9", "value": 7.5}])
    e.process(c)
    (folded,) = e.close()
    assert folded["event"]["count"] == 2 and folded["related"]["id"] == ["b", "c"]
    assert folded["lwm2m"]["values"] == [{"path": "/3/0/9", "value": 7.5}]
    assert folded["client"] == {"ip": "192.0.2.1", "port": 56830}
    folded["lwm2m"]["values"][0]["value"] = "changed in the alert"
    assert c["lwm2m"]["values"] == [{"path": "/3/0/9", "value": 7.5}]
    e2 = _engine(tmp_path, {"fold_window": "60s"})
    e2.process(_doc("2026-11-23T10:00:00.000000Z", "a", path="/x"))
    e2.process(b)
    (odd,) = e2.close()
    assert odd["lwm2m"]["values"] == [{"path": "/3/0/9", "value": 2**70}]
    assert odd["lwm2m"]["registration"] == {"objects": {5: "odd int key"}}
    odd["lwm2m"]["registration"]["objects"][5] = "changed in the alert"     # kept as a dict: copied
    assert b["lwm2m"]["registration"] == {"objects": {5: "odd int key"}}


def test_correlation_window_slides_and_groups(tmp_path):
    _rule(tmp_path, "t-base", "sel:\n  event.outcome: failure\ncondition: sel\n", category="dtls.handshake")
    (tmp_path / "t-corr.yml").write_text(textwrap.dedent(f"""\
        title: Corr
        id: {next(UUIDS)}
        name: t-corr
        status: test
        correlation:
          type: event_count
          rules: [t-base]
          group-by: [client.ip]
          timespan: 60s
          condition: {{gte: 2}}
        level: high
        """))

    def hs(ts, ip, eid):
        return {"@timestamp": ts, "event": {"kind": "event", "dataset": "dtls.handshake", "action": "handshake",
                                            "outcome": "failure", "id": eid},
                "client": {"ip": ip, "port": 1}, "server": {"ip": "198.51.100.7", "port": 5684}}
    e = _engine(tmp_path)
    assert e.process(hs("2026-11-23T10:00:00.000000Z", "192.0.2.1", "a")) == []     # base rule is silent
    assert e.process(hs("2026-11-23T10:00:30.000000Z", "192.0.2.2", "b")) == []     # other group
    assert e.process(hs("2026-11-23T10:01:10.000000Z", "192.0.2.1", "c")) == []     # "a" left the window
    out = e.process(hs("2026-11-23T10:01:20.000000Z", "192.0.2.1", "d"))
    assert [a["rule"]["name"] for a in out] == ["t-corr"] and out[0]["related"]["id"] == ["d"]
    # the threshold is tunable
    e2 = _engine(tmp_path, {"rules": {"t-corr": {"threshold": 3}}})
    for i, ts in enumerate(("10:00:00", "10:00:10", "10:00:20")):
        out = e2.process(hs(f"2026-11-23T{ts}.000000Z", "192.0.2.1", str(i)))
    assert [a["rule"]["name"] for a in out] == ["t-corr"]


def test_value_count_correlation_and_unsupported_types(tmp_path):
    _rule(tmp_path, "t-any", "sel:\n  event.action: register\ncondition: sel\n")
    corr = textwrap.dedent(f"""\
        title: Many endpoints from one address
        id: {next(UUIDS)}
        name: t-vc
        status: test
        correlation:
          type: value_count
          rules: [t-any]
          group-by: [client.ip]
          timespan: 1m
          condition: {{gte: 3, field: lwm2m.endpoint}}
        level: medium
        """)
    (tmp_path / "t-vc.yml").write_text(corr)
    e = _engine(tmp_path)

    def reg(ts, ep):
        d = _doc(f"2026-11-23T10:00:{ts:02d}.000000Z", f"r{ts}")
        d["event"]["action"], d["lwm2m"]["endpoint"] = "register", ep
        return d
    names = []
    for ts, ep in ((0, "a"), (1, "a"), (2, "b"), (3, "b")):
        names += [x["rule"]["name"] for x in e.process(reg(ts, ep))]
    assert "t-vc" not in names                         # 4 registrations, 2 distinct endpoints
    assert "t-vc" in [x["rule"]["name"] for x in e.process(reg(4, "c"))]
    (tmp_path / "t-vc.yml").write_text(corr.replace("value_count", "temporal").replace(
        "  condition: {gte: 3, field: lwm2m.endpoint}\n", ""))
    with pytest.raises(RuleError, match="t-vc.yml:6: correlation type temporal is not supported"):
        _engine(tmp_path)


def test_config_errors_name_the_config_file_and_line(tmp_path):
    _rule(tmp_path, "t-c", "sel:\n  a: 1\ncondition: sel\n")
    cfg = tmp_path / "conf" / "cfg.yaml"
    cfg.parent.mkdir()
    cfg.write_text("fold_window: 5m\nrules:\n  t-c: {enabled: true}\n  t-missing: {enabled: false}\n")
    with pytest.raises(RuleError, match=f"^{cfg}:4: rule 't-missing' does not exist"):
        RuleEngine.from_paths(None, [str(tmp_path)], str(cfg))
    cfg.write_text("rules:\n  t-c: {fold_window: soon}\n")
    with pytest.raises(RuleError, match=f"^{cfg}:2: rules.t-c: duration 'soon'"):
        RuleEngine.from_paths(None, [str(tmp_path)], str(cfg))


def test_severity_mapping_and_informational_levels(tmp_path):
    _rule(tmp_path, "t-info", "sel:\n  event.action: execute\ncondition: sel\n", level="informational",
          extra="severity_mapping:\n  - {field: lwm2m.security, value: nosec, level: critical}\n")
    doc = _doc(security="dtls")
    doc["event"]["action"] = "execute"
    assert _engine(tmp_path).process(doc) == [] and doc["tags"] == ["t-info"]
    doc2 = _doc(security="nosec")
    doc2["event"]["action"] = "execute"
    out = _engine(tmp_path).process(doc2)
    assert out[0]["event"]["severity"] == 4 and out[0]["rule"]["level"] == "critical"
    doc3 = _doc(security="dtls")
    doc3["event"]["action"] = "execute"
    out = _engine(tmp_path, {"informational": "alert"}).process(doc3)
    assert out[0]["event"]["severity"] == 1 and out[0]["event"]["risk_score"] == 10


def test_disable_and_level_override(tmp_path):
    _rule(tmp_path, "t-off", "sel:\n  lwm2m.endpoint: ep-1\ncondition: sel\n")
    assert _engine(tmp_path, {"rules": {"t-off": {"enabled": False}}}).process(_doc()) == []
    out = _engine(tmp_path, {"rules": {"t-off": {"level": "low"}}}).process(_doc())
    assert out[0]["event"]["severity"] == 1


def test_alert_document_shape(tmp_path):
    _rule(tmp_path, "t-shape", "sel:\n  lwm2m.endpoint: ep-1\ncondition: sel\n",
          extra="references:\n  - https://example.test/ref\n")
    doc = _doc(path="/3/0/4", identity={"value": "psk-1", "type": "psk"})
    doc["tls"] = {"cipher": "TLS_PSK_WITH_AES_128_CCM_8"}
    a = _engine(tmp_path).process(doc)[0]
    assert a["event"]["kind"] == "alert" and a["event"]["dataset"] == "lwm2m.alert"
    assert a["@timestamp"] == doc["@timestamp"]
    assert a["rule"]["name"] == "t-shape" and a["rule"]["reference"] == ["https://example.test/ref"]
    assert a["lwm2m"]["identity"]["value"] == "psk-1" and a["tls"]["cipher"] == "TLS_PSK_WITH_AES_128_CCM_8"
    assert a["related"] == {"hosts": ["ep-1"], "ip": ["192.0.2.1", "198.51.100.7"], "user": ["psk-1"], "id": ["e1"]}
    assert a["message"] == ("Test t-shape on /3/0/4: endpoint ep-1, between client 192.0.2.1:56830 "
                            "and server 198.51.100.7:5683.")
    a["lwm2m"]["endpoint"] = "changed"                     # evidence is a copy
    assert doc["lwm2m"]["endpoint"] == "ep-1"


ERRORS = [
    ("title: [unclosed\n", ":2:", "YAML"),
    ("id: 0b0d8a4e-8b0e-4c5e-9d0a-4b7c1f0e2a11\nname: x-y\nlogsource: {product: lwm2m-monitor}\n"
     "detection: {sel: {a: 1}, condition: sel}\n", ":1:", "title"),
    ("title: t\nid: 0b0d8a4e-8b0e-4c5e-9d0a-4b7c1f0e2a12\nname: Not_A_Slug\nlogsource: {product: lwm2m-monitor}\n"
     "detection: {sel: {a: 1}, condition: sel}\n", ":3:", "slug"),
    ("title: t\nid: 0b0d8a4e-8b0e-4c5e-9d0a-4b7c1f0e2a13\nname: x-y\nlogsource: {product: windows}\n"
     "detection: {sel: {a: 1}, condition: sel}\n", ":4:", "product"),
    ("title: t\nid: 0b0d8a4e-8b0e-4c5e-9d0a-4b7c1f0e2a14\nname: x-y\nlogsource: {product: lwm2m-monitor}\n"
     "detection:\n  sel: {a: 1}\n  condition: sel and missing\n", ":7:", "missing"),
]


@pytest.mark.parametrize("text,line,word", ERRORS)
def test_invalid_rules_name_file_and_line(tmp_path, text, line, word):
    p = tmp_path / "r.yml"
    p.write_text(text)
    with pytest.raises(RuleError) as err:
        _engine(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{p}{line}") and word in msg, msg


def test_duplicate_names_and_unknown_config_rules_are_errors(tmp_path):
    _rule(tmp_path, "t-dup", "sel:\n  a: 1\ncondition: sel\n")
    dup = (tmp_path / "t-dup.yml").read_text().replace("\nid: ", "\nid: 1").replace("id: 17a0c", "id: 8a0c")
    (tmp_path / "t-dup2.yml").write_text(dup)
    with pytest.raises(RuleError, match="name 't-dup' already used"):
        _engine(tmp_path)
    (tmp_path / "t-dup2.yml").unlink()
    with pytest.raises(RuleError, match="rule 'nope' does not exist"):
        _engine(tmp_path, {"rules": {"nope": {"enabled": False}}})
    with pytest.raises(RuleError, match="unknown key 'rule'"):
        RuleConfig.from_dict({"rule": {}})


def test_unsupported_modifier_fails_at_load_not_at_match(tmp_path):
    _rule(tmp_path, "t-ref", "sel:\n  lwm2m.endpoint|fieldref: lwm2m.identity.value\ncondition: sel\n")
    with pytest.raises(RuleError, match="not supported"):
        _engine(tmp_path)


def test_builtin_catalog_with_example_config_and_user_rules(tmp_path):
    _rule(tmp_path, "site-local-rule", "sel:\n  lwm2m.endpoint: ep-1\ncondition: sel\n")
    e = RuleEngine.from_paths(extra_dirs=[str(tmp_path)], config="rules/config.example.yml")
    names = {r.info.name for r in e.rules}
    assert "site-local-rule" in names and "nosec-transport" in names
    assert e.config.facts.endpoint_allowlist == frozenset({"mbedtls-ep-01", "leshan-client-psk"})
    out = e.process(_doc())
    assert {a["rule"]["name"] for a in out} == {"site-local-rule", "unknown-endpoint"}


def test_folded_evidence_line_is_shared_with_the_ndjson_sink(tmp_path):
    """A repeat's document is encoded once: the fold keeps that line as its evidence, and the
    NDJSON sink writes the same line instead of encoding the document again."""
    from monitor.sinks import NdjsonSink, dumps_line
    _rule(tmp_path, "t-fold", "sel:\n  lwm2m.path: /x\ncondition: sel\n")
    e = _engine(tmp_path, {"fold_window": "60s"})
    lines = e.share_lines()
    first = _doc("2026-11-23T10:00:00.000000Z", "a", path="/x")
    e.process(first)
    assert lines == {}                               # an immediate alert keeps no evidence
    repeat = _doc("2026-11-23T10:00:10.000000Z", "b", path="/x", values=[{"path": "/3/0/9", "value": 7.5}])
    e.process(repeat)
    assert lines == {id(repeat): (repeat, dumps_line(repeat))}
    sink = NdjsonSink(str(tmp_path / "out.ndjson"))
    sink.reuse_lines(lines)
    sink.write([first, repeat])
    sink.close()
    assert lines == {}                               # taken by the sink
    assert (tmp_path / "out.ndjson").read_bytes() == dumps_line(first) + dumps_line(repeat)
    (folded,) = e.close()
    assert folded["lwm2m"]["values"] == [{"path": "/3/0/9", "value": 7.5}]
    assert folded["related"]["id"] == ["b"]


def test_shared_evidence_lines_stay_bounded_without_a_sink(tmp_path):
    from monitor import rule_engine
    _rule(tmp_path, "t-fold", "sel:\n  lwm2m.path: /x\ncondition: sel\n")
    e = _engine(tmp_path, {"fold_window": "3600s"})
    lines = e.share_lines()
    for i in range(rule_engine.MAX_SHARED_LINES + 10):
        e.process(_doc(f"2026-11-23T10:00:00.{i:06d}Z", f"e{i}", path="/x"))
    assert 0 < len(lines) <= rule_engine.MAX_SHARED_LINES
    (folded,) = e.close()
    assert folded["event"]["count"] == rule_engine.MAX_SHARED_LINES + 9


def test_close_hands_out_folded_alerts_in_batches_releasing_each_fold(tmp_path):
    """At the end of a run each pending fold is released as its alert is made, a batch at a
    time (a capture's end can hold a fold per endpoint), in the order `close()` gives."""
    _rule(tmp_path, "t-fold", "sel:\n  lwm2m.path: /x\ncondition: sel\n")

    def engine_with_folds():
        e = _engine(tmp_path, {"fold_window": "3600s"})
        for ep in range(50):
            for i, eid in enumerate(("a", "b")):
                d = _doc(f"2026-11-23T10:00:{i:02d}.{ep:06d}Z", f"{eid}{ep}", path="/x")
                d["lwm2m"]["endpoint"] = f"ep-{ep}"
                e.process(d)
        return e

    whole = engine_with_folds().close()
    assert len(whole) == 50 and all(a["rule"]["folded"] for a in whole)
    e = engine_with_folds()
    batches = e.close_batches(size=16)
    first = next(batches)
    assert len(first) == 16 and len(e._folds) == 50 - 16
    rest = [a for b in batches for a in b]
    assert first + rest == whole and e._folds == {}
