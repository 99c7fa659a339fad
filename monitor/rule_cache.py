"""Parsed rule sets kept between runs, so that a run whose rules have not changed skips pySigma.

Parsing the Sigma files is start-up work every run repeats: importing pySigma and pyparsing
and parsing about twenty rules took ~70 ms here, before the first packet and before the
workers fork. The cache maps the exact rule set (each file's path and bytes) plus a stamp of
the code that parsed it to the specs (`rule_specs`) as JSON, like `.pyc` files map sources
to bytecode. A changed rule file, a changed parser (our modules or pySigma) or a damaged
cache file means a miss: the files are parsed again. Errors are never cached: a bad rule file
fails the same way every run.

Location: `$LWM2M_MONITOR_CACHE_DIR`, else `$XDG_CACHE_HOME/lwm2m-monitor`, else
`~/.cache/lwm2m-monitor`; `LWM2M_MONITOR_CACHE_DIR=off` disables it. A cache that cannot be
written (read-only home, full disk) costs only the parse. The entries hold rule metadata and
conditions, nothing from keys or traffic.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson

from .rule_specs import RuleSpec, Spec, spec_from_json, spec_to_json
from .sigma_compile import compile_rule

FORMAT = 1                                   # bump when the JSON form of the specs changes
_PARSER_FILES = ("rule_specs.py", "sigma_ir.py", "sigma_compile.py", "yaml_loader.py")
MAX_ENTRIES = 32                              # rule sets kept; the oldest go first


def cache_dir() -> Path | None:
    env = os.environ.get("LWM2M_MONITOR_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lwm2m-monitor"


def _parser_stamp() -> bytes:
    """Size and mtime of the files whose code decides what a rule file parses to: ours and
    pySigma's package (found without importing it)."""
    import importlib.util
    here = Path(__file__).resolve().parent
    files = [here / name for name in _PARSER_FILES]
    spec = importlib.util.find_spec("sigma")
    for origin in (spec.submodule_search_locations or []) if spec else []:
        files.extend(Path(origin) / name for name in ("__init__.py", "rule/rule.py", "conditions.py", "types.py"))
    out = [str(FORMAT).encode()]
    for f in files:
        try:
            st = f.stat()
            out.append(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            out.append(f"{f}:-".encode())
    return b"\n".join(out)


def rule_set_key(files: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(_parser_stamp())
    for path, data in files:
        h.update(b"\0" + path.encode("utf-8", "surrogateescape") + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def load(key: str) -> list[Spec] | None:
    d = cache_dir()
    if d is None:
        return None
    try:
        raw = orjson.loads((d / f"rules-{key}.json").read_bytes())
        if raw.get("key") != key:
            return None
        specs = [spec_from_json(s) for s in raw["specs"]]
        for s in specs:
            if isinstance(s, RuleSpec):
                compile_rule(s.conditions)   # a damaged entry fails here, not mid-run
        return specs
    except Exception:                        # noqa: BLE001 — absent or damaged: parse again
        return None


def store(key: str, specs: list[Spec]) -> bool:
    """Writes the entry atomically; False when the specs do not survive JSON unchanged (a
    severity-mapping value YAML made a date, say) or the directory is not writable."""
    d = cache_dir()
    if d is None:
        return False
    try:
        data = orjson.dumps({"key": key, "format": FORMAT, "specs": [spec_to_json(s) for s in specs]})
        if [spec_from_json(s) for s in orjson.loads(data)["specs"]] != specs:
            return False
        import tempfile
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rules-", dir=d)
    except (OSError, TypeError, ValueError, orjson.JSONEncodeError):
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / f"rules-{key}.json")
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    _prune(d)
    return True


def _prune(d: Path) -> None:
    """Keeps the newest MAX_ENTRIES entries (another run may be pruning at the same time)."""
    entries = []
    for p in d.glob("rules-*.json"):
        try:
            entries.append((p.stat().st_mtime_ns, p))
        except OSError:
            pass
    for _, old in sorted(entries)[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)
