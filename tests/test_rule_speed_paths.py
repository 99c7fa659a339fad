"""The rule engine's fast paths give what the reference closures give.

`sigma_codegen.generate_rule` (one generated function per rule) must agree with
`sigma_compile.compile_rule` (the closure compiler, the reference) on every document, and the
engine's (event.dataset, event.action) pre-selection must only skip rules that cannot match.
"""
from __future__ import annotations

import copy
import glob
from collections import OrderedDict
from dataclasses import dataclass

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from sigma.rule import SigmaRule

from monitor import rule_facts
from monitor.rule_engine import Rule, RuleConfig, RuleEngine, load_file
from monitor.sigma_codegen import generate_rule, generate_runner, rule_source
from monitor.sigma_compile import compile_rule, detection_fields, required_values
from monitor.sigma_ir import rule_conditions

BUILTIN = [it for f in sorted(glob.glob("rules/*.yml")) if not f.endswith("config.example.yml")
           for it in load_file(f) if isinstance(it, Rule)]


class Text(str):
    """A str subclass: the generated code's `__class__ is str` tests must hand it to the reference."""


@dataclass(frozen=True)
class R:
    """A rule under test: its name and its conditions as `sigma_ir` trees."""

    name: str
    conditions: tuple


def _sigma(detection: dict, name: str = "t") -> R:
    rule = SigmaRule.from_dict({
        "title": "t", "id": "5d0c2b8e-0f0e-4d4c-9a51-2b1f6f0c7e11", "name": name, "status": "test",
        "logsource": {"product": "lwm2m-monitor"}, "level": "low", "detection": detection})
    return R(name, rule_conditions(rule))


# one detection per value kind and condition shape the compiler knows
SYNTHETIC = [
    {"s": {"a.b": "NoSec"}, "condition": "s"},
    {"s": {"a.b": ["x", "Y", "5", "true"]}, "condition": "s"},
    {"s": {"a.b": "*"}, "condition": "s"},
    {"s": {"a.b": "**"}, "condition": "s"},
    {"s": {"a.b": "x*"}, "condition": "s"},
    {"s": {"a.b": "?"}, "condition": "s"},
    {"s": {"a.b|contains": "Y"}, "condition": "s"},
    {"s": {"a.b|endswith": ["x", "5"]}, "condition": "s"},
    {"s": {"a.b|contains|all": ["x", "y"]}, "condition": "s"},
    {"s": {"a.b|re": "^[xy]+$"}, "condition": "s"},
    {"s": {"a.b|cased": "NoSec"}, "condition": "s"},
    {"s": {"a.b|cased": ["X*", "5"]}, "condition": "s"},
    {"s": {"a.b|neq": 1}, "condition": "s"},
    {"s": {"a.b|re|i": "^X"}, "condition": "s"},
    {"s": {"a.b|cidr": "192.0.2.0/24"}, "condition": "s"},
    {"s": {"a.b|gt": 1}, "condition": "s"},
    {"s": {"a.b|lte": 1.5}, "condition": "s"},
    {"s": {"a.b": 5}, "condition": "s"},
    {"s": {"a.b": 1.5}, "condition": "s"},
    {"s": {"a.b": True}, "condition": "s"},
    {"s": {"a.b": False}, "condition": "s"},
    {"s": {"a.b": None}, "condition": "s"},
    {"s": {"a.b|exists": True}, "condition": "s"},
    {"s": {"a.b|exists": False}, "condition": "s"},
    {"k": ["x", "5"], "condition": "k"},
    {"s": {"a": "x"}, "condition": "s"},
    {"s": {"a.b.c": ["x", "y"]}, "condition": "s"},
    {"s": {"a.b": "x", "c": "y"}, "t": {"a": True}, "u": {"c|exists": True},
     "condition": "(s or not t) and u"},
    {"s": {"a.b": "x"}, "t": {"c": "y"}, "condition": ["s", "t"]},
    {"s1": {"a.b": "x"}, "s2": {"a.b": "y*"}, "condition": "1 of s*"},
    {"s": {"a.b": "x'\"\n\\}{"}, "t": {"c'\"\\.d": "it's"}, "condition": "s or t"},
]
SYNTHETIC_RULES = [_sigma(d, f"s{i}") for i, d in enumerate(SYNTHETIC)]

