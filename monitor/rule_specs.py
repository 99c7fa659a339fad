"""Rule files parsed into plain data: what `rule_engine` builds its rules from, and what
`rule_cache` keeps between runs.

`parse_rule_file(path, text) -> [RuleSpec | CorrelationSpec]` does the validation a rule file
gets (pySigma parses it, we check our own keys) and reduces it to data: metadata, the detection
as `sigma_ir` trees, the values the condition needs. `specs_to_json` / `specs_from_json` carry
them through the cache unchanged. pySigma is imported here only when a file is parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .alerts import RuleInfo
from .sigma_compile import Unsupported, compile_rule, detection_fields, required_values
from .yaml_loader import safe_load

LEVELS = ("informational", "low", "medium", "high", "critical")
PRODUCT = "lwm2m-monitor"
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class RuleError(ValueError):
    """A rule file or the rule configuration is invalid; the message names file and line."""


@dataclass(frozen=True)
class RuleSpec:
    """One detection rule, as parsed from its file."""

    info: RuleInfo
    level: str
    path: str
    category: str | None                   # logsource category = event.dataset it applies to
    conditions: tuple                      # sigma_ir trees: any of them matching is a hit
    fields: tuple[str, ...]                # every field the rule reads (detection, severity mapping)
    severity_mapping: tuple[tuple[str, Any, str], ...] = ()   # (field, value, level)
    # casefolded values event.action / event.dataset must have for the rule to match (None: any)
    needs_action: frozenset[str] | None = None
    needs_dataset: frozenset[str] | None = None


@dataclass(frozen=True)
class CorrelationSpec:
    """One correlation rule (event_count, value_count), as parsed from its file."""

    info: RuleInfo
    level: str
    path: str
    kind: str
    base: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan_ns: int
    op: str
    threshold: int
    value_field: str | None
    generate: bool                         # the base rules' own alerts are raised as well


Spec = RuleSpec | CorrelationSpec


def line_of(text: str, *needles: str) -> int:
    for needle in needles:
        if not needle:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if needle in line:
                return i
    return 1


def _error_line(text: str, msg: str) -> int:
    """Best line for a pySigma message: a quoted name it mentions, else a key it names, else 1."""
    quoted = [q for q in re.findall(r"'([^']+)'", msg) if q in text]
    keys = [f"{w}:" for w in re.findall(r"[a-z_|-]+", msg) if len(w) > 3 and re.search(rf"^\s*{re.escape(w)}:", text, re.M)]
    return line_of(text, *quoted, *keys) if quoted or keys else 1


def _info(sigma_rule, category: str) -> RuleInfo:
    return RuleInfo(name=sigma_rule.name, id=str(sigma_rule.id), title=sigma_rule.title,
                    description=(sigma_rule.description or "").strip(),
                    references=tuple(sigma_rule.references or ()), category=category,
                    tags=tuple(str(t) for t in (sigma_rule.tags or ())))


def parse_rule_file(path: str, text: str) -> list[Spec]:
    """Validates one rule file and reduces it to specs; `RuleError` names the file and line."""
    import yaml
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    from .sigma_ir import rule_conditions
    try:
        raw = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise RuleError(f"{path}:{line}: YAML error: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise RuleError(f"{path}:1: not a Sigma rule (one YAML mapping per file)")
    try:
        cls = SigmaCorrelationRule if "correlation" in raw else SigmaRule
        sigma_rule = cls.from_dict(raw)
    except SigmaError as exc:
        raise RuleError(f"{path}:{_error_line(text, str(exc))}: {exc}") from None
    name = raw.get("name")
    if not isinstance(name, str) or not SLUG.match(name):
        raise RuleError(f"{path}:{line_of(text, 'name:')}: `name` must be a lower-case slug like nosec-transport")
    if "id" not in raw:
        raise RuleError(f"{path}:1: `id` (UUID) is missing")
    level = sigma_rule.level.name.lower() if sigma_rule.level is not None else "medium"
    if isinstance(sigma_rule, SigmaCorrelationRule):
        c = sigma_rule
        cond: Any = c.condition           # event_count/value_count: op, count, fieldref
        if c.type.name.lower() not in ("event_count", "value_count"):
            raise RuleError(f"{path}:{line_of(text, 'type:')}: correlation type {c.type.name.lower()} is not "
                            f"supported (event_count, value_count)")
        return [CorrelationSpec(
            info=_info(c, "correlation"), level=level, path=path, kind=c.type.name.lower(),
            base=tuple(r.reference for r in c.rules or ()), group_by=tuple(c.group_by or ()),
            timespan_ns=int(c.timespan.seconds) * 10**9, op=cond.op.name.lower(), threshold=int(cond.count),
            value_field=cond.fieldref, generate=bool(getattr(c, "generate", False)))]
    assert isinstance(sigma_rule, SigmaRule)
    ls = raw.get("logsource") or {}
    if ls.get("product") != PRODUCT:
        raise RuleError(f"{path}:{line_of(text, 'product:', 'logsource:')}: logsource.product must be {PRODUCT}")
    try:
        conditions = rule_conditions(sigma_rule)
        compile_rule(conditions)             # every construct must be one we can evaluate
        used = detection_fields(conditions)
    except Unsupported as exc:
        raise RuleError(f"{path}:{line_of(text, 'detection:')}: {exc}") from None
    except re.error as exc:
        raise RuleError(f"{path}:{line_of(text, 'detection:')}: bad regular expression: {exc}") from None
    except SigmaError as exc:                 # condition errors surface when the condition is parsed
        raise RuleError(f"{path}:{_error_line(text, str(exc)) if 'condition' not in str(exc) else line_of(text, 'condition:')}: {exc}") from None
    mapping = []
    for i, m in enumerate(raw.get("severity_mapping") or ()):
        if not isinstance(m, dict) or not {"field", "value", "level"} <= set(m) or m["level"] not in LEVELS:
            raise RuleError(f"{path}:{line_of(text, 'severity_mapping:')}: severity_mapping[{i}] needs field, value, level")
        mapping.append((str(m["field"]), m["value"], m["level"]))
        used.add(str(m["field"]))
    if level not in LEVELS:
        raise RuleError(f"{path}:{line_of(text, 'level:')}: level must be one of {', '.join(LEVELS)}")
    category = ls.get("category")
    return [RuleSpec(info=_info(sigma_rule, category or "lwm2m"), level=level, path=path, category=category,
                     conditions=conditions, fields=tuple(sorted(used)), severity_mapping=tuple(mapping),
                     needs_action=required_values(conditions, "event.action"),
                     needs_dataset=required_values(conditions, "event.dataset"))]


# --- JSON form (rule_cache) -----------------------------------------------------------------

def _tuples(x):
    """JSON arrays back to the tuples the specs hold."""
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def _info_json(info: RuleInfo) -> dict:
    return {"name": info.name, "id": info.id, "title": info.title, "description": info.description,
            "references": list(info.references), "category": info.category, "tags": list(info.tags)}


def _info_from(d: dict) -> RuleInfo:
    return RuleInfo(name=d["name"], id=d["id"], title=d["title"], description=d["description"],
                    references=tuple(d["references"]), category=d["category"], tags=tuple(d["tags"]))


def _need(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def spec_to_json(spec: Spec) -> dict:
    if isinstance(spec, RuleSpec):
        return {"type": "rule", "info": _info_json(spec.info), "level": spec.level, "path": spec.path,
                "category": spec.category, "conditions": spec.conditions, "fields": spec.fields,
                "severity_mapping": spec.severity_mapping, "needs_action": _need(spec.needs_action),
                "needs_dataset": _need(spec.needs_dataset)}
    return {"type": "correlation", "info": _info_json(spec.info), "level": spec.level, "path": spec.path,
            "kind": spec.kind, "base": spec.base, "group_by": spec.group_by, "timespan_ns": spec.timespan_ns,
            "op": spec.op, "threshold": spec.threshold, "value_field": spec.value_field, "generate": spec.generate}


def spec_from_json(d: dict) -> Spec:
    """The spec `spec_to_json` wrote; KeyError/TypeError/ValueError on anything else."""
    info = _info_from(d["info"])
    if d["type"] == "rule":
        return RuleSpec(info=info, level=d["level"], path=d["path"], category=d["category"],
                        conditions=_tuples(d["conditions"]), fields=tuple(d["fields"]),
                        severity_mapping=_tuples(d["severity_mapping"]),
                        needs_action=None if d["needs_action"] is None else frozenset(d["needs_action"]),
                        needs_dataset=None if d["needs_dataset"] is None else frozenset(d["needs_dataset"]))
    if d["type"] == "correlation":
        return CorrelationSpec(info=info, level=d["level"], path=d["path"], kind=d["kind"], base=tuple(d["base"]),
                               group_by=tuple(d["group_by"]), timespan_ns=int(d["timespan_ns"]), op=d["op"],
                               threshold=int(d["threshold"]), value_field=d["value_field"],
                               generate=bool(d["generate"]))
    raise ValueError(f"unknown spec type {d['type']!r}")
