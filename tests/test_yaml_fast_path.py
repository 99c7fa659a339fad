"""`yaml_loader.load_plain_blocks`, the keys file's fast path, means what PyYAML means.

Whatever text it accepts, PyYAML (libyaml's loader, what `safe_load` uses) must load without
error into the very same document; what it refuses falls back to PyYAML. Checked on generated
documents built from the lines it reads plus the lines and values that look like them but are
not (numbers, booleans, dates, escapes, bad indentation, flow style, tabs, ...), on every keys
file in pcaps/ and on the benchmark generator's fleet keys file, which must take the fast path.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import keys, yaml_loader
from monitor.yaml_loader import NotPlain, load_plain_blocks, safe_load
from tests.captures import PCAPS, ROOT

NAMES = ["psk", "identity", "key", "identity_hex", "key_text", "keylog", "identities", "oscore",
         "on", "yes", "No", "null", "NULL", "true", "y", "n", "_x", "a1", "key2", "dev-2", "1",
         "0x1", "1e3", "a.b", "x=", "2001-12-14"]
WORDS = ["dev-01", "3f1a5c7e9b2d4f60", "0123", "0x1f", "1_000", "12", "-3", "1e3", "1.5", ".5",
         ".inf", "yes", "off", "null", "~", "2001-12-14", "12:30", "a:b", "a#b", "x=", "=",
         "ab/cd+ef==", "O", "y", "dev_1", "@x", "e", "0b101", "+1", "NaN", "_"]
QUOTED_TEXT = st.text(alphabet=st.sampled_from(list('ab 09#:-"\\\'\t~{}[]&*!|>%@`,é')), max_size=8)


SAFE_WORDS = ["dev-01", "3f1a5c7e9b2d4f60", "ab/cd+ef==", "dev_1", "x.y", "a-b-c", "O", "e"]
SAFE_TEXT = st.text(alphabet=st.sampled_from(list("ab 09#:-~{}[]&*!|>%@`,")), max_size=8)


@st.composite
def value(draw) -> str:
    """Mostly values the fast path takes (so that it is exercised), the rest tricky ones."""
    kind = draw(st.sampled_from(["safe", "safe", "safe-dq", "safe-sq", "word", "dq", "sq", "empty"]))
    if kind == "safe":
        return draw(st.sampled_from(SAFE_WORDS))
    if kind in ("safe-dq", "safe-sq"):
        text = draw(SAFE_TEXT)
        return f'"{text}"' if kind == "safe-dq" else f"'{text}'"
    if kind == "word":
        return draw(st.sampled_from(WORDS))
    if kind == "empty":
        return ""
    text = draw(QUOTED_TEXT)
    return f'"{text}"' if kind == "dq" else f"'{text}'"


@st.composite
def key(draw) -> str:
    kind = draw(st.sampled_from(["safe", "safe", "name", "quoted"]))
    if kind == "safe":
        return draw(st.sampled_from(["psk", "identity", "key", "keylog", "dev-2", "a1"]))
    if kind == "name":
        return draw(st.sampled_from(NAMES))
    return '"' + draw(st.sampled_from(["gateway-psk-99", "a b", "1", "on", 'q"x'])) + '"'


@st.composite
def line(draw) -> str:
    kind = draw(st.sampled_from(["top", "block", "item", "entry", "entry", "item", "blank",
                                 "comment", "raw"]))
    comment = draw(st.sampled_from(["", "", " # note", "# tight", "  #", " #é"]))
    if kind == "top":
        return f"{draw(key())}: {draw(value())}{comment}"
    if kind == "block":
        return f"{draw(key())}:{comment}"
    indent = " " * draw(st.integers(0, 6))
    if kind == "item":
        dash = draw(st.sampled_from(["- ", "- ", "-  ", "-"]))
        return f"{indent}{dash}{draw(key())}: {draw(value())}{comment}"
    if kind == "entry":
        sep = draw(st.sampled_from([": ", ": ", ":  ", ":", " : "]))
        return f"{indent}{draw(key())}{sep}{draw(value())}{comment}"
    if kind == "blank":
        return indent
    if kind == "comment":
        return f"{indent}#{draw(QUOTED_TEXT)}"
    return draw(st.sampled_from(["---", "...", "\t- key: x", "psk: [a, b]", "x: &a y", "y: *a",
                                 "k: |", "  literal", "? k", "%YAML 1.1", "x: !!str 1", "- - a",
                                 "\ufeffpsk:", "key: 'it''s'", 'key: "a\\x41"', "k: v # c: d"]))


def document(lines: list[str], ending: str) -> str:
    return ending.join(lines) + ending


def pyyaml(text: str):
    try:
        return ("ok", safe_load(text))
    except Exception as exc:              # noqa: BLE001 - any refusal counts as one
        return ("error", type(exc).__name__)


def assert_accepted_means_the_same(text: str) -> None:
    """If the fast path takes `text`, PyYAML loads it, into the same document."""
    try:
        fast = load_plain_blocks(text)
    except NotPlain:
        return
    assert pyyaml(text) == ("ok", fast), text


@st.composite
def shaped(draw) -> list[str]:
    """A document of the accepted shape (scalars, lists of flat mappings, flat mappings at
    consistent indents), then a few lines nudged: what a hand-edited file looks like."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        shape = draw(st.sampled_from(["scalar", "list", "map", "empty"]))
        if shape == "scalar":
            lines.append(f"{draw(key())}: {draw(value())}")
            continue
        lines.append(f"{draw(key())}:")
        indent = draw(st.integers(0 if shape == "list" else 1, 4))
        pad = " " * indent
        if shape == "list":
            for _ in range(draw(st.integers(1, 4))):
                lines.append(f"{pad}- {draw(key())}: {draw(value())}")
                lines += [f"{pad}  {draw(key())}: {draw(value())}" for _ in range(draw(st.integers(0, 3)))]
        elif shape == "map":
            lines += [f"{pad}{draw(key())}: {draw(value())}" for _ in range(draw(st.integers(1, 4)))]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(lines) - 1))
        nudge = draw(st.sampled_from(["indent", "dedent", "insert", "comment"]))
        if nudge == "indent":
            lines[i] = " " + lines[i]
        elif nudge == "dedent" and lines[i].startswith(" "):
            lines[i] = lines[i][1:]
        elif nudge == "insert":
            lines.insert(i, draw(line()))
        else:
            lines[i] += draw(st.sampled_from([" # c", "#c", "  # c: d"]))
    return lines


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped(), st.sampled_from(["\n", "\r\n"]))
def test_shaped_documents_the_fast_path_accepts_load_the_same(lines, ending):
    assert_accepted_means_the_same(document(lines, ending))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line(), min_size=1, max_size=14), st.sampled_from(["\n", "\r\n", "\r"]))
