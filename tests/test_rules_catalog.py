"""Meta-tests over the rule catalog (Elastic detection-rules style) and per-rule document cases."""
from __future__ import annotations

import os
import re
import uuid

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from monitor import fields
from monitor.rule_engine import LEVELS, RuleEngine
from rules_cases import ROOT, cases, rule_paths, run_documents

CATALOG = {"nosec-transport", "bootstrap-nosec", "cleartext-credentials", "endpoint-identity-mismatch",
           "sha1-cipher-suite", "weak-cipher-suite", "no-extended-master-secret", "dtls-compression",
           "weak-key", "dtls-handshake-failures", "endpoint-multiple-sources", "unknown-endpoint",
           "dangerous-execute", "firmware-insecure-uri", "access-denied-burst", "oscore-replay",
           "decryption-failure", "weak-psk"}
REQUIRED = ("title", "id", "name", "status", "description", "references", "author", "date", "level",
            "falsepositives")


def _raw(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("path", rule_paths(), ids=os.path.basename)
def test_every_file_loads_with_pysigma_and_has_the_house_attributes(path):
    raw = _raw(path)
    if "correlation" in raw:
        SigmaCorrelationRule.from_dict(raw)
    else:
        coll = SigmaCollection.from_dicts([raw], collect_errors=True)
        assert not coll.errors, coll.errors
        assert len(coll.rules) == 1
    for key in REQUIRED:
        assert raw.get(key), f"{path}: {key} missing"
    assert str(uuid.UUID(raw["id"])) == raw["id"] and uuid.UUID(raw["id"]).version == 4
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", raw["name"])
    assert os.path.basename(path) == raw["name"] + ".yml", "one rule per file, named after its slug"
    assert raw["level"] in LEVELS
    if "correlation" not in raw:
        assert raw["logsource"] == {"product": "lwm2m-monitor", **({"category": raw["logsource"]["category"]}
                                                                   if "category" in raw["logsource"] else {})}
    for tag in raw.get("tags", []):
        assert re.fullmatch(r"attack\.t\d{4}(\.\d{3})?", tag), tag


def test_whole_catalog_is_one_sigma_collection_with_resolved_correlations():
    coll = SigmaCollection.from_dicts([_raw(p) for p in rule_paths()], collect_errors=True)
    assert not coll.errors, coll.errors
    coll.resolve_rule_references()
    corr = [r for r in coll.rules if isinstance(r, SigmaCorrelationRule)]
    assert {c.name for c in corr} == {"dtls-handshake-failures", "access-denied-burst"}
    assert all(ref.rule.name for c in corr for ref in c.rules)


def test_catalog_is_complete_and_names_and_ids_are_unique():
    raws = [_raw(p) for p in rule_paths()]
    names = [r["name"] for r in raws]
    ids = [r["id"] for r in raws]
    assert len(set(names)) == len(names)
    assert len(set(ids)) == len(ids)
    assert CATALOG <= set(names), CATALOG - set(names)
    engine = RuleEngine.from_paths()          # the engine's own checks pass on the catalog
    assert {r.info.name for r in engine.rules} | {c.info.name for c in engine.correlations} == set(names)


def test_every_field_a_rule_uses_is_declared_in_fields_yml():
    declared = fields.load()
    engine = RuleEngine.from_paths()
    used = {f: r.info.name for r in engine.rules for f in r.fields}
    used.update({g: c.info.name for c in engine.correlations for g in c.group_by})
    missing = {f: rule for f, rule in used.items() if f not in declared}
    assert not missing, f"fields used by rules but not declared in monitor/fields.yml: {missing}"


def test_every_rule_has_a_positive_and_a_negative_case():
    names = {_raw(p)["name"] for p in rule_paths()}
    have = cases()
    assert set(have) == names, (names ^ set(have))
    for name, case in have.items():
        pos, neg = case.get("positive") or {}, case.get("negative") or {}
        assert pos.get("documents") or pos.get("sequence") or pos.get("captures"), name
        assert neg.get("documents") or neg.get("captures"), name
        assert pos.get("captures") or name == "dtls-compression", \
            f"{name}: needs a real capture that fires it"


def _doc_cases():
    for name, case in sorted(cases().items()):
        for i, doc in enumerate((case.get("positive") or {}).get("documents") or []):
            yield pytest.param(name, [doc], True, case.get("config"), id=f"{name}-pos{i}")
        seq = (case.get("positive") or {}).get("sequence")
        if seq:
            yield pytest.param(name, seq, True, case.get("config"), id=f"{name}-sequence")
        neg = (case.get("negative") or {}).get("documents")
        if neg:
            yield pytest.param(name, neg, False, case.get("config"), id=f"{name}-neg")


@pytest.mark.parametrize("rule,docs,positive,config", list(_doc_cases()))
def test_rule_on_documents(rule, docs, positive, config):
    n, out = run_documents(rule, docs, config)
    if positive:
        assert n >= 1, f"{rule} did not fire on {docs}"
    else:
        assert n == 0, f"{rule} fired on a negative case: {[a.get('message') for a in out]}"


def test_case_files_only_reference_existing_captures():
    for name, case in cases().items():
        for side in ("positive", "negative"):
            for c in (case.get(side) or {}).get("captures") or []:
                for key in ("pcap", "keys", "psk_wordlist"):
                    if key in c:
                        assert os.path.isfile(os.path.join(ROOT, c[key])), (name, c[key])


def test_pysigma_validators_find_no_issue():
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators
    # the ATT&CK tag validators download the MITRE data at run time; tags are checked above instead
    offline = [v for k, v in validators.items() if "attack" not in k and "tag" not in k]
    assert len(offline) >= 15
    coll = SigmaCollection.from_dicts([_raw(p) for p in rule_paths()])
    issues = SigmaValidator(offline).validate_rules(coll)
    assert not issues, [(type(i).__name__, [r.name for r in i.rules]) for i in issues]
