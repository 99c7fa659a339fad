"""The compiled build of the hot modules (mypyc group + Cython): in use, identical to the sources,
never stale.

`make test` builds it (scripts/setup.sh → scripts/build_accel.py); these tests fail when the
build is missing, so a broken compiler set-up cannot silently fall back to the slower path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_accel  # noqa: E402

# Analyzes every bundled capture (with its keys) and every corpus capture in one process and
# writes one NDJSON each.
DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from monitor.analyze import analyze_files
    from monitor.keys import KeyStore, load as load_keys
    from monitor.pipeline import PipelineConfig
    from monitor.rule_engine import RuleEngine
    from monitor.sinks import NdjsonSink
    from parsers._accel import compiled_modules
    out = Path(sys.argv[1])
    print("\\n".join(compiled_modules()), file=open(out / "compiled.txt", "w"))
    corpus = [p for p in Path("../shared/corpus").rglob("*.pcap*") if not p.name.endswith(".txt")]
    for pcap in sorted(Path("pcaps").glob("*.pcap*")) + sorted(corpus):
        stem = pcap.name.split(".")[0]
        keys_file = pcap.with_name(stem + ".keys.yaml")
        keys = load_keys(str(keys_file)) if keys_file.exists() else KeyStore()
        if pcap.parts[0] == "..":
            stem = "corpus-" + pcap.parent.name + "-" + pcap.name
        config = PipelineConfig(keys=keys, rules=RuleEngine.from_cli(keys=keys))
        sink = NdjsonSink(str(out / (stem + ".ndjson")))
        analyze_files([str(pcap)], config, [sink])
        sink.close()
""")


def _run(out: Path, pure: bool) -> list[str]:
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LWM2M_MONITOR_PURE"}
    # Different string hashes in the two runs: NDJSON keeps the builders' key order (no sorting),
    # so a document built by iterating a set or a hash-ordered dict would differ here.
    env["PYTHONHASHSEED"] = "2" if pure else "1"
    if pure:
        env["LWM2M_MONITOR_PURE"] = "1"
    subprocess.run([sys.executable, "-c", DRIVER, str(out)], cwd=ROOT, env=env, check=True, timeout=600)
    return (out / "compiled.txt").read_text().split()


def test_compiled_build_is_in_use_and_matches_the_sources(tmp_path):
    expected = sorted(f"{p}.{m}" for table in (build_accel.HOT, build_accel.C_EXTENSIONS)
                      for p, ms in table.items() for m in ms)
    compiled = _run(tmp_path / "compiled", pure=False)
    assert compiled == expected, "run `python scripts/build_accel.py` (make test does)"
    assert _run(tmp_path / "pure", pure=True) == []
    names = sorted(p.name for p in (tmp_path / "pure").glob("*.ndjson"))
    assert len(names) >= 55
    documents = 0
    for name in names:
        a = (tmp_path / "compiled" / name).read_bytes()
        b = (tmp_path / "pure" / name).read_bytes()
        assert a == b, f"{name}: compiled and pure-Python builds (and string hash seeds) differ"
        documents += a.count(b"\n")
    assert documents > 9000                      # the corpus thermostat capture alone has 9,175
    assert any(json.loads(line)["event"]["kind"] == "alert"
               for line in (tmp_path / "pure" / "leshan-nosec-bootstrap.ndjson").read_text().splitlines())


def _compile(module: Path) -> None:
    from Cython.Build import cythonize
    from setuptools import setup
    here = os.getcwd()
    os.chdir(module.parent.parent)
    try:
        setup(name="t", ext_modules=cythonize([f"{module.parent.name}/{module.name}"], quiet=True,
                                              compiler_directives={"language_level": 3}),
              script_args=["-q", "build_ext", "--inplace"])
    finally:
        os.chdir(here)


