"""Sigma rules evaluated in the pipeline: load + validate, match every document, fold, correlate.

`RuleEngine.from_paths(builtin_dir, extra_dirs, config)`; `engine.process(doc) -> alerts`
(after `rule_facts.enrich(doc)`), `engine.close() -> alerts` (folded alerts still pending).
pySigma parses each rule file and its condition; `sigma_compile` turns the parsed detection
into one predicate per rule, once (the reference), and `sigma_codegen` into the generated code
that runs: per (event.dataset, event.action) one function evaluating, in name order, the rules
whose condition allows that pair (`sigma_compile.required_values`). Correlation rules (`event_count`, `value_count`) run in
packet time. Repeats of the same cause (rule + endpoint, else rule + source address) within
the fold window give one immediate alert, then one folded alert with the count at window end.

Informational rules follow the Sigma level's meaning ("enrichment, no alerting"): a hit adds
the rule name to the document's `tags`; `informational: alert` in the config turns them into
alerts. A rule's `severity_mapping` (Kibana's notion) raises the level when a field has a value.
"""
from __future__ import annotations

import heapq
import os
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from . import rule_cache, rule_facts
from .alerts import RuleInfo, alert_document, ts_ns
from .ecs import get_path, timestamp
from .rule_specs import LEVELS, PRODUCT, SLUG, CorrelationSpec, RuleError, RuleSpec, Spec, line_of, parse_rule_file  # noqa: F401
from .sigma_codegen import generate_rule, generate_runner
from .sigma_compile import field_getter
from .sinks import dumps_line_plain

# from the package, not this module's `__file__`: compiled by mypyc (its group library lives in
# monitor/), that names a path one directory too deep
BUILTIN_DIR = Path(sys.modules[__package__].__file__ or ".").resolve().parent.parent / "rules"
_RANK = {lvl: i for i, lvl in enumerate(LEVELS)}
DEFAULT_FOLD_S = 300
MAX_GROUPS = 100_000                     # correlation groups and fold states are bounded
MAX_CANDIDATE_KEYS = 4096                # (dataset, action) pairs whose rule list is kept
MAX_SHARED_LINES = 4096                  # evidence lines waiting for the sink (it takes them every few documents)


@dataclass
class Rule:
    info: RuleInfo
    level: str
    path: str
    category: str | None                  # logsource category = event.dataset it applies to
    match: Callable[[dict], bool]
    fields: frozenset[str]
    severity_mapping: tuple[tuple[Callable, object, str], ...] = ()   # (field getter, value, level)
    fold_ns: int = DEFAULT_FOLD_S * 10**9
    enabled: bool = True
    silent: bool = False                   # a correlation's base rule: feeds it, raises nothing
    correlations: list["Correlation"] = field(default_factory=list)
    conditions: tuple | None = None          # sigma_ir trees (None: a rule built in code)
    # casefolded values event.action / event.dataset must have for `match` to be true (None: any)
    needs_action: frozenset[str] | None = None
    needs_dataset: frozenset[str] | None = None

    def may_match(self, dataset, action) -> bool:
        """False when `match` is false for every document with this event.dataset/action
        (an exact `str` or None; other values are not ruled out)."""
        for need, v in ((self.needs_dataset, dataset), (self.needs_action, action)):
            if need is not None and (v is None or (type(v) is str and v.casefold() not in need)):
                return False
        return True


@dataclass
class Correlation:
    info: RuleInfo
    level: str
    path: str
    kind: str                               # event_count | value_count
    base: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan_ns: int
    op: str
    threshold: int
    value_field: str | None
    fold_ns: int = DEFAULT_FOLD_S * 10**9
    enabled: bool = True
    generate: bool = False                  # the base rules raise their own alerts too
    windows: dict = field(default_factory=dict)


