"""Compiles a Sigma detection (`sigma_ir`'s plain-data condition tree) into one Python predicate.

`compile_rule(conditions) -> Callable[[dict], bool]` over our nested documents with dotted field
names. Done once per rule at load time. This is the reference semantics: the engine runs the
code `sigma_codegen` generates from the same tree, which falls back on these closures.
Semantics follow the Sigma specification: strings match case-insensitively (`|cased` ones
exactly), `*`/`?` are wildcards, a list value in the document matches when any element matches,
`null` matches a missing field. A construct we cannot evaluate raises `Unsupported` when the
tree is built (`sigma_ir`) or compiled, never later. No pySigma import: a cached rule set
(`rule_cache`) compiles without it.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from typing import Callable

Predicate = Callable[[dict], bool]
_MISSING = ()
MULTI, SINGLE = 1, 2                  # the wildcards `*` and `?` among a string value's parts


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


def is_plain(parts: tuple) -> bool:
    """A string value without wildcards."""
    return all(p.__class__ is str for p in parts)


def wildcard_regex(parts: tuple, cased: bool = False) -> re.Pattern:
    """The regex a string with `*`/`?` must fully match (case-insensitive unless `cased`, `*`
    spans newlines)."""
    pattern = "".join(".*" if p == MULTI else "." if p == SINGLE else re.escape(p) for p in parts)
    return re.compile(pattern, re.DOTALL if cased else re.IGNORECASE | re.DOTALL)


def _as_text(v) -> str | None:
    """How a scalar leaf compares with a string value (Sigma matches numbers and booleans as text)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return None


def _cased_matcher(parts: tuple) -> Callable[[object], bool]:
    if is_plain(parts):
        want = "".join(parts)
        return lambda v: _as_text(v) == want
    rx = wildcard_regex(parts, cased=True)

    def wild(v) -> bool:
        text = _as_text(v)
        return text is not None and rx.fullmatch(text) is not None
    return wild


def string_matcher(parts: tuple) -> Callable[[object], bool]:
    if is_plain(parts):
        want = "".join(parts).casefold()

        def eq(v) -> bool:
            if isinstance(v, str):
                return v.casefold() == want
            if isinstance(v, bool):
                return ("true" if v else "false") == want
            if isinstance(v, (int, float)):
                return str(v) == want
            return False
        return eq
    rx = wildcard_regex(parts)

    def wild(v) -> bool:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        return isinstance(v, str) and rx.fullmatch(v) is not None
    return wild


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "neq": lambda a, b: a != b,
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


def value_matcher(value: tuple) -> Callable[[object], bool]:
    """The test one document leaf must pass for a `sigma_ir` value (not null/exists)."""
    kind = value[0]
    if kind == "str":
        return string_matcher(value[1])
    if kind == "cstr":
        return _cased_matcher(value[1])
    if kind == "bool":
        want = value[1]
        return lambda v: isinstance(v, bool) and v is want
    if kind == "num":
        n = value[1]
        return lambda v: (not isinstance(v, bool) and isinstance(v, (int, float)) and v == n) or \
            (isinstance(v, str) and v == str(n))
    if kind == "cmp" and value[1] in _COMPARE:
        op, n = _COMPARE[value[1]], value[2]

        def cmp(v) -> bool:
            x = _number(v)
            return x is not None and op(x, n)
        return cmp
    if kind == "re":
        rx = re.compile(value[1], value[2])
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if kind == "cidr":
        net = ipaddress.ip_network(value[1], strict=False)

        def cidr(v) -> bool:
            try:
                return isinstance(v, str) and ipaddress.ip_address(v) in net
            except ValueError:
                return False
        return cidr
    raise Unsupported(f"value {kind!r} is not supported")


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


def _field_predicate(dotted: str, value: tuple) -> Predicate:
    kind = value[0]
    if kind == "null":
        get = field_getter(dotted)
        return lambda doc: not get(doc)
    if kind == "exists":
        get = field_getter(dotted)
        want = value[1]
        return lambda doc: bool(get(doc)) is want
    return _any_value(dotted, value_matcher(value))


