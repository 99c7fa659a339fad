"""Compiled builds of the per-packet modules, and the guard that keeps them honest.

`scripts/build_accel.py` compiles the hot modules with Cython in pure-Python mode (the `.py`
files are the only source; no `.pyx`) and puts each extension next to its source
(`coap.cpython-311-x86_64-linux-gnu.so` beside `coap.py`), recording the SHA-256 of every
compiled source in the package's `.accel.json`. Python imports an extension before a source of
the same name, so a module edited after the build would silently run its old compiled code.
`prefer_fresh_sources` prevents that: for each compiled module whose source no longer matches
its stamp it installs a finder that imports the `.py` instead, and says so once on stderr.
The modules compiled together by mypyc (the stamp's `__group__`, possibly from both packages)
call each other's compiled code directly, not through their module objects: if any member is
stale, every member is imported from source, so that no old compiled code runs under a new one.
`LWM2M_MONITOR_PURE=1` makes every module import from source (tests compare both builds).
A C extension without a `.py` (`parsers/_udpscan.c`, a fast path beside the Python code it
mirrors) is stamped with its `.c` digest; stale or pure, `compiled()` is False and it is not used.

Import machinery, not parsing: it touches only this package's own files, once, at import.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys

STAMP = ".accel.json"
PURE_ENV = "LWM2M_MONITOR_PURE"


class _SourceFirst:
    """Meta-path finder: the listed modules are imported from their `.py` file."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def find_spec(self, fullname, path=None, target=None):
        source = self.sources.get(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source else None


_FINDER = _SourceFirst()
_COMPILED: dict[str, bool] = {}        # module → its compiled build is the one imported


def source_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _digest_or_none(path: str) -> str | None:
    try:
        return source_digest(path)
    except OSError:
        return None


def prefer_fresh_sources(package: str, directory: str) -> None:
    """Called by the package's `__init__`, before any of its modules is imported."""
    extensions = [n for n in os.listdir(directory)
                  if any(n.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)]
    if not extensions:
        return
    pure = os.environ.get(PURE_ENV) == "1"
    try:
        with open(os.path.join(directory, STAMP), encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        stamp = {}
    group = stamp.get("__group__") or {}
    root = os.path.dirname(os.path.abspath(directory))
    group_fresh = all(_digest_or_none(os.path.join(root, *name.split(".")) + ".py") == digest
                      for name, digest in group.items())
    stale = []
    for name in extensions:
        module = name.split(".", 1)[0]
        source = os.path.join(directory, module + ".py")
        if not os.path.exists(source):
            c_source = os.path.join(directory, module + ".c")   # a hand-written fast path
            if os.path.exists(c_source):
                fresh = not pure and stamp.get(module) == source_digest(c_source)
                _COMPILED[f"{package}.{module}"] = fresh
                if not fresh and not pure:
                    stale.append(module)
            continue
        fresh = not pure and stamp.get(module) == source_digest(source)
        if fresh and f"{package}.{module}" in group:
            fresh = group_fresh
        _COMPILED[f"{package}.{module}"] = fresh
        if not fresh:
            _FINDER.sources[f"{package}.{module}"] = source
            if not pure:
                stale.append(module)
    if _FINDER.sources and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    if stale:
        sys.stderr.write(f"lwm2m-monitor: the compiled {package}.{{{','.join(sorted(stale))}}} are older than "
                         "their sources; using the sources (rebuild: python scripts/build_accel.py)\n")


def compiled(module: str) -> bool:
    """Whether `module` ("parsers.coap") runs from a fresh compiled build. A C extension with no
    Python source of its own (`_udpscan.c`) is imported only when this says so: its callers keep
    the Python path it speeds up, which is what runs otherwise."""
    return _COMPILED.get(module, False)


def compiled_modules() -> list[str]:
    """The modules running from their compiled build in this process (for reports, benchmarks)."""
    return sorted(name for name, fresh in _COMPILED.items() if fresh)
