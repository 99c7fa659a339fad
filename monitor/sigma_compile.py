"""Compiles a parsed Sigma detection (pySigma's condition tree) into one Python predicate.

`compile_rule(rule) -> Callable[[dict], bool]` over our nested documents with dotted field
names. Done once per rule at load time. This is the reference semantics: the engine runs the
code `sigma_codegen` generates from the same tree, which falls back on these closures.
Semantics follow the Sigma specification: strings match case-insensitively, `*`/`?` are
wildcards, a list value in the document matches when any element matches, `null` matches a
missing field. A construct we cannot evaluate raises `Unsupported` at load time, never later.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from typing import Callable

from sigma.conditions import (ConditionAND, ConditionFieldEqualsValueExpression, ConditionNOT,
                              ConditionOR, ConditionValueExpression)
from sigma.types import (CompareOperators, SigmaBool, SigmaCIDRExpression, SigmaCompareExpression,
                         SigmaExists, SigmaNull, SigmaNumber, SigmaRegularExpression, SigmaString,
                         SpecialChars)

Predicate = Callable[[dict], bool]
_MISSING = ()


class Unsupported(ValueError):
    """A Sigma construct the in-pipeline evaluator does not implement."""


def field_getter(dotted: str) -> Callable[[dict], tuple]:
    """Values at a dotted path as a tuple; lists on the way are flattened (`dtls.alerts.description`)."""
    parts = tuple(dotted.split("."))
    if len(parts) == 1:
        key = parts[0]

        def get1(doc: dict) -> tuple:
            v = doc.get(key)
            if v is None:
                return _MISSING
            return tuple(v) if isinstance(v, list) else (v,)
        return get1

    def slow(doc: dict) -> tuple:
        cur = [doc]
        for p in parts:
            nxt = []
            for c in cur:
                if isinstance(c, dict):
                    v = c.get(p)
                    if v is None:
                        continue
                    if isinstance(v, list):
                        nxt.extend(v)
                    else:
                        nxt.append(v)
            if not nxt:
                return _MISSING
            cur = nxt
        return tuple(cur)

    def get(doc: dict) -> tuple:
        # fast path: nested dicts all the way down; lists on the way take the slow path
        cur = doc
        for p in parts:
            if cur.__class__ is not dict:
                return slow(doc) if cur.__class__ is list else _MISSING
            cur = cur.get(p)
            if cur is None:
                return _MISSING
        return tuple(cur) if cur.__class__ is list else (cur,)
    return get


def wildcard_regex(s: SigmaString) -> re.Pattern:
    """The regex a string with `*`/`?` must fully match (case-insensitive, `*` spans newlines)."""
    pattern = "".join(
        ".*" if p is SpecialChars.WILDCARD_MULTI else "." if p is SpecialChars.WILDCARD_SINGLE
        else re.escape(p) for p in s.s)
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def _string_matcher(s: SigmaString) -> Callable[[object], bool]:
    if not s.contains_special():
        want = s.to_plain().casefold()

        def eq(v) -> bool:
            if isinstance(v, str):
                return v.casefold() == want
            if isinstance(v, bool):
                return ("true" if v else "false") == want
            if isinstance(v, (int, float)):
                return str(v) == want
            return False
        return eq
    rx = wildcard_regex(s)

    def wild(v) -> bool:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        return isinstance(v, str) and rx.fullmatch(v) is not None
    return wild


_COMPARE = {
    CompareOperators.LT: lambda a, b: a < b, CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b, CompareOperators.GTE: lambda a, b: a >= b,
}


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _value_matcher(value) -> Callable[[object], bool]:
    if isinstance(value, SigmaString):
        return _string_matcher(value)
    if isinstance(value, SigmaBool):
        want = value.boolean
        return lambda v: isinstance(v, bool) and v is want
    if isinstance(value, SigmaNumber):
        n = value.number
        return lambda v: (not isinstance(v, bool) and isinstance(v, (int, float)) and v == n) or \
            (isinstance(v, str) and v == str(n))
    if isinstance(value, SigmaCompareExpression):
        op, n = _COMPARE[value.op], value.number.number

        def cmp(v) -> bool:
            x = _number(v)
            return x is not None and op(x, n)
        return cmp
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for f in value.flags:
            flags |= {"IGNORECASE": re.I, "MULTILINE": re.M, "DOTALL": re.S}.get(getattr(f, "name", ""), 0)
        rx = re.compile(value.regexp.original, flags)
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if isinstance(value, SigmaCIDRExpression):
        net = value.network

        def cidr(v) -> bool:
            try:
                return isinstance(v, str) and ipaddress.ip_address(v) in net
            except ValueError:
                return False
        return cidr
    raise Unsupported(f"value type {type(value).__name__} is not supported")


def _any_value(dotted: str, match: Callable[[object], bool]) -> Predicate:
    """`any(match(v) for v in field_getter(dotted)(doc))` without building the tuple: every
    rule runs on every document, so the common case (nested dicts, scalar leaf) walks inline."""
    parts = tuple(dotted.split("."))
    slow = field_getter(dotted)

    def pred(doc: dict) -> bool:
        cur = doc
        for p in parts:
            if cur.__class__ is not dict:
                if cur.__class__ is list:
                    return any(match(v) for v in slow(doc))
                return False
            cur = cur.get(p)
            if cur is None:
                return False
        if cur.__class__ is list:
            return any(match(v) for v in cur)
        return match(cur)
    return pred


def _field_predicate(expr: ConditionFieldEqualsValueExpression) -> Predicate:
    value = expr.value
    if isinstance(value, SigmaNull):
        get = field_getter(expr.field)
        return lambda doc: not get(doc)
    if isinstance(value, SigmaExists):
        get = field_getter(expr.field)
        want = value.exists
        return lambda doc: bool(get(doc)) is want
    return _any_value(expr.field, _value_matcher(value))


def _plain_string(node) -> bool:
    return isinstance(node, ConditionFieldEqualsValueExpression) and isinstance(node.value, SigmaString) \
        and not node.value.contains_special()


def plain_strings(nodes: list) -> frozenset[str] | None:
    """The casefolded strings of `field: [a, b, c]` (an OR of plain strings on one field);
    None when the OR is anything else."""
    if len(nodes) < 2 or not all(_plain_string(n) for n in nodes) or len({n.field for n in nodes}) != 1:
        return None
    return frozenset(n.value.to_plain().casefold() for n in nodes)


def set_matcher(wants: frozenset[str]) -> Callable[[object], bool]:
    """OR of `_string_matcher`s of plain strings as one set lookup."""
    def one_of(v) -> bool:
        if isinstance(v, str):
            return v.casefold() in wants
        if isinstance(v, bool):
            return ("true" if v else "false") in wants
        if isinstance(v, (int, float)):
            return str(v) in wants
        return False
    return one_of


def _one_of_strings(nodes: list) -> Predicate | None:
    """`field: [a, b, c]` as one set lookup; None when the OR is anything else."""
    wants = plain_strings(nodes)
    return None if wants is None else _any_value(nodes[0].field, set_matcher(wants))


def _leaves(doc) -> list:
    out, stack = [], [doc]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
        else:
            out.append(cur)
    return out


def _keyword_predicate(expr: ConditionValueExpression) -> Predicate:
    match = _value_matcher(expr.value)
    return lambda doc: any(match(v) for v in _leaves(doc))


def _and(a: Predicate, b: Predicate) -> Predicate:
    return lambda doc: a(doc) and b(doc)


def _or(a: Predicate, b: Predicate) -> Predicate:
    return lambda doc: a(doc) or b(doc)


def compile_condition(node) -> Predicate:
    if isinstance(node, ConditionAND):
        return functools.reduce(_and, [compile_condition(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return _one_of_strings(node.args) or functools.reduce(_or, [compile_condition(a) for a in node.args])
    if isinstance(node, ConditionNOT):
        inner = compile_condition(node.args[0])
        return lambda doc: not inner(doc)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node)
    if isinstance(node, ConditionValueExpression):
        return _keyword_predicate(node)
    raise Unsupported(f"condition element {type(node).__name__} is not supported")


def compile_rule(rule) -> Predicate:
    """One predicate for a `sigma.rule.SigmaRule`: any of its conditions matches."""
    preds = tuple(compile_condition(c.parse()) for c in rule.detection.parsed_condition)
    if len(preds) == 1:
        return preds[0]
    return lambda doc: any(p(doc) for p in preds)


def detection_fields(rule) -> set[str]:
    """Every field name a rule's detection uses (for the schema meta-test)."""
    out: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, ConditionFieldEqualsValueExpression):
            out.add(node.field)
        for a in getattr(node, "args", None) or ():
            if not isinstance(a, str):
                walk(a)
    for c in rule.detection.parsed_condition:
        walk(c.parse())
    return out


def required_values(rule, dotted: str) -> frozenset[str] | None:
    """Casefolded strings one of which the field must equal for the rule to match (from plain
    string equalities the condition cannot do without), or None when it can match otherwise."""
    def need(node) -> frozenset[str] | None:
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return frozenset((node.value.to_plain().casefold(),)) if node.field == dotted and _plain_string(node) else None
        if isinstance(node, ConditionAND):
            sets = [s for s in map(need, node.args) if s is not None]
            return frozenset.intersection(*sets) if sets else None
        if isinstance(node, ConditionOR):
            sets = list(map(need, node.args))
            return None if any(s is None for s in sets) else frozenset().union(*sets)
        return None                                    # NOT, keywords: no requirement
    sets = [need(c.parse()) for c in rule.detection.parsed_condition]
    return None if any(s is None for s in sets) else frozenset().union(*sets)