STRINGS = ["x", "X", "y", "Y", "xy", "5", "1", "1.5", "0", "true", "True", "false", "", "nosec", "NoSec",
           "192.0.2.7", "198.51.100.1", "x'\"\n\\}{", "it's", "coap://a", "HTTP://b", "register",
           "execute", "replay", "dtls.handshake", "oscore.context", "decryption-failed", "ß", "SS"]
for r in BUILTIN:
    for f in detection_fields(r.conditions):
        STRINGS.extend(v for v in (required_values(r.conditions, f) or ()))
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2, 6), st.sampled_from([1.5, 0.0, -0.5]),
                   st.sampled_from(STRINGS), st.sampled_from(STRINGS).map(str.upper),
                   st.sampled_from(STRINGS).map(Text), st.text(max_size=3))
leaf = st.one_of(scalar, st.lists(scalar, max_size=3),
                 st.lists(st.lists(scalar, max_size=2), max_size=2))


@st.composite
def documents(draw, fields: list[str]):
    """Documents that follow the rules' field paths with varied shapes on the way: nested dicts
    mostly, and lists of dicts, dict subclasses, scalars or nothing at any step."""
    doc: dict = draw(st.sampled_from([{}, {"x": 1}]))
    for f in draw(st.lists(st.sampled_from(fields), max_size=len(fields) + 2)):
        parts = f.split(".")
        value = draw(leaf)
        for p in reversed(parts[1:]):
            shape = draw(st.sampled_from(["dict"] * 6 + ["list", "list2", "odict", "scalar"]))
            if shape == "dict":
                value = {p: value}
            elif shape == "list":
                value = [{p: value}]
            elif shape == "list2":
                value = [{p: draw(leaf)}, {"x": 1}, {p: value}]
            elif shape == "odict":
                value = OrderedDict({p: value})
            else:
                value = draw(scalar)
        cur = doc
        if isinstance(cur.get(parts[0]), dict) and isinstance(value, dict) and draw(st.booleans()):
            cur[parts[0]].update(value)                  # several fields under one parent
        else:
            cur[parts[0]] = value
    return doc


def _fields(rules: list[R]) -> list[str]:
    out = sorted({f for r in rules for f in detection_fields(r.conditions)} | {"event.action", "event.dataset", "c"})
    return out + [f.split(".")[0] + ".x" for f in out]


ALL_RULES = [R(r.info.name, r.conditions) for r in BUILTIN] + SYNTHETIC_RULES
FIELDS = _fields(ALL_RULES)
REFERENCE = {r.name: compile_rule(r.conditions) for r in ALL_RULES}
FAST = {r.name: generate_rule(r.conditions) for r in ALL_RULES}


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.name for r in ALL_RULES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_function_agrees_with_the_closures(rule, data):
    fast, reference = FAST[rule.name], REFERENCE[rule.name]
    doc = data.draw(documents(_fields([rule])) | documents(FIELDS))
    want = bool(reference(copy.deepcopy(doc)))
    got = fast(doc)
    assert got is want, (doc, rule_source(rule.conditions)[0])


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.name for r in ALL_RULES])
def test_generated_function_is_not_the_fallback(rule):
    # the fast path is in use for every rule (the reference is only its fallback)
    assert generate_rule(rule.conditions) is not compile_rule(rule.conditions)
    assert generate_rule(rule.conditions).__code__.co_filename.startswith("<sigma rule")


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.name for r in ALL_RULES])
def test_non_dict_documents_take_the_reference(rule):
    for doc in (OrderedDict(a={"b": "x"}), [], None, "x"):
        try:
            want = bool(compile_rule(rule.conditions)(doc))
        except (AttributeError, TypeError):
            continue
        assert generate_rule(rule.conditions)(doc) is want


