"""Per-rule test data (rules/tests/<slug>.yml) and helpers shared by the tests_rules* modules."""
from __future__ import annotations

import copy
import functools
import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES_DIR = os.path.join(ROOT, "rules")
CASES_DIR = os.path.join(RULES_DIR, "tests")


def rule_paths() -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(RULES_DIR, "*.yml")) if not os.path.basename(p).startswith("config."))


@functools.lru_cache(maxsize=None)
def cases() -> dict[str, dict]:
    out = {}
    for p in sorted(glob.glob(os.path.join(CASES_DIR, "*.yml"))):
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        out[data["rule"]] = data
    return out


def engine(config: dict | None = None, wordlist: str | None = None):
    from monitor.rule_engine import RuleConfig, RuleEngine
    cfg = RuleConfig.from_dict(copy.deepcopy(config or {}))
    if wordlist:
        from monitor.psk_audit import PskAudit
        cfg.rules.setdefault("weak-psk", {})["enabled"] = True
        eng = RuleEngine.from_paths(config=cfg)
        eng.psk_audit = PskAudit.from_file(os.path.join(ROOT, wordlist))
        return eng
    return RuleEngine.from_paths(config=cfg)


def fired(rule: str, eng, produced: list[dict], inputs: list[dict]) -> int:
    """How often `rule` fired: alerts, tags on informational hits, or base-rule hits."""
    alerts = [a for a in produced if a["event"]["kind"] == "alert" and a["rule"]["name"] == rule]
    tags = [d for d in inputs if rule in d.get("tags", ())]
    base = next((r for r in eng.rules if r.info.name == rule and r.silent), None)
    if base is not None:
        return eng.hits.get(rule, 0)
    return len(alerts) + len(tags)


def run_documents(rule: str, docs: list[dict], config: dict | None = None) -> tuple[int, list[dict]]:
    eng = engine(config)
    docs = copy.deepcopy(docs)
    out: list[dict] = []
    for d in docs:
        out.extend(eng.process(d))
    out.extend(eng.close())
    return fired(rule, eng, out, docs), out


@functools.lru_cache(maxsize=None)
def _pipeline_docs(pcap: str, keys: str | None, config_yaml: str, wordlist: str | None) -> tuple:
    from monitor import keys as keys_mod
    from monitor.analyze import collect
    from monitor.pipeline import PipelineConfig
    eng = engine(yaml.safe_load(config_yaml), wordlist)
    ks = keys_mod.load(os.path.join(ROOT, keys)) if keys else keys_mod.KeyStore()
    docs, _ = collect([os.path.join(ROOT, pcap)], PipelineConfig(keys=ks, rules=eng))
    return tuple(docs), eng


def run_capture(rule: str, case: dict, config: dict | None = None) -> tuple[int, list[dict]]:
    docs, eng = _pipeline_docs(case["pcap"], case.get("keys"), yaml.safe_dump(config or {}), case.get("psk_wordlist"))
    events = [d for d in docs if d["event"]["kind"] != "alert"]
    return fired(rule, eng, list(docs), events), list(docs)


def capture_alerts(pcap: str, keys: str | None = None, config: dict | None = None) -> list[dict]:
    docs, _ = _pipeline_docs(pcap, keys, yaml.safe_dump(config or {}), None)
    return [d for d in docs if d["event"]["kind"] == "alert"]


def capture_documents(pcap: str, keys: str | None = None, config: dict | None = None) -> list[dict]:
    docs, _ = _pipeline_docs(pcap, keys, yaml.safe_dump(config or {}), None)
    return list(docs)
