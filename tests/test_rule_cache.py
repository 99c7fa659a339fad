"""The parsed-rules cache (monitor/rule_cache.py): a warm start skips pySigma and gives the same
rules and the same alerts; a changed, damaged or unwritable cache only costs a parse."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor import rule_cache
from monitor.rule_engine import BUILTIN_DIR, RuleConfig, RuleEngine, RuleError, load_specs, rule_files
from monitor.rule_specs import spec_from_json, spec_to_json

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_FILES = rule_files([BUILTIN_DIR])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("LWM2M_MONITOR_CACHE_DIR", str(d))
    return d


def _engine_view(engine: RuleEngine) -> list:
    """What the engine runs on: every rule's and correlation's settings and conditions."""
    return [(r.info, r.level, r.category, r.conditions, r.fields, r.needs_action, r.needs_dataset,
             [(v, lvl) for _, v, lvl in r.severity_mapping], r.enabled, r.silent, r.fold_ns,
             [c.info.name for c in r.correlations]) for r in engine.rules] + \
        [(c.info, c.level, c.kind, c.base, c.group_by, c.timespan_ns, c.op, c.threshold, c.value_field,
          c.generate, c.enabled) for c in engine.correlations]


def test_every_builtin_spec_survives_json_unchanged():
    specs = load_specs(BUILTIN_FILES)
    assert len(specs) == len(BUILTIN_FILES) >= 18
    assert [spec_from_json(spec_to_json(s)) for s in specs] == specs


def test_a_warm_start_reads_the_entry_and_builds_the_same_engine(cache):
    cold = RuleEngine.from_paths()
    (entry,) = cache.glob("rules-*.json")
    before = entry.stat().st_mtime_ns
    warm = RuleEngine.from_paths()          # (that it skips pySigma: the subprocess test below)
    assert _engine_view(warm) == _engine_view(cold)
    assert entry.stat().st_mtime_ns == before


def test_a_warm_start_imports_neither_pysigma_nor_pyyaml(cache):
    code = ("import sys; from monitor.rule_engine import RuleEngine; e = RuleEngine.from_cli(); "
            "print(len(e.rules), *(m in sys.modules for m in ('sigma', 'pyparsing', 'yaml')))")
    env = {**os.environ, "LWM2M_MONITOR_CACHE_DIR": str(cache)}
    run = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.split() for _ in range(2)]
    assert run[0][1] == "True"                       # cold: parsed with pySigma
    assert run[1] == [run[0][0], "False", "False", "False"]


def test_a_changed_rule_file_is_parsed_again(cache, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (ROOT / "rules" / "nosec-transport.yml").read_text()
    (rules / "nosec-transport.yml").write_text(text)
    first = RuleEngine.from_paths(None, [str(rules)], RuleConfig())
    assert first.rules[0].level != "critical"
    (rules / "nosec-transport.yml").write_text(text.replace(f"level: {first.rules[0].level}", "level: critical"))
    second = RuleEngine.from_paths(None, [str(rules)], RuleConfig())
    assert second.rules[0].level == "critical"
    assert len(list(cache.glob("rules-*.json"))) == 2


@pytest.mark.parametrize("damage", [b"", b"{", b"[1, 2]", b'{"key": "x", "specs": []}', "specs"])
def test_a_damaged_entry_is_a_miss_not_an_error(cache, damage):
    want = _engine_view(RuleEngine.from_paths())
    (entry,) = cache.glob("rules-*.json")
    if damage == "specs":                            # right key, specs of the wrong shape
        key = entry.name[len("rules-"):-len(".json")]
        damage = b'{"key": "%s", "specs": [{"type": "rule", "info": 5}]}' % key.encode()
    entry.write_bytes(damage)
    assert _engine_view(RuleEngine.from_paths()) == want
    assert entry.read_bytes() != damage               # and the entry is written again


def test_conditions_of_the_wrong_types_in_an_entry_are_a_miss(cache):
    want = _engine_view(RuleEngine.from_paths())
    (entry,) = cache.glob("rules-*.json")
    for bad in ([["zz"]], [["field", "a", ["str", [7]]]], [["field", 5, ["str", ["x"]]]], [["re", "("]]):
        raw = orjson.loads(entry.read_bytes())
        next(s for s in raw["specs"] if s["type"] == "rule")["conditions"] = bad
        entry.write_bytes(orjson.dumps(raw))
        assert rule_cache.load(raw["key"]) is None, bad
        assert _engine_view(RuleEngine.from_paths()) == want


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LWM2M_MONITOR_CACHE_DIR", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    RuleEngine.from_paths()
    assert not any(tmp_path.rglob("rules-*.json"))


def test_an_unwritable_cache_costs_only_the_parse(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LWM2M_MONITOR_CACHE_DIR", str(blocker / "cache"))
    assert _engine_view(RuleEngine.from_paths())


def test_errors_are_not_cached(cache, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yml").write_text(
        "title: t\nid: 0b7a3c4e-1d2f-4a5b-8c9d-000000000001\nname: bad\nstatus: test\n"
        "logsource: {product: lwm2m-monitor}\ndetection:\n  sel:\n    a|expand: '%x%'\n  condition: sel\nlevel: low\n")
    for _ in range(2):
        with pytest.raises(RuleError, match=r"bad.yml:\d+: .*not supported"):
            RuleEngine.from_paths(None, [str(rules)], RuleConfig())
    assert not list(cache.glob("rules-*.json"))


def test_cold_and_warm_runs_raise_the_same_alerts(cache, tmp_path):
    pcap = ROOT / "pcaps" / "dtls-mbedtls-identity-mismatch.pcap"
    keys = ROOT / "pcaps" / "dtls-mbedtls-identity-mismatch.keys.yaml"
    outs = []
    for name, cache_dir in (("cold", cache), ("warm", cache), ("off", "off")):
        out = tmp_path / f"{name}.ndjson"
        env = {**os.environ, "LWM2M_MONITOR_CACHE_DIR": str(cache_dir)}
        subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", str(pcap), "--keys", str(keys),
                        "--out", str(out), "-q"], cwd=ROOT, env=env, check=True, capture_output=True)
        outs.append(out.read_bytes())
    assert b'"kind":"alert"' in outs[0] and b"endpoint-identity-mismatch" in outs[0]
    assert outs[0] == outs[1] == outs[2]
    assert len(list(cache.glob("rules-*.json"))) == 1


def test_store_refuses_specs_json_would_change(cache):
    specs = load_specs(BUILTIN_FILES)
    rule = next(s for s in specs if hasattr(s, "severity_mapping"))
    import dataclasses
    import datetime
    odd = dataclasses.replace(rule, severity_mapping=(("a", datetime.date(2026, 1, 1), "high"),))
    assert rule_cache.store("k" * 64, [odd]) is False
    assert rule_cache.store("k" * 64, specs) is True
    assert rule_cache.load("k" * 64) == specs