def test_cased_strings_match_case_sensitively():
    exact = compile_rule(_sigma({"s": {"a|cased": "NoSec"}, "condition": "s"}).conditions)
    wild = generate_rule(_sigma({"s": {"a|cased": "No*"}, "condition": "s"}).conditions)
    assert exact({"a": "NoSec"}) and not exact({"a": "nosec"}) and not exact({"a": "NOSEC"})
    assert wild({"a": "NoSec"}) and not wild({"a": "nosec"})
    caseless = generate_rule(_sigma({"s": {"a": "NoSec"}, "condition": "s"}).conditions)
    assert caseless({"a": "nosec"})


def test_quotes_and_newlines_in_rule_text_stay_data():
    rule = SYNTHETIC_RULES[-1]
    text, names = rule_source(rule.conditions)
    assert "x'\"\n" not in text                       # only repr() of the string reaches the source
    match = generate_rule(rule.conditions)
    assert match({"a": {"b": "X'\"\n\\}{"}})
    assert match({"c'\"\\": {"d": "IT'S"}})
    assert not match({"a": {"b": "x'"}})


def test_too_deep_for_compile_falls_back_to_the_closures():
    # a path of 120 steps nests the generated expression past the parser's limit
    dotted = ".".join(["a"] * 120)
    rule = _sigma({"s": {dotted: "x"}, "condition": "s"})
    match = generate_rule(rule.conditions)
    assert not match.__code__.co_filename.startswith("<sigma rule")
    doc: object = "X"
    for _ in range(120):
        doc = {"a": doc}
    assert match(doc) and not match({"a": {"a": "x"}})


# --- the (event.dataset, event.action) pre-selection -------------------------------------------

def test_required_values_from_the_condition_tree():
    by = {r.info.name: r for r in BUILTIN}
    assert by["oscore-replay"].needs_action == {"replay"}
    assert by["endpoint-identity-mismatch"].needs_action == {"register", "bootstrap-request"}
    assert by["decryption-failure"].needs_dataset == {"dtls.handshake", "oscore.context"}
    assert by["decryption-failure"].needs_action is None      # the dtls branch takes any action
    assert by["nosec-transport"].needs_action is None
    assert required_values(_sigma({"s": {"event.action": "a"}, "condition": "not s"}).conditions, "event.action") is None
    assert required_values(_sigma({"s": {"event.action": "a*"}, "condition": "s"}).conditions, "event.action") is None
    assert required_values(_sigma({"s": {"event.action": "A"}, "t": {"event.action": ["a", "b"]},
                                   "condition": "s and t"}).conditions, "event.action") == {"a"}


event_docs = st.fixed_dictionaries(
    {"event": st.fixed_dictionaries({}, optional={
        "dataset": st.sampled_from(["lwm2m.operation", "dtls.handshake", "oscore.context", "OSCORE.context"])
        | scalar,
        "action": st.sampled_from(["register", "Register", "replay", "execute", "bootstrap-request",
                                   "decryption-failed", "read"]) | scalar | st.lists(scalar, max_size=2),
        "kind": st.sampled_from(["event", "alert"])})})


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_pre_selection_only_skips_rules_that_cannot_match(data):
    doc = data.draw(event_docs.flatmap(lambda ev: documents(FIELDS).map(lambda d: {**d, **ev})))
    ev = doc["event"]
    for r in BUILTIN:
        if not r.may_match(ev.get("dataset"), ev.get("action")):
            assert not REFERENCE[r.info.name](doc), r.info.name


ENGINE = RuleEngine.from_paths(config=RuleConfig.from_dict(
    {"rules": {r.info.name: {"enabled": True} for r in BUILTIN}, "informational": "alert"}))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_engine_runs_exactly_the_rules_the_closures_match(data):
    doc = data.draw(event_docs.flatmap(lambda ev: documents(FIELDS).map(lambda d: {**d, **ev})))
    ev = doc.get("event")
    if ev.get("kind") == "alert" or not isinstance(ev.get("dataset"), (str, type(None))):
        return
    try:
        rule_facts.enrich(doc, ENGINE._facts)           # junk the fact code cannot read is not ours here
    except (AttributeError, TypeError):
        return
    # which rules matched, in order: a rule hits at most once per document, so the order in which
    # a fresh `hits` counter gains its keys is the order of the hits (the compiled engine's
    # methods cannot be replaced on the instance)
    ENGINE.hits = {}
    doc.setdefault("@timestamp", "2026-11-23T10:00:00.000000Z")     # a hit folds by time
    ENGINE.process(doc)                                   # facts added in place, as the reference sees them
    seen = list(ENGINE.hits)
    assert all(n == 1 for n in ENGINE.hits.values())
    want = [r.info.name for group in (ENGINE._by_dataset.get(ev.get("dataset"), []), ENGINE._any)
            for r in group if REFERENCE[r.info.name](doc)]
    assert seen == want