@dataclass(slots=True)
class _Fold:
    rule: Rule | Correlation
    level: str
    window_end: str                          # ISO time: string order is time order
    first: str
    last: str
    # the latest repeat: the document while its rules run, then its NDJSON line (one compact
    # object instead of a tree of dicts that would be freed long after it left the CPU cache)
    evidence: dict | bytes | None
    group: str | None
    count: int = 0                            # repeats after the immediate alert
    ids: list[str] = field(default_factory=list)


def _duration_ns(value, where: str) -> int:
    if isinstance(value, (int, float)):
        return int(value * 10**9)
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", str(value))
    if not m:
        raise RuleError(f"{where}: duration {value!r} is not like 30s, 5m, 1h, 1d")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] * 10**9


class _LazyMatch:
    """A rule's own predicate, generated on first use: the engine runs its rules through
    per-(dataset, action) runners and needs this only for documents with odd action types."""

    __slots__ = ("conditions", "name", "fn")

    def __init__(self, conditions: tuple, name: str) -> None:
        self.conditions, self.name = conditions, name
        self.fn: Callable[[dict], bool] | None = None

    def __call__(self, doc) -> bool:
        fn = self.fn
        if fn is None:
            fn = self.fn = generate_rule(self.conditions, self.name)
        return fn(doc)


def build_item(spec: Spec) -> "Rule | Correlation":
    """A fresh engine object from a parsed spec (the engine's settings change these)."""
    if isinstance(spec, CorrelationSpec):
        return Correlation(info=spec.info, level=spec.level, path=spec.path, kind=spec.kind, base=spec.base,
                           group_by=spec.group_by, timespan_ns=spec.timespan_ns, op=spec.op,
                           threshold=spec.threshold, value_field=spec.value_field, generate=spec.generate)
    return Rule(info=spec.info, level=spec.level, path=spec.path, category=spec.category,
                match=_LazyMatch(spec.conditions, spec.info.name), fields=frozenset(spec.fields),
                severity_mapping=tuple((field_getter(f), v, lvl) for f, v, lvl in spec.severity_mapping),
                conditions=spec.conditions, needs_action=spec.needs_action, needs_dataset=spec.needs_dataset)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RuleError(f"{path}: cannot read ({exc.strerror})") from None


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_file(path: str) -> list:
    """Parses one rule file into `Rule`/`Correlation` objects (correlation bases unresolved)."""
    return [build_item(s) for s in parse_rule_file(path, _text(path, _read(path)))]


def load_specs(paths: list[str]) -> list[Spec]:
    """The specs of these rule files, in order: from `rule_cache` when the same files were
    parsed before by the same code, else parsed (and cached)."""
    files = [(p, _read(p)) for p in paths]
    key = rule_cache.rule_set_key(files)
    specs = rule_cache.load(key)
    if specs is None:
        specs = [s for p, data in files for s in parse_rule_file(p, _text(p, data))]
        rule_cache.store(key, specs)
    return specs


def rule_files(dirs: list[str | os.PathLike]) -> list[str]:
    out: list[str] = []
    for d in dirs:
        p = Path(d)
        if p.is_file():
            out.append(str(p))
            continue
        if not p.is_dir():
            raise RuleError(f"{d}: no such rule directory")
        out.extend(str(f) for f in sorted(p.glob("*.yml")) + sorted(p.glob("*.yaml"))
                   if not f.name.startswith("config."))      # config.example.yml lives beside the rules
    return out