def test_what_the_fast_path_accepts_pyyaml_loads_the_same(lines, ending):
    assert_accepted_means_the_same(document(lines, ending))


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["- identity", "  key", "  identity_hex", "  key_text"]),
                          value()), min_size=1, max_size=12),
       st.integers(0, 3))
def test_psk_lists_like_users_write_them(entries, indent):
    """Mostly valid keys files (the shape the fast path exists for), with every kind of value."""
    pad = " " * indent
    assert_accepted_means_the_same("psk:\n" + "".join(f"{pad}{k}: {v}\n" for k, v in entries))


def test_the_fast_path_is_taken_for_plain_fleet_files():
    text = ("# fleet keys\npsk:\n  - identity: dev-00001   # a device\n    key: \"00112233445566778899aabbccddeeff\"\n"
            "  - identity_hex: '6465762d32'\n    key_base64: AAECAwQFBgcICQoLDA0ODw==\n\n"
            "keylog: sessions.keylog\nidentities:\n  \"dev-00001\": ep-1\n  dev-2: 'ep 2'\n")
    assert load_plain_blocks(text) == safe_load(text)
    for bad in ("psk:\n  - identity: on\n", "psk:\n  - key: 0123\n", 'psk:\n  - key: "a\\tb"\n',
                "psk:\n\t- key: ab\n", "psk:\n  - identity: a\n  key: b\n", "oscore:\n  - aead: 10\n"):
        with pytest.raises(NotPlain):
            load_plain_blocks(bad)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(PCAPS, "*.keys.yaml"))), ids=os.path.basename)
def test_bundled_keys_files_load_the_same_either_way(path, monkeypatch):
    fast = keys.load(path)

    def refuse(text):
        raise NotPlain("test")
    monkeypatch.setattr(yaml_loader, "load_plain_blocks", refuse)
    slow = keys.load(path)
    assert fast.psks == slow.psks and fast.identities == slow.identities
    assert fast.oscore == slow.oscore and fast.keylog == slow.keylog


def test_benchmark_fleet_keys_file_takes_the_fast_path(tmp_path):
    pcap = tmp_path / "fleet.pcap"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_dtls_traffic.py"), str(pcap),
                    "--packets", "3000", "--clients", "300"], check=True, capture_output=True)
    (path,) = glob.glob(str(tmp_path / "*.keys.yaml"))
    text = open(path).read()
    doc = load_plain_blocks(text)
    assert doc == safe_load(text) and len(doc["psk"]) >= 200


def test_implicit_first_characters_are_pyyamls():
    # the fast path answers "string" without PyYAML for any other first character
    import yaml.resolver
    table = {k for k in yaml.resolver.Resolver.yaml_implicit_resolvers if k}
    assert yaml_loader.IMPLICIT_FIRST == frozenset(table)
    assert None not in yaml.resolver.Resolver.yaml_implicit_resolvers   # no catch-all resolver either


def test_a_plain_fleet_keys_file_loads_without_pyyaml(tmp_path):
    path = tmp_path / "fleet.keys.yaml"
    path.write_text("psk:\n" + "".join(f'  - identity: "dev-{i:05d}"\n    key: "{i:032x}"\n' for i in range(50))
                    + "identities:\n  dev-00001: ep-1\n")
    code = (f"import sys; from monitor import keys; k = keys.load({str(path)!r}); "
            "print(len(k.psks), len(k.identities), 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["50", "1", "False"]