# every rule in one runner: the most sharing of first/second-level reads and of equal tests
RUNNER_RULES = [(r, r.name) for r in ALL_RULES]
RUNNER = generate_runner([(r.conditions, name) for r, name in RUNNER_RULES])


def _runner_hits(doc: dict) -> list[str]:
    hits: list[str] = []
    RUNNER(doc, lambda name, d, out: hits.append(name), [])
    return hits


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(FIELDS))
def test_the_runner_hits_exactly_the_rules_the_closures_match(doc):
    assert _runner_hits(doc) == [name for r, name in RUNNER_RULES if REFERENCE[r.name](doc)]


@pytest.mark.parametrize("lwm2m, nosec", [
    ({"security": "NoSec", "interface": "registration"}, True),
    ([{"security": "NoSec", "interface": "registration"}], True),        # a list at the first level
    ([{"x": 1}, {"security": ["x", "NOSEC"], "interface": "Registration"}], True),
    ({"security": [{"x": "NoSec"}], "interface": "registration"}, False),  # a list at the second level
    ({"security": "dtls", "interface": "registration"}, False),
    ("NoSec", False), (None, False), (5, False),
])
def test_the_runner_takes_the_reference_walk_through_lists(lwm2m, nosec):
    doc = {"lwm2m": lwm2m, "event": {"dataset": "lwm2m.operation", "action": "register"}}
    want = [name for r, name in RUNNER_RULES if REFERENCE[r.name](doc)]
    assert ("nosec-transport" in want) == nosec
    assert _runner_hits(doc) == want


def test_a_later_rule_sees_the_tag_an_earlier_informational_hit_added(tmp_path):
    # rules run in name order; `a-info` tags the document, `b-tagged` matches on that tag, as
    # with one predicate call per rule: the generated runner must not read `tags` ahead
    for name, level, sel in (("a-info", "informational", "lwm2m.path: /3/0/4"), ("b-tagged", "high", "tags: a-info")):
        (tmp_path / f"{name}.yml").write_text(
            f"title: {name}\nid: 0b7a3c4e-1d2f-4a5b-8c9d-{len(name):012x}\nname: {name}\nstatus: test\n"
            f"logsource: {{product: lwm2m-monitor, category: lwm2m.operation}}\n"
            f"detection:\n  sel:\n    {sel}\n  condition: sel\nlevel: {level}\n")
    engine = RuleEngine.from_paths(None, [str(tmp_path)], RuleConfig())
    doc = {"@timestamp": "2026-11-23T10:00:00.000000Z", "lwm2m": {"path": "/3/0/4", "endpoint": "ep"},
           "event": {"kind": "event", "dataset": "lwm2m.operation", "action": "execute", "id": "e1"}}
    alerts = engine.process(doc)
    assert doc["tags"] == ["a-info"]
    assert [a["rule"]["name"] for a in alerts] == ["b-tagged"]


def test_c_code_called_from_the_runner_can_import():
    # compiled (Cython) callers push no Python frame: C code they run that imports (datetime's
    # strftime does) resolves __import__ through the generated function's builtins
    from monitor.sigma_codegen import generate_runner
    run = generate_runner([(_sigma({"s": {"a": "x"}, "condition": "s"}).conditions, "import json as j")])
    out: dict = {}
    run({"a": "X"}, exec, out)                       # exec(target, doc, out): a C callable that imports
    assert out["j"].__name__ == "json"
