"""Compile the per-packet modules, in place, so `analyze` runs them as C extensions.

The `.py` files stay the only source and run unchanged without a compiler. Two compilers:
- the core of the per-packet path (`NATIVE`: CoAP messages, exchanges, classification, the
  pipeline and its documents) goes through mypyc as one group: its classes become native
  (attributes at fixed offsets, methods called directly), and its type annotations are checked
  by mypy and enforced at run time. About 25% less CPU than the same modules through Cython.
- the other hot modules go through Cython in pure-Python mode, annotations not used for C typing
  (`annotation_typing=False`), so they behave exactly as their sources do.
One hand-written C fast path, `parsers/_udpscan.c` (pcap record → UDP datagram, the capture
reader's common case), is built by setuptools; the Python path it mirrors runs without it.
tests/test_accel.py compares the compiled and pure-Python builds' output on every capture.
Every compiled source's SHA-256 goes into the package's `.accel.json`; a module edited after
the build is imported from its source until the next build (parsers/_accel.py), and so is the
whole mypyc group when any of its members is (they call each other's compiled code directly).

    python scripts/build_accel.py           # build (about 2 minutes on 2 cores)
    python scripts/build_accel.py --if-stale  # only when a compiled module is missing or older than its source
(Both also write the `.pyc` of the package's pure-Python modules that are missing or stale.)
    python scripts/build_accel.py --clean   # remove the extensions: back to pure Python
    python scripts/build_accel.py --profile  # a build cProfile can see into (slower)
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.machinery
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from parsers._accel import STAMP, source_digest  # noqa: E402

# What runs per packet or per document (capture → decode → exchanges → documents → rules → sink).
HOT = {
    "parsers": ["pcapfile", "netlayers", "coap", "dtls", "tls_suites", "oscore", "tlv", "senml",
                "lwm2m_json", "lwm2m_cbor", "cbor_value", "linkformat", "content_formats"],
    "monitor": ["datagram", "capture", "ip_reassembly", "pipeline", "exchanges", "operations", "registrations",
                "lwm2m_events", "ecs", "payload_decoder", "sinks", "analyze", "sharding",
                "dtls_tracker", "dtls_session", "dtls_crypto", "dtls_events", "oscore_tracker",
                "oscore_context", "oscore_events", "rule_engine", "rule_facts", "sigma_compile",
                "alerts", "psk_audit", "live", "secret_screen"],
}


# Compiled together by mypyc into `monitor/_native__mypyc*.so` (one shim per module); the rest
# of HOT by Cython. Members must type-check under MYPY_FLAGS.
NATIVE = {
    "parsers": ["pcapfile", "netlayers", "coap", "dtls", "tls_suites"],
    "monitor": ["datagram", "capture", "ip_reassembly", "analyze", "sharding", "ecs", "exchanges",
                "operations", "pipeline", "lwm2m_events", "registrations", "rule_engine", "rule_facts",
                "alerts", "sinks", "dtls_tracker", "dtls_session", "dtls_crypto", "dtls_events",
                "secret_screen"],
}
NATIVE_GROUP = "monitor._native"
# Hand-written C fast paths, each beside the Python code it mirrors and stamped with its `.c`
# digest (a stale or missing one is simply not used: parsers/_accel.compiled).
C_EXTENSIONS = {"parsers": ["_udpscan"]}
MYPY_FLAGS = ["--ignore-missing-imports", "--follow-imports=silent", "--cache-dir=build/mypy_cache"]


# annotation_typing off: annotations stay documentation, so the compiled code behaves exactly as
# the source does (no C integer types, no rejected None)
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}
# --profile adds cProfile hooks to every compiled function (slower; for finding hot spots)
PROFILING = {**DIRECTIVES, "profile": True}


def directives_id(directives: dict) -> str:
    native = sorted(f"{p}.{m}" for p, ms in NATIVE.items() for m in ms)
    # the interpreter too: a build made by another Python 3.11 (pyenv's, Debian's) is stale here
    return hashlib.sha256(repr((sorted(directives.items()), native, MYPY_FLAGS, sys.version)).encode()).hexdigest()[:12]


def native_members() -> list[str]:
    return sorted(f"{p}.{m}" for p, ms in NATIVE.items() for m in ms)


def extensions(package: str) -> set[Path]:
    return {Path(p) for s in importlib.machinery.EXTENSION_SUFFIXES
            for p in glob.glob(str(ROOT / package / f"*{s}"))}


def up_to_date() -> bool:
    for package, modules in HOT.items():
        try:
            stamp = json.loads((ROOT / package / STAMP).read_text())
        except (OSError, ValueError):
            return False
        if stamp.get("__directives__") != directives_id(DIRECTIVES):
            return False
        built = {p.name.split(".", 1)[0] for p in extensions(package)}
        if any(m not in built or stamp.get(m) != source_digest(str(ROOT / package / f"{m}.py")) for m in modules):
            return False
        if any(m not in built or stamp.get(m) != source_digest(str(ROOT / package / f"{m}.c"))
               for m in C_EXTENSIONS.get(package, ())):
            return False
    shared = NATIVE_GROUP.rsplit(".", 1)
    return f"{shared[1]}__mypyc" in {p.name.split(".", 1)[0] for p in extensions(shared[0])}


def clean() -> None:
    for package in HOT:
        for p in extensions(package):
            p.unlink()
        (ROOT / package / STAMP).unlink(missing_ok=True)


def build(directives: dict) -> None:
    from Cython.Build import cythonize
    from setuptools import setup

    from mypyc.build import mypycify

    clean()
    stamps = {package: {m: source_digest(str(ROOT / package / f"{m}.py")) for m in modules}
              for package, modules in HOT.items()}
    group = {f"{p}.{m}": stamps[p][m] for p, ms in NATIVE.items() for m in ms}
    for package, modules in C_EXTENSIONS.items():
        stamps[package].update({m: source_digest(str(ROOT / package / f"{m}.c")) for m in modules})
    native = [f"{p}/{m}.py" for p, ms in NATIVE.items() for m in ms]
    sources = [f"{package}/{m}.py" for package, modules in HOT.items() for m in modules
               if m not in NATIVE.get(package, ())]
    os.chdir(ROOT)
    # generated C is cached per directive set: Cython's own check looks at the .py only
    work = f"build/accel/{directives_id(directives)}"
    ext = cythonize(sources, build_dir=work, quiet=True, nthreads=os.cpu_count() or 1,
                    compiler_directives=directives)
    from setuptools import Extension
    ext += [Extension(f"{p}.{m}", [f"{p}/{m}.c"], extra_compile_args=["-O2"])
            for p, ms in C_EXTENSIONS.items() for m in ms]
    ext += mypycify([*MYPY_FLAGS, *native], group_name=NATIVE_GROUP, target_dir=f"{work}/mypyc", opt_level="3")
    setup(name="lwm2m-monitor-accel", ext_modules=ext,
          script_args=["-q", "build_ext", "--inplace", "--build-temp", f"{work}/tmp",
                       "--parallel", str(os.cpu_count() or 1)])
    for package, stamp in stamps.items():
        stamp["__directives__"] = directives_id(directives)
        stamp["__group__"] = group
        (ROOT / package / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    print(f"compiled {len(sources)} modules with Cython, {len(native)} with mypyc, "
          f"{sum(map(len, C_EXTENSIONS.values()))} C fast paths")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules")
    ap.add_argument("--if-stale", action="store_true", help="build only when a compiled module is missing or stale")
    ap.add_argument("--profile", action="store_true",
                    help="a profiling build: cProfile sees the compiled functions (the next --if-stale rebuilds)")
    args = ap.parse_args()
    if args.clean:
        clean()
    elif args.profile:
        build(PROFILING)
    elif not (args.if_stale and up_to_date()):
        build(DIRECTIVES)
    if not args.clean:
        bytecode()
    return 0


def bytecode() -> None:
    """`.pyc` files for the modules that stay Python (the CLI, rules loading, keys, ...), as
    an installer writes them: a run under PYTHONDONTWRITEBYTECODE (set here, in CI images and
    containers) otherwise compiles each of them from source at every start, before the first
    packet. Only missing or stale files are written."""
    import compileall
    for package in HOT:
        compileall.compile_dir(str(ROOT / package), maxlevels=0, quiet=1)


if __name__ == "__main__":
    sys.exit(main())
