"""A Sigma detection as plain data: pySigma's condition tree turned into nested tuples.

The rule compilers (`sigma_compile`, `sigma_codegen`) work on this form, not on pySigma's
objects, so that a parsed rule set can be cached as JSON (`rule_cache`) and a run whose rules
have not changed never imports pySigma. This module is the only place that reads pySigma's
condition classes; it is called once per rule file, at parse time.

Conditions:
  ("and", (node, ...)) · ("or", (node, ...)) · ("not", node)
  ("field", "dotted.name", value) · ("keyword", value)
Values:
  ("str", parts)       parts: literal strings and the wildcards 1 (`*`) and 2 (`?`)
  ("cstr", parts)      the same, matched case-sensitively (`|cased`)
  ("bool", b) · ("num", n) · ("cmp", "lt"|"lte"|"gt"|"gte"|"neq", n)
  ("re", pattern, flags) with `re` module flag bits · ("cidr", "10.0.0.0/8")
  ("null",) · ("exists", b)
Every construct outside this list raises `Unsupported` here, at load time, never later.
"""
from __future__ import annotations

import re

from sigma.conditions import (ConditionAND, ConditionFieldEqualsValueExpression, ConditionNOT,
                              ConditionOR, ConditionValueExpression)
from sigma.types import (SigmaBool, SigmaCasedString, SigmaCIDRExpression, SigmaCompareExpression,
                         SigmaExists, SigmaNull, SigmaNumber, SigmaRegularExpression, SigmaString,
                         SpecialChars)

from .sigma_compile import MULTI, SINGLE, Unsupported

_WILDCARDS = {SpecialChars.WILDCARD_MULTI: MULTI, SpecialChars.WILDCARD_SINGLE: SINGLE}
_REGEX_FLAGS = {"IGNORECASE": re.I, "MULTILINE": re.M, "DOTALL": re.S}


def rule_conditions(rule) -> tuple:
    """The conditions of a `sigma.rule.SigmaRule` (any of them matching is a hit)."""
    return tuple(condition(c.parse()) for c in rule.detection.parsed_condition)


def condition(node) -> tuple:
    if isinstance(node, ConditionAND):
        return ("and", tuple(condition(a) for a in node.args))
    if isinstance(node, ConditionOR):
        return ("or", tuple(condition(a) for a in node.args))
    if isinstance(node, ConditionNOT):
        return ("not", condition(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return ("field", node.field, value(node.value))
    if isinstance(node, ConditionValueExpression):
        return ("keyword", value(node.value))
    raise Unsupported(f"condition element {type(node).__name__} is not supported")


def _parts(s: SigmaString) -> tuple:
    out = []
    for p in s.s:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, SpecialChars) and p in _WILDCARDS:
            out.append(_WILDCARDS[p])
        else:                                # a placeholder (`|expand`) nobody filled in
            raise Unsupported(f"string part {p!r} is not supported")
    return tuple(out)


def value(v) -> tuple:
    if isinstance(v, SigmaCasedString):
        return ("cstr", _parts(v))
    if isinstance(v, SigmaString):
        return ("str", _parts(v))
    if isinstance(v, SigmaBool):
        return ("bool", v.boolean)
    if isinstance(v, SigmaNumber):
        return ("num", v.number)
    if isinstance(v, SigmaCompareExpression):
        return ("cmp", v.op.name.lower(), v.number.number)
    if isinstance(v, SigmaRegularExpression):
        flags = 0
        for f in v.flags:
            flags |= _REGEX_FLAGS.get(getattr(f, "name", ""), 0)
        return ("re", v.regexp.original, flags)
    if isinstance(v, SigmaCIDRExpression):
        return ("cidr", str(v.network))
    if isinstance(v, SigmaNull):
        return ("null",)
    if isinstance(v, SigmaExists):
        return ("exists", v.exists)
    raise Unsupported(f"value type {type(v).__name__} is not supported")
