"""Generates one Python function per Sigma rule: the condition as a single expression.

`generate_rule(conditions) -> Callable[[dict], bool]` (conditions: `sigma_ir`'s plain-data
trees) gives the same answer as `sigma_compile.compile_rule(conditions)` (the closure
compiler stays the reference) at a fraction
of the calls: every rule runs on every document, and a tree of closures costs a call per
node. The generated body walks nested dicts inline (`(v := v.get('security')) is not None`),
tests exact `str` values inline (casefolded equality, set membership, a wildcard regex) and
hands every other case to the reference callables: a list on the way to a field, a leaf
that is not a `str`, null/exists/keyword/regex/cidr/compare values, anything unknown.

Only field names and casefolded plain strings enter the source text, always as `repr()`
literals; every other constant (sets, regex methods, reference callables) is passed in the
namespace the function is compiled in.
"""
from __future__ import annotations

from .sigma_compile import (MULTI, Predicate, _any_value, compile_condition, compile_rule, is_plain,
                            plain_strings, set_matcher, string_matcher, value_matcher, wildcard_regex)


LIST = object()      # a runner's second-level variable when the first level is a list


class _Source:
    """Collects the expression text and the namespace constants it refers to."""

    def __init__(self, hoist: bool = False) -> None:
        self.names: dict[str, object] = {}
        self._by_id: dict[int, str] = {}
        self.hoist = hoist
        self.top: dict[str, str] = {}          # top-level key -> variable read once per document
        self.second: dict[tuple[str, str], str] = {}   # (key, subkey) -> variable, likewise
        # (field, value) of a field test -> [placeholder, its text, uses]: a test several rules
        # make (`lwm2m.security: NoSec`) is evaluated once per document
        self.tests: dict[tuple, list] = {}

    def const(self, value: object) -> str:
        name = self._by_id.get(id(value))
        if name is None:
            name = self._by_id[id(value)] = f"k{len(self.names)}"
            self.names[name] = value
        return name

    def node(self, node: tuple) -> str:
        kind = node[0]
        if kind == "and":
            return "(" + " and ".join(self.node(a) for a in node[1]) + ")"
        if kind == "or":
            wants = plain_strings(node[1])
            if wants is not None:             # as the reference does: one set, one walk
                return self._shared(node[1][0][1], ("set", wants), lambda: self._set_test(wants))
            return "(" + " or ".join(self.node(a) for a in node[1]) + ")"
        if kind == "not":
            return f"(not {self.node(node[1])})"
        if kind == "field":
            value = node[2]
            test = self._value_test(value)
            if test is not None:
                return self._shared(node[1], value, lambda: test)
        return f"{self.const(compile_condition(node))}(doc)"     # the reference predicate

    def _set_test(self, wants: frozenset[str]) -> tuple[str, object]:
        matcher = set_matcher(wants)
        return f"(v.casefold() in {self.const(wants)} if v.__class__ is str else {self.const(matcher)}(v))", matcher

    def _value_test(self, value: tuple) -> tuple[str, object] | None:
        """(expression over a non-None leaf `v`, reference matcher), None for the rare kinds."""
        if value[0] == "bool":
            return f"(v is {value[1]!r})", value_matcher(value)
        if value[0] != "str":
            return None
        parts = value[1]
        matcher = string_matcher(parts)
        fallback = self.const(matcher)
        if is_plain(parts):
            return f"(v.casefold() == {''.join(parts).casefold()!r} if v.__class__ is str else {fallback}(v))", matcher
        if all(p == MULTI for p in parts):
            return f"(v.__class__ is str or {fallback}(v))", matcher       # `*`: any string
        full = self.const(wildcard_regex(parts).fullmatch)
        return f"({full}(v) is not None if v.__class__ is str else {fallback}(v))", matcher

    def _shared(self, dotted: str, key: tuple, test) -> str:
        """`_field`'s text, or in a runner a placeholder for it, shared by equal tests."""
        if not self.hoist or dotted.split(".")[0] == "tags":
            return self._field(dotted, test())
        entry = self.tests.get((dotted, key))
        if entry is None:
            entry = self.tests[(dotted, key)] = [f"\0{len(self.tests)}\0", self._field(dotted, test()), 0]
        entry[2] += 1
        return entry[0]

    def resolve(self, text: str) -> tuple[str, str]:
        """(`text` with its placeholders replaced, the assignments of the shared tests): a test
        used once stays inline, where `and`/`or` may skip it."""
        assign = []
        for placeholder, expr, uses in self.tests.values():
            if uses > 1:
                var = f"b{len(assign)}"
                assign.append(f"    {var} = {expr}\n")
                expr = var
            text = text.replace(placeholder, expr)
        return text, "".join(assign)

    def _field(self, dotted: str, test: tuple[str, object]) -> str:
        """Reference `_any_value` semantics: a missing/None step is False, a list on the way
        takes the reference walk, a list leaf matches when any element does."""
        expr, matcher = test
        parts = dotted.split(".")
        slow = self.const(_any_value(dotted, matcher))
        each = self.const(matcher)
        out = f"(any(map({each}, v)) if v.__class__ is list else {expr})"
        if not self.hoist or parts[0] == "tags":  # `tags` is the one key a hit changes (informational)
            for p in reversed(parts[1:]):
                out = (f"(((v := v.get({p!r})) is not None and {out}) if v.__class__ is dict "
                       f"else (v.__class__ is list and {slow}(doc)))")
            return f"((v := doc.get({parts[0]!r})) is not None and {out})"
        top = self.top.setdefault(parts[0], f"t{len(self.top)}")
        if len(parts) == 1:
            return f"((v := {top}) is not None and {out})"
        for p in reversed(parts[2:]):
            out = (f"(((v := v.get({p!r})) is not None and {out}) if v.__class__ is dict "
                   f"else (v.__class__ is list and {slow}(doc)))")
        # the second level read once too: LIST when the first level is a list (reference walk)
        second = self.second.setdefault((parts[0], parts[1]), f"s{len(self.second)}")
        return f"((v := {second}) is not None and ({slow}(doc) if v is LIST else {out}))"