@dataclass
class RuleConfig:
    """The configuration file (rules/config.example.yml documents every key)."""

    rules: dict[str, dict] = field(default_factory=dict)
    fold_window_ns: int = DEFAULT_FOLD_S * 10**9
    informational: str = "tag"                     # tag | alert
    facts: rule_facts.FactSettings = field(default_factory=rule_facts.FactSettings)
    path: str = "<config>"
    text: str = ""

    def where(self, *needles: str) -> str:
        return f"{self.path}:{line_of(self.text, *needles)}"

    @classmethod
    def load(cls, path: str | None) -> "RuleConfig":
        if not path:
            return cls()
        import yaml                           # only with a config file: a plain run never loads PyYAML

        from .yaml_loader import safe_load
        try:
            text = Path(path).read_text(encoding="utf-8")
            raw = safe_load(text) or {}
        except OSError as exc:
            raise RuleError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            raise RuleError(f"{path}:{line}: YAML error: {getattr(exc, 'problem', exc)}") from None
        return cls.from_dict(raw, path, text)

    @classmethod
    def from_dict(cls, raw: dict, path: str = "<config>", text: str = "") -> "RuleConfig":
        known = {"rules", "fold_window", "informational", "endpoints", "identities"}
        for key in raw:
            if key not in known:
                raise RuleError(f"{path}:{line_of(text, str(key) + ':')}: unknown key {key!r} "
                                f"(expected {', '.join(sorted(known))})")
        rules = raw.get("rules") or {}
        if not isinstance(rules, dict) or not all(isinstance(v, dict) for v in rules.values()):
            raise RuleError(f"{path}:{line_of(text, 'rules:')}: `rules` maps rule names to settings")
        allow = (raw.get("endpoints") or {}).get("allowlist")
        idmap = raw.get("identities") or {}
        info = raw.get("informational", "tag")
        if info not in ("tag", "alert"):
            raise RuleError(f"{path}:{line_of(text, 'informational:')}: informational is tag or alert")
        return cls(rules=rules,
                   fold_window_ns=_duration_ns(raw.get("fold_window", DEFAULT_FOLD_S), f"{path}:{line_of(text, 'fold_window:')}"),
                   informational=info,
                   facts=rule_facts.FactSettings(
                       endpoint_allowlist=frozenset(map(str, allow)) if allow is not None else None,
                       identity_map={str(k): str(v) for k, v in idmap.items()}),
                   path=path, text=text)