def _package(tmp_path: Path) -> Path:
    """An empty package `pkg` under tmp_path that guards its extensions as ours do."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from parsers._accel import prefer_fresh_sources\n"
                                     "prefer_fresh_sources(__name__, __path__[0])\n")
    return pkg


def _prober(tmp_path: Path, probe: str):
    """run(**env) -> (stdout words, stderr) of `probe` in a fresh interpreter seeing `pkg`."""
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("LWM2M_MONITOR_PURE", None)

    def run(**extra):
        r = subprocess.run([sys.executable, "-c", probe], env={**env, **extra}, capture_output=True,
                           text=True, timeout=60, check=True)
        return r.stdout.split(), r.stderr
    return run


def test_a_module_edited_after_the_build_runs_from_its_source(tmp_path):
    pkg = _package(tmp_path)
    mod = pkg / "hot.py"
    mod.write_text("import cython\nVERSION = 1\nCOMPILED = cython.compiled\n")
    _compile(mod)
    from parsers._accel import STAMP, source_digest
    (pkg / STAMP).write_text(json.dumps({"hot": source_digest(str(mod))}))
    run = _prober(tmp_path, "import pkg.hot as h; print(h.VERSION, h.COMPILED)")

    assert run() == (["1", "True"], "")                       # fresh: the extension
    assert run(LWM2M_MONITOR_PURE="1") == (["1", "False"], "")
    mod.write_text("import cython\nVERSION = 2\nCOMPILED = cython.compiled\n")
    out, err = run()
    assert out == ["2", "False"]                               # edited: the source, never the old build
    assert "pkg.{hot}" in err and "build_accel.py" in err
    (pkg / STAMP).unlink()
    assert run()[0] == ["2", "False"]                          # no stamp: never trust the extension


def test_editing_one_member_of_the_mypyc_group_runs_the_whole_group_from_source(tmp_path):
    # members call each other's compiled code directly: `b.value()` inside compiled `a` would
    # still be the old `b` if only `b` were imported from its edited source
    from mypyc.build import mypycify
    from setuptools import setup
    from parsers._accel import STAMP, source_digest
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from parsers._accel import prefer_fresh_sources\n"
                                     "prefer_fresh_sources(__name__, __path__[0])\n")
    (pkg / "b.py").write_text("def value() -> int:\n    return 1\n")
    (pkg / "a.py").write_text("from pkg.b import value\n\ndef through_b() -> int:\n    return value()\n")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        setup(name="t", ext_modules=mypycify([*build_accel.MYPY_FLAGS, "pkg/a.py", "pkg/b.py"], group_name="pkg._native",
                                             target_dir="build"),
              script_args=["-q", "build_ext", "--inplace"])
    finally:
        os.chdir(here)
    group = {f"pkg.{m}": source_digest(str(pkg / f"{m}.py")) for m in ("a", "b")}
    (pkg / STAMP).write_text(json.dumps({**{m: group[f"pkg.{m}"] for m in ("a", "b")}, "__group__": group}))
    probe = ("import pkg.a as a, pkg.b as b; from parsers._accel import compiled_modules;"
             "print(a.through_b(), b.value(), *[m for m in compiled_modules() if m.startswith('pkg.')])")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("LWM2M_MONITOR_PURE", None)

    def run():
        r = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, check=True)
        return r.stdout.split(), r.stderr

    assert run() == (["1", "1", "pkg.a", "pkg.b"], "")              # fresh: both compiled
    (pkg / "b.py").write_text("def value() -> int:\n    return 2\n")
    out, err = run()
    assert out == ["2", "2"]                                         # `a` unchanged, yet from source too
    assert "pkg.{a,b}" in err


@pytest.mark.parametrize("package", sorted(build_accel.HOT))
def test_every_listed_module_exists(package):
    for module in build_accel.HOT[package]:
        assert (ROOT / package / f"{module}.py").exists()
    for module in build_accel.C_EXTENSIONS.get(package, ()):
        assert (ROOT / package / f"{module}.c").exists()


def test_a_c_fast_path_edited_after_the_build_is_not_used(tmp_path):
    """`parsers/_udpscan.c` has no Python source: stale (or pure), its callers take the Python
    path instead (`parsers._accel.compiled` is False)."""
    import shutil
    pkg = _package(tmp_path)
    built = next((ROOT / "parsers").glob("_udpscan.*.so"))
    shutil.copy(built, pkg / built.name)
    c = pkg / "_udpscan.c"
    c.write_text("/* the source of the build */\n")
    from parsers._accel import STAMP, source_digest
    (pkg / STAMP).write_text(json.dumps({"_udpscan": source_digest(str(c))}))
    run = _prober(tmp_path, "import pkg; from parsers._accel import compiled; print(compiled('pkg._udpscan'))")

    assert run() == (["True"], "")
    assert run(LWM2M_MONITOR_PURE="1") == (["False"], "")
    c.write_text("/* edited */\n")
    out, err = run()
    assert out == ["False"] and "pkg.{_udpscan}" in err


def test_the_build_made_here_is_up_to_date_and_another_interpreters_is_not(monkeypatch):
    """`build_accel.py --if-stale` rebuilds a build made by another Python 3.11 (pyenv's
    `./configure` build against Debian's PGO one: same ABI tag, other headers and flags)."""
    assert build_accel.up_to_date(), "run `python scripts/build_accel.py` (make test does)"
    monkeypatch.setattr(build_accel.sys, "version", sys.version + " (another build)")
    assert not build_accel.up_to_date()