def plain_strings(nodes: tuple) -> frozenset[str] | None:
    """The casefolded strings of `field: [a, b, c]` (an OR of plain strings on one field);
    None when the OR is anything else."""
    if len(nodes) < 2:
        return None
    field = nodes[0][1] if nodes[0][0] == "field" else None
    wants = []
    for n in nodes:
        if n[0] != "field" or n[1] != field or n[2][0] != "str" or not is_plain(n[2][1]):
            return None
        wants.append("".join(n[2][1]).casefold())
    return frozenset(wants)


def set_matcher(wants: frozenset[str]) -> Callable[[object], bool]:
    """OR of `string_matcher`s of plain strings as one set lookup."""
    def one_of(v) -> bool:
        if isinstance(v, str):
            return v.casefold() in wants
        if isinstance(v, bool):
            return ("true" if v else "false") in wants
        if isinstance(v, (int, float)):
            return str(v) in wants
        return False
    return one_of


def _one_of_strings(nodes: tuple) -> Predicate | None:
    """`field: [a, b, c]` as one set lookup; None when the OR is anything else."""
    wants = plain_strings(nodes)
    return None if wants is None else _any_value(nodes[0][1], set_matcher(wants))


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


def _keyword_predicate(value: tuple) -> Predicate:
    match = value_matcher(value)
    return lambda doc: any(match(v) for v in _leaves(doc))


def _and(a: Predicate, b: Predicate) -> Predicate:
    return lambda doc: a(doc) and b(doc)


def _or(a: Predicate, b: Predicate) -> Predicate:
    return lambda doc: a(doc) or b(doc)


def compile_condition(node: tuple) -> Predicate:
    kind = node[0]
    if kind == "and":
        return functools.reduce(_and, [compile_condition(a) for a in node[1]])
    if kind == "or":
        return _one_of_strings(node[1]) or functools.reduce(_or, [compile_condition(a) for a in node[1]])
    if kind == "not":
        inner = compile_condition(node[1])
        return lambda doc: not inner(doc)
    if kind == "field":
        return _field_predicate(node[1], node[2])
    if kind == "keyword":
        return _keyword_predicate(node[1])
    raise Unsupported(f"condition element {kind!r} is not supported")


def compile_rule(conditions: tuple) -> Predicate:
    """One predicate for a rule's conditions (`sigma_ir.rule_conditions`): any of them matches."""
    preds = tuple(compile_condition(c) for c in conditions)
    if len(preds) == 1:
        return preds[0]
    return lambda doc: any(p(doc) for p in preds)


def detection_fields(conditions: tuple) -> set[str]:
    """Every field name a rule's detection uses (for the schema meta-test)."""
    out: set[str] = set()

    def walk(node: tuple) -> None:
        kind = node[0]
        if kind == "field":
            out.add(node[1])
        elif kind in ("and", "or"):
            for a in node[1]:
                walk(a)
        elif kind == "not":
            walk(node[1])
    for c in conditions:
        walk(c)
    return out


def required_values(conditions: tuple, dotted: str) -> frozenset[str] | None:
    """Casefolded strings one of which the field must equal for the rule to match (from plain
    string equalities the condition cannot do without), or None when it can match otherwise."""
    def need(node: tuple) -> frozenset[str] | None:
        kind = node[0]
        if kind == "field":
            value = node[2]
            if node[1] == dotted and value[0] == "str" and is_plain(value[1]):
                return frozenset(("".join(value[1]).casefold(),))
            return None
        if kind == "and":
            sets = [s for s in map(need, node[1]) if s is not None]
            return frozenset.intersection(*sets) if sets else None
        if kind == "or":
            sets = list(map(need, node[1]))
            return None if any(s is None for s in sets) else frozenset().union(*sets)
        return None                                    # NOT, keywords: no requirement
    sets = [need(c) for c in conditions]
    return None if any(s is None for s in sets) else frozenset().union(*sets)


def validate(conditions: tuple) -> None:
    """Raises `Unsupported` for any construct `compile_rule` cannot evaluate (at load time)."""
    compile_rule(conditions)