class RuleEngine:
    def __init__(self, rules: list[Rule], correlations: list[Correlation], config: RuleConfig | None = None):
        self.config = config or RuleConfig()
        self.rules = rules
        self.correlations = correlations
        self._by_dataset: dict[str | None, list[Rule]] = {}
        for r in rules:
            if r.enabled:
                self._by_dataset.setdefault(r.category, []).append(r)
        self._any = self._by_dataset.pop(None, [])
        self._runners: dict[tuple, Callable] = {}    # (dataset, action) -> run(doc, hit, out)
        self._by_rules: dict[tuple, Callable] = {}    # rule names -> the same runner
        self._folds: dict[tuple, _Fold] = {}
        self._holding: list[_Fold] = []          # folds given the current document as evidence
        # id(document) -> (document, its NDJSON line) for the evidence encoded since the last
        # write, when an NDJSON sink reuses them (`share_lines`); None: no sink does
        self.lines: dict[int, tuple[dict, bytes]] | None = None
        self._expiry: list[tuple[str, int, tuple]] = []   # heap of (window end, seq, fold key)
        self._seq = 0
        self._next_expiry: str | None = None
        self._facts = self.config.facts
        self._lwm2m_facts = self._facts.touches_lwm2m
        self._tag_info = self.config.informational == "tag"
        self.hits: dict[str, int] = {}
        self.psk_audit: Any = None             # monitor.psk_audit.PskAudit with --psk-wordlist

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_paths(cls, builtin_dir=BUILTIN_DIR, extra_dirs=(), config: RuleConfig | str | None = None) -> "RuleEngine":
        if not isinstance(config, RuleConfig):
            config = RuleConfig.load(config)
        dirs = ([builtin_dir] if builtin_dir else []) + list(extra_dirs or ())
        return cls.build([build_item(s) for s in load_specs(rule_files(dirs))], config)

    @classmethod
    def from_cli(cls, extra_dirs=(), config_path: str | None = None, keys=None, psk_wordlist: str | None = None):
        config = RuleConfig.load(config_path)
        audit: Any = None
        if psk_wordlist:
            from .psk_audit import PskAudit
            audit = PskAudit.from_file(psk_wordlist, keys)
            config.rules.setdefault("weak-psk", {}).setdefault("enabled", True)
        engine = cls.from_paths(BUILTIN_DIR, extra_dirs, config)
        engine.psk_audit = audit
        return engine

    @classmethod
    def build(cls, items: list, config: RuleConfig) -> "RuleEngine":
        names: dict[str, str] = {}
        ids: dict[str, str] = {}
        for it in items:
            if it.info.name in names:
                raise RuleError(f"{it.path}:{line_of(Path(it.path).read_text(), 'name:')}: name {it.info.name!r} "
                                f"already used by {names[it.info.name]}")
            if it.info.id in ids:
                raise RuleError(f"{it.path}:{line_of(Path(it.path).read_text(), 'id:')}: id {it.info.id} "
                                f"already used by {ids[it.info.id]}")
            names[it.info.name], ids[it.info.id] = it.path, it.path
        for name in config.rules:
            if name not in names:
                raise RuleError(f"{config.where(name + ':')}: rule {name!r} does not exist "
                                f"(see `lwm2m-monitor rules list`)")
        rules = [it for it in items if isinstance(it, Rule)]
        corrs = [it for it in items if isinstance(it, Correlation)]
        by_name = {r.info.name: r for r in rules}
        for c in corrs:
            for b in c.base:
                if b not in by_name:
                    raise RuleError(f"{c.path}:{line_of(Path(c.path).read_text(), b)}: correlation refers to "
                                    f"unknown rule {b!r}")
                by_name[b].correlations.append(c)
                if not c.generate:
                    by_name[b].silent = True
        for it in items:
            settings = config.rules.get(it.info.name, {})
            where = f"{config.where(it.info.name + ':')}: rules.{it.info.name}"
            it.fold_ns = _duration_ns(settings.get("fold_window", config.fold_window_ns / 10**9), where)
            default_on = it.info.name != "weak-psk" and "audit" not in it.info.tags
            it.enabled = bool(settings.get("enabled", default_on))
            if "level" in settings:
                if settings["level"] not in LEVELS:
                    raise RuleError(f"{where}: level must be one of {', '.join(LEVELS)}")
                it.level = settings["level"]
            if isinstance(it, Correlation):
                if "threshold" in settings:
                    it.threshold = int(settings["threshold"])
                if "timespan" in settings:
                    it.timespan_ns = _duration_ns(settings["timespan"], where)
        # a base rule runs when a correlation that needs it is enabled
        for r in rules:
            if r.silent and any(c.enabled for c in r.correlations):
                r.enabled = True
        return cls(sorted(rules, key=lambda r: r.info.name), sorted(corrs, key=lambda c: c.info.name), config)

    # --- evaluation -----------------------------------------------------------------------
    def process(self, doc: dict) -> list[dict]:
        ev = doc.get("event")
        if not isinstance(ev, dict) or ev.get("kind") == "alert":
            return []
        dataset = ev.get("dataset")
        if dataset == "dtls.handshake":          # rule_facts.enrich, without its repeated lookups
            rule_facts.handshake_facts(doc)
        if self._lwm2m_facts and "lwm2m" in doc:
            rule_facts.lwm2m_facts(doc, self._facts)
        if self.psk_audit is not None and dataset == "dtls.handshake":
            audit = self.psk_audit.facts(doc)
            if audit is not None:
                doc["dtls"]["psk_audit"] = audit
        out: list[dict] = []
        now = doc.get("@timestamp")
        if self._next_expiry is not None and now is not None and now >= self._next_expiry:
            self._expire(now, out)
        action = ev.get("action")
        if (action is None or type(action) is str) and (dataset is None or type(dataset) is str):
            run = self._runners.get((dataset, action))
            if run is None:
                run = self._runner(self._select(dataset, action))
                if len(self._runners) < MAX_CANDIDATE_KEYS:
                    self._runners[(dataset, action)] = run
            run(doc, self._hit, out)
        else:
            for rule in self._select(dataset, action):
                if rule.match(doc):
                    self._hit(rule, doc, out)
        if self._holding:
            self._encode_evidence(doc)
        return out

    def share_lines(self) -> dict[int, tuple[dict, bytes]]:
        """The evidence lines this engine encodes, for an NDJSON sink to write instead of
        encoding the same documents again (`NdjsonSink.reuse_lines`)."""
        if self.lines is None:
            self.lines = {}
        return self.lines

    def _encode_evidence(self, doc: dict) -> None:
        """Once every rule has seen `doc` (no more tags can come): the folds holding it keep
        its line instead."""
        line = dumps_line_plain(doc)
        if line is None:                  # an odd document (int keys, bignums) stays as it is
            self._holding.clear()
            return
        for fold in self._holding:
            if fold.evidence is doc:
                fold.evidence = line
        self._holding.clear()
        lines = self.lines
        if lines is not None:
            if len(lines) >= MAX_SHARED_LINES:   # nobody is taking them (a sink that failed)
                lines.clear()
            lines[id(doc)] = (doc, line)

    def _runner(self, rules: tuple[Rule, ...]) -> Callable:
        """One generated function running these rules in order (shared by equal rule lists)."""
        names = tuple(r.info.name for r in rules)
        run = self._by_rules.get(names)
        if run is None:
            pairs: list[tuple[tuple, object]] = [(r.conditions, r) for r in rules if r.conditions is not None]
            if len(pairs) == len(rules):
                run = generate_runner(pairs)
            else:
                def run(doc, hit, out, rules=rules):
                    for rule in rules:
                        if rule.match(doc):
                            hit(rule, doc, out)
            if len(self._by_rules) < MAX_CANDIDATE_KEYS:
                self._by_rules[names] = run
        return run

    def _select(self, dataset, action) -> tuple[Rule, ...]:
        """The rules for this logsource category, then the category-less ones, each in name
        order, without those whose condition needs another event.dataset/action."""
        return tuple(r for group in (self._by_dataset.get(dataset) or (), self._any) for r in group
                     if r.may_match(dataset, action))

    def close(self) -> list[dict]:
        out: list[dict] = []
        for batch in self.close_batches():
            out.extend(batch)
        return out

    def close_batches(self, size: int = 256) -> Iterator[list[dict]]:
        """The pending folded alerts, oldest first, `size` at a time: each fold (and the
        evidence it holds) is released as its alert is made, so a run with many endpoints does
        not hold every last alert at once."""
        order = sorted(self._folds, key=lambda k: (self._folds[k].first, k))
        self._expiry.clear()
        self._next_expiry = None
        for c in self.correlations:
            c.windows.clear()
        out: list[dict] = []
        for key in order:
            self._flush(self._folds.pop(key), out)
            if len(out) >= size:
                yield out
                out = []
        if out:
            yield out

    def _hit(self, rule: Rule, doc: dict, out: list[dict]) -> None:
        name = rule.info.name
        self.hits[name] = self.hits.get(name, 0) + 1
        for c in rule.correlations:
            if c.enabled:
                self._correlate(c, doc, out)
        if rule.silent:
            return
        level = rule.level
        for get, value, lvl in rule.severity_mapping:
            if any(_equal(v, value) for v in get(doc)) and _RANK[lvl] > _RANK[level]:
                level = lvl
        if level == "informational" and self._tag_info:
            tags = doc.setdefault("tags", [])
            if rule.info.name not in tags:
                tags.append(rule.info.name)
            return
        lw = doc.get("lwm2m") or {}
        cause = lw.get("endpoint") or get_path(doc, "client.ip") or get_path(doc, "source.ip")
        key = (name, level, cause)
        fold = self._folds.get(key)
        if fold is not None:                     # `_emit`'s repeat branch inline: most hits are repeats
            now = doc["@timestamp"]
            if now < fold.window_end:
                if not fold.count:
                    fold.first = now
                fold.count += 1
                fold.last, fold.evidence = now, doc
                self._holding.append(fold)
                if len(fold.ids) < 20:
                    fold.ids.append(doc["event"].get("id", ""))
                return
        self._emit(rule, level, doc, key, None, out)

    def _emit(self, rule, level: str, doc: dict, key: tuple, group: str | None, out: list[dict]) -> None:
        now = doc["@timestamp"]
        eid = doc["event"].get("id", "")
        fold = self._folds.get(key)
        if fold is not None and now < fold.window_end:
            if not fold.count:
                fold.first = now                # the folded alert spans the repeats it counts
            fold.count += 1
            fold.last, fold.evidence = now, doc
            self._holding.append(fold)
            if len(fold.ids) < 20:
                fold.ids.append(eid)
            return
        if fold is not None:
            self._flush(fold, out)
        out.append(alert_document(rule.info, level, doc, related_ids=[eid] if eid else [], group=group))
        if len(self._folds) >= MAX_GROUPS:
            oldest = self._pop_due(None)
            if oldest is not None:
                self._flush(self._folds.pop(oldest), out)
        end = timestamp(ts_ns(now) + rule.fold_ns)
        self._folds[key] = _Fold(rule, level, end, now, now, None, group)   # evidence comes with a repeat
        self._seq += 1
        heapq.heappush(self._expiry, (end, self._seq, key))
        if self._next_expiry is None or end < self._next_expiry:
            self._next_expiry = end

    def _flush(self, fold: _Fold, out: list[dict]) -> None:
        evidence = fold.evidence
        if fold.count and evidence is not None:          # a repeat brings its evidence
            trigger: dict
            if isinstance(evidence, bytes):
                trigger, owned = orjson.loads(evidence), True
            else:
                trigger, owned = evidence, False
            out.append(alert_document(fold.rule.info, fold.level, trigger, related_ids=fold.ids,
                                      count=fold.count, first=fold.first, last=fold.last,
                                      group=fold.group, folded=True, owned=owned))

    def _pop_due(self, now: str | None) -> tuple | None:
        """Key of the fold whose window ends first (and by `now`, if given); stale heap
        entries (folds already flushed or renewed) are skipped."""
        heap = self._expiry
        while heap and (now is None or heap[0][0] <= now):
            end, _, key = heapq.heappop(heap)
            fold = self._folds.get(key)
            if fold is not None and fold.window_end == end:
                return key
        return None

    def _expire(self, now: str, out: list[dict]) -> None:
        done = []
        while (key := self._pop_due(now)) is not None:
            done.append(key)
        for k in sorted(done, key=lambda k: (self._folds[k].first, k)):
            self._flush(self._folds.pop(k), out)
        self._next_expiry = self._expiry[0][0] if self._expiry else None

    def _correlate(self, c: Correlation, doc: dict, out: list[dict]) -> None:
        key = tuple(_first(doc, g) for g in c.group_by)
        t = ts_ns(doc["@timestamp"])
        win = c.windows.get(key)
        if win is None:
            if len(c.windows) >= MAX_GROUPS:
                c.windows.pop(next(iter(c.windows)))
            win = c.windows[key] = deque()
        value = _first(doc, c.value_field) if c.value_field else None
        win.append((t, value))
        while win and win[0][0] < t - c.timespan_ns:
            win.popleft()
        n = len(win) if c.kind == "event_count" else len({v for _, v in win if v is not None})
        if _compare(c.op, n, c.threshold):
            group = ", ".join(f"{g}={v}" for g, v in zip(c.group_by, key))
            self._emit(c, c.level, doc, (c.info.name, c.level, key), f"{n} in {c.timespan_ns // 10**9}s, {group}", out)


def _first(doc: dict, dotted: str):
    v = get_path(doc, dotted)
    if isinstance(v, list):
        return v[0] if v else None
    return v


def _equal(v, want) -> bool:
    if isinstance(want, bool) or isinstance(v, bool):
        return v is want or str(v).lower() == str(want).lower()
    return str(v) == str(want)


def _compare(op: str, n: int, threshold: int) -> bool:
    return {"gte": n >= threshold, "gt": n > threshold, "lte": n <= threshold, "lt": n < threshold,
            "eq": n == threshold, "neq": n != threshold}[op]
