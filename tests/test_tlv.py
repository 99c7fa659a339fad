"""OMA LwM2M TLV reader: the Kaitai-generated module is current, the façade's contract, and a
round trip through an encoder written here from the spec's bit layout (TS 1.0 §6.4.3)."""
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import tlv
from parsers.errors import Malformed, Truncated

ROOT = Path(__file__).resolve().parents[1]
KAITAI = ROOT / "parsers/kaitai"
h = bytes.fromhex


def test_generated_module_is_current(tmp_path):
    if shutil.which("node") is None or not (KAITAI / "node_modules/kaitai-struct-compiler").is_dir():
        pytest.skip("kaitai-struct-compiler not installed (cd parsers/kaitai && npm ci)")
    subprocess.run(["node", str(KAITAI / "compile.js"), str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "tlv_generated.py").read_text() == (ROOT / "parsers/tlv_generated.py").read_text()


def encode(kind: int, ident: int, value: bytes, length_type: int | None = None) -> bytes:
    """Type byte: bits 7-6 kind, bit 5 16-bit id, bits 4-3 length type, bits 2-0 short length."""
    n = len(value)
    if length_type is None:
        length_type = 0 if n < 8 else 1 if n < 1 << 8 else 2 if n < 1 << 16 else 3
    t = (kind << 6) | ((ident > 255) << 5) | (length_type << 3) | (n if length_type == 0 else 0)
    out = bytes([t]) + ident.to_bytes(2 if ident > 255 else 1, "big")
    if length_type:
        out += n.to_bytes(length_type, "big")
    return out + value


def test_every_length_encoding():
    for length_type, size in ((0, 7), (1, 200), (2, 300), (3, 70000)):
        value = bytes(range(256)) * (size // 256) + bytes(size % 256)
        [entry] = tlv.decode(encode(3, 5, value, length_type))
        assert entry.value == value and entry.identifier == 5 and entry.kind == tlv.Kind.RESOURCE_VALUE
    [entry] = tlv.decode(encode(3, 0xABCD, b"x"))
    assert entry.identifier == 0xABCD
    header = tlv.read_header(encode(3, 0xABCD, bytes(70000), 3))
    assert (header.header_length, header.value_length) == (6, 70000)


def test_nesting_rules():
    resource = encode(3, 1, b"\x01")
    instance = encode(1, 0, b"\x01")
    assert tlv.decode(encode(0, 0, resource))[0].children[0].identifier == 1
    with pytest.raises(Malformed, match="object_instance 0 inside object_instance"):
        tlv.decode(encode(0, 1, encode(0, 0, b"")))
    with pytest.raises(Malformed, match="resource_value 1 inside multiple_resource"):
        tlv.decode(encode(2, 6, resource))
    with pytest.raises(Malformed):
        tlv.decode(encode(0, 0, instance))


def test_truncation_is_truncated():
    data = encode(0, 3, encode(3, 1, b"abc") + encode(2, 6, encode(1, 0, b"\x01")))
    for cut in range(1, len(data)):
        with pytest.raises(Truncated):
            tlv.decode(data[:cut])


def test_value_readers():
    assert tlv.as_integer(h("ff")) == -1 and tlv.as_integer(h("0100")) == 256
    assert tlv.as_unsigned(h("ffffffffffffffff")) == 2 ** 64 - 1
    assert tlv.as_float(struct.pack("!f", 1.5)) == 1.5 and tlv.as_float(struct.pack("!d", -0.1)) == -0.1
    assert tlv.as_boolean(b"\x01") is True and tlv.as_boolean(b"\x00") is False
    assert tlv.as_objlnk(h("0042ffff")) == (66, 65535)
    assert tlv.as_string("é".encode()) == "é"
    for reader, bad in ((tlv.as_integer, h("010203")), (tlv.as_float, h("0000")), (tlv.as_boolean, h("02")),
                        (tlv.as_objlnk, h("000102")), (tlv.as_string, h("ff")), (tlv.as_unsigned, b"")):
        with pytest.raises(Malformed):
            reader(bad)


ids = st.integers(0, 65535)
leaf = st.binary(max_size=300)
resource = st.one_of(
    st.tuples(st.just(3), ids, leaf),
    st.tuples(st.just(2), ids, st.lists(st.tuples(st.just(1), ids, leaf), max_size=4)))
instance = st.tuples(st.just(0), ids, st.lists(resource, max_size=5))


def _encode_tree(node) -> bytes:
    kind, ident, body = node
    if isinstance(body, list):
        return encode(kind, ident, b"".join(_encode_tree(c) for c in body))
    return encode(kind, ident, body)


def _as_tree(entry: tlv.TlvEntry):
    if entry.is_container:
        return (int(entry.kind), entry.identifier, [_as_tree(c) for c in entry.children])
    return (int(entry.kind), entry.identifier, entry.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(instance, resource), max_size=4))
def test_round_trip(tree):
    data = b"".join(_encode_tree(n) for n in tree)
    assert [_as_tree(e) for e in tlv.decode(data)] == _normalise(tree)


def _normalise(children):
    return [(c[0], c[1], _normalise(c[2]) if isinstance(c[2], list) else c[2]) for c in children]


def test_nested_overrun_is_malformed_and_prefix_survives():
    inner_too_long = encode(0, 0, bytes([0xC3, 0x09, 0x57]))       # child claims 3 bytes, has 1
    with pytest.raises(Malformed):
        tlv.decode(inner_too_long)
    whole = encode(3, 9, b"\x57")
    entries, problem = tlv.decode_partial(whole + encode(3, 1, b"abc")[:-1])
    assert [e.identifier for e in entries] == [9] and isinstance(problem, Truncated)
    assert tlv.decode_partial(whole) == ([tlv.TlvEntry(tlv.Kind.RESOURCE_VALUE, 9, b"\x57")], None)