def rule_source(conditions: tuple) -> tuple[str, dict[str, object]]:
    """The generated function's text and its namespace (without the reference fallback)."""
    src = _Source()
    body = " or ".join(src.node(c) for c in conditions)
    text = ("def match(doc):\n"
            "    if doc.__class__ is not dict:\n"
            "        return bool(reference(doc))\n"
            f"    return {body}\n")
    return text, src.names


def generate_rule(conditions: tuple, name: str = "") -> Predicate:
    """The rule's predicate as one generated function; the closure predicate when the
    condition is too deep to compile."""
    reference = compile_rule(conditions)
    text, names = rule_source(conditions)
    namespace = {"any": any, "map": map, "bool": bool, "dict": dict, "list": list,
                 "str": str, "reference": reference, **names}     # real builtins: C code called from here imports
    try:
        code = compile(text, f"<sigma rule {name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return reference
    exec(code, namespace)                    # defines `match` from our own generated text
    return namespace["match"]


def runner_source(rules: list[tuple[tuple, object]]) -> tuple[str, dict[str, object]]:
    """Text of `run(doc, hit, out)` over (conditions, target) pairs, in order, and its namespace."""
    src = _Source(hoist=True)
    tests = []
    for conditions, target in rules:
        body = " or ".join(src.node(c) for c in conditions)
        tests.append(f"    if {body}:\n        hit({src.const(target)}, doc, out)\n")
    body, shared = src.resolve("".join(tests))
    hoisted = "".join(f"    {var} = doc.get({key!r})\n" for key, var in src.top.items())
    hoisted += "".join(f"    {var} = {src.top[key]}.get({sub!r}) if {src.top[key]}.__class__ is dict "
                       f"else (LIST if {src.top[key]}.__class__ is list else None)\n"
                       for (key, sub), var in src.second.items())
    text = ("def run(doc, hit, out):\n"
            "    if doc.__class__ is not dict:\n"
            "        return reference(doc, hit, out)\n" + hoisted + shared + body + "    return None\n")
    return text, {**src.names, "LIST": LIST}


def generate_runner(rules: list[tuple[tuple, object]]):
    """`run(doc, hit, out)`: calls `hit(target, doc, out)` for each (conditions, target) whose
    rule matches, in order, exactly as a loop over the rules' predicates would; one call per
    document instead of one per rule, each first- and second-level field read once, and a test
    several rules make (`lwm2m.security: NoSec`) evaluated once. A hit may only add the
    top-level `tags` (the engine's informational tagging); later rules see that change."""
    pairs = [(target, compile_rule(conditions)) for conditions, target in rules]

    def reference(doc, hit, out) -> None:
        for target, match in pairs:
            if match(doc):
                hit(target, doc, out)
    text, names = runner_source(rules)
    namespace = {"any": any, "map": map, "bool": bool, "dict": dict, "list": list,
                 "str": str, "reference": reference, **names}     # real builtins: C code called from here imports
    try:
        code = compile(text, "<sigma rules>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return reference
    exec(code, namespace)                    # defines `run` from our own generated text
    return namespace["run"]
