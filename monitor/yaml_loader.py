"""YAML reading for the files the tool loads at start (rules, keys, field list).

libyaml's parser where PyYAML was built with it (as its wheels are): the same documents and
errors (with line marks), parsed about ten times faster than the pure-Python loader; a keys
file of 2,000 PSKs took 0.23 s to load with the latter.

`load_plain_blocks` is the keys file's fast path. A fleet's keys file is long and plain
(`psk:` then one `- identity: ...` / `key: ...` item per device): PyYAML, even on libyaml,
builds and resolves a node per scalar in Python, 0.41 s for 9,626 PSKs, paid before the first
packet by every run (and every SIGHUP reload of `live`). A file made only of such lines is
read directly; anything else in it (flow style, anchors, tags, escapes, block scalars, numbers,
booleans, tabs, non-ASCII text, ...) leaves it to PyYAML, so what is accepted means what PyYAML
makes of it (tests/test_yaml_fast_path.py checks that on generated and mutated files).
"""
from __future__ import annotations

import re
import sys
from typing import IO, Any

# First characters for which PyYAML's resolver has an implicit type (bool, int, float, null,
# timestamp, merge, value, and '!&*' it registers too): a plain scalar starting with any other
# character is a string without asking it, so a fleet's plain keys file never imports PyYAML
# (tests/test_yaml_fast_path.py checks this set against PyYAML's table).
IMPLICIT_FIRST = frozenset("!&*+-.0123456789<=FNOTYfnoty~")


def is_yaml_error(exc: BaseException) -> bool:
    """`isinstance(exc, yaml.YAMLError)` for callers that do not import PyYAML themselves: only
    PyYAML raises one, so with PyYAML not loaded it is not one."""
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(exc, yaml.YAMLError)


def safe_load(stream: str | IO) -> Any:
    """`yaml.safe_load`, through libyaml when available."""
    import yaml                        # on first use: a run with plain files only never pays for it
    return yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class NotPlain(Exception):
    """The text is not made only of the plain lines `load_plain_blocks` reads."""


# A quoted scalar without escapes: double quotes (no `\` or `"` inside) or single quotes (no
# `'` inside, so no `''`), printable ASCII only.
_QUOTED = r"""(?:"(?P<{0}d>[ !#-\[\]-~]*)"|'(?P<{0}s>[ -&(-~]*)')"""
# a plain (unquoted) scalar: no indicator first, no `: ` or ` #` inside, no spaces
_PLAIN = r"(?P<{0}p>[A-Za-z0-9_][A-Za-z0-9_.+/=@-]*)"
_KEY = f"(?:{_PLAIN.format('k')}|{_QUOTED.format('k')})"
_VALUE = f"(?:{_QUOTED.format('v')}|{_PLAIN.format('v')})"
_END = r"(?:[ ]+#.*)?[ ]*\Z"          # a comment needs a space before it
_BLANK = re.compile(r"[ ]*(?:#.*)?\Z")
_TOP_BLOCK = re.compile(f"{_KEY}:{_END}")
_TOP_SCALAR = re.compile(f"{_KEY}:[ ]+{_VALUE}{_END}")
_ITEM = re.compile(f"(?P<indent>[ ]*)- {_KEY}:[ ]+{_VALUE}{_END}")
_ENTRY = re.compile(f"(?P<indent>[ ]+){_KEY}:[ ]+{_VALUE}{_END}")
_TEXT = re.compile(r"[ -~\n\r]*\Z")  # printable ASCII and line breaks only (no tabs, no BOM)
_STR_TAG = "tag:yaml.org,2002:str"


class _Scalars:
    """Scalars as PyYAML resolves them: a quoted one is a string; a plain one only when no
    implicit type takes it (`on`, `yes`, `null`, `0123`, `1e3`, ... are not strings)."""

    def __init__(self) -> None:
        self._resolver: Any = None
        self._plain_keys: dict[str, bool] = {}

    def key(self, m: re.Match) -> str:
        plain = m.group("kp")
        if plain is None:
            return _quoted(m, "k")
        ok = self._plain_keys.get(plain)     # a handful of distinct keys
        if ok is None:
            ok = self._plain_keys[plain] = self._is_str(plain)
        if not ok:
            raise NotPlain(plain)
        return plain

    def value(self, m: re.Match) -> str:
        plain = m.group("vp")
        if plain is None:
            return _quoted(m, "v")
        if not self._is_str(plain):
            raise NotPlain(plain)
        return plain

    def _is_str(self, plain: str) -> bool:
        if plain[0] not in IMPLICIT_FIRST:
            return True
        if self._resolver is None:
            import yaml
            self._resolver = (yaml.resolver.Resolver(), yaml.ScalarNode)
        resolver, node = self._resolver
        return resolver.resolve(node, plain, (True, False)) == _STR_TAG


def _quoted(m: re.Match, group: str) -> str:
    v = m.group(group + "d")
    return v if v is not None else m.group(group + "s")


def load_plain_blocks(text: str) -> dict[str, Any]:
    """The document of `text` if it is a mapping written only as: top-level `name: "value"`
    lines, and top-level `name:` lines each followed by either a list of flat mappings
    (`- a: "x"` then `  b: "y"` lines) or one flat mapping (`  a: "x"` lines) of string
    values (quoted without escapes, or plain words PyYAML takes as strings), with comments and
    blank lines anywhere. Raises `NotPlain` for anything else."""
    if not _TEXT.match(text):
        raise NotPlain("characters beyond printable ASCII")
    scalars = _Scalars()
    doc: dict[str, Any] = {}
    block: str | None = None               # the top-level key whose block the lines fill
    kind = ""                              # "", "list" or "map": what that block turned out to be
    indent = -1                            # its items' (list) or entries' (map) indentation
    item: dict[str, str] | None = None
    for line in text.splitlines():
        if _BLANK.match(line):
            continue
        if line[0] != " " and line[0] != "-":  # a top-level line ends the block before it
            block, kind, item = None, "", None
            m = _TOP_SCALAR.match(line)
            if m is not None:
                doc[scalars.key(m)] = scalars.value(m)
                continue
            m = _TOP_BLOCK.match(line)
            if m is None:
                raise NotPlain(line)
            block = scalars.key(m)
            doc[block] = None
            continue
        if block is None:
            raise NotPlain(line)
        m = _ITEM.match(line)
        if m is not None:
            if kind == "map" or (kind == "list" and len(m.group("indent")) != indent):
                raise NotPlain(line)
            if kind == "":
                kind, indent, doc[block] = "list", len(m.group("indent")), []
            item = {scalars.key(m): scalars.value(m)}
            doc[block].append(item)
            continue
        m = _ENTRY.match(line)
        if m is None:
            raise NotPlain(line)
        at = len(m.group("indent"))
        if kind == "list" and item is not None and at == indent + 2:
            item[scalars.key(m)] = scalars.value(m)
        elif kind == "map" and at == indent or kind == "":
            if kind == "":
                kind, indent, doc[block] = "map", at, {}
            doc[block][scalars.key(m)] = scalars.value(m)
        else:
            raise NotPlain(line)
    if not doc:
        raise NotPlain("no mapping")
    return doc


def load_fast(text: str) -> Any:
    """`safe_load(text)`, through `load_plain_blocks` when the text is made of plain lines."""
    try:
        return load_plain_blocks(text)
    except NotPlain:
        return safe_load(text)
