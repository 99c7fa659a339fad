"""Per-format behaviour of decode_payload and the small readers: content-format registry
(against aiocoap's copy of the IANA table), link-format (against aiocoap's parser), LwM2M CBOR
(payloads built with cbor2), text/plain typing by the model, secrets in every encoding."""
import base64
import hashlib
import json
import re

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.objects import ObjectModel
from monitor.payload_decoder import Value, decode_payload, redact
from parsers import content_formats, linkformat, lwm2m_cbor
from parsers.errors import Malformed, Truncated

MODEL = ObjectModel.builtin()


# ------------------------------------------------------------------ content formats
def test_content_format_table_matches_aiocoap_iana_copy():
    from aiocoap.numbers import contentformat as iana
    norm = lambda s: re.sub(r"\s*\(.*\)$", "", s).replace(" ", "").replace('"', "").lower()
    registry = {int(num): mt for mt, enc, num, ref in iana._raw
                if "-" not in num and mt != "Unassigned" and not mt.startswith("Reserved")}
    ours = {n: content_formats.lookup(n) for n in registry}
    compared = [n for n, cf in ours.items() if cf.known]
    assert {0, 40, 42, 50, 60, 96, 98, 110, 112, 11542, 11543, 11544} <= set(compared)
    for n in compared:
        assert norm(ours[n].media_type) == norm(registry[n]), n


def test_unknown_content_format_is_kept():
    cf = content_formats.lookup(65000)
    assert (cf.number, cf.known, cf.media_type) == (65000, False, "unknown-65000")
    got = decode_payload(b"\x01", 65000, "/3/0/0", MODEL)
    assert got.values == [] and "unknown-65000" in got.error


# ------------------------------------------------------------------ link format
RFC6690_EXAMPLES = [
    '</sensors/temp>;if="sensor",</sensors/light>;if="sensor"',
    '</sensors>;ct=40;title="Sensor Index",</sensors/temp>;rt="temperature-c";if="sensor",'
    '</sensors/light>;rt="light-lux";if="sensor",<http://www.example.com/sensors/t123>;'
    'anchor="/sensors/temp";rel="describedby",</t>;anchor="/sensors/temp";rel="alternate"',
    '</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1/0>,</3>;ver=1.2,</3/0>,</5>;ver=1.1,</5/0>,</33000/0>',
    '</33000/0>,</33000/0/0>,</33000/0/1>;pmin=10;pmax=60,</33000/0/5>;obs',
    '</a>;title="quoted \\"comma\\", semicolon;",</b>',
]


def _aiocoap(text):
    from aiocoap.util import linkformat as theirs
    return [(link.href, [tuple(p) for p in link.attr_pairs]) for link in theirs.parse(text).links]


@pytest.mark.parametrize("text", RFC6690_EXAMPLES)
def test_link_format_agrees_with_aiocoap(text):
    ours = [(link.target, list(link.attributes)) for link in linkformat.parse(text.encode())]
    assert ours == _aiocoap(text)


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=6)
quoted = st.text(alphabet=st.characters(codec="ascii", exclude_characters='\\"', min_codepoint=32), max_size=8)
attribute = st.tuples(token, st.one_of(st.none(), token, quoted.map(lambda q: '"' + q + '"')))
link = st.tuples(st.lists(token, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
                 st.lists(attribute, max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(link, min_size=1, max_size=5))
def test_link_format_agrees_with_aiocoap_generated(links):
    text = ",".join("<" + t + ">" + "".join(";" + k + ("" if v is None else "=" + v) for k, v in attrs)
                    for t, attrs in links)
    ours = [(l.target, list(l.attributes)) for l in linkformat.parse(text.encode())]
    assert ours == _aiocoap(text)


def test_link_format_errors_and_alternate_root():
    for bad, error in ((b"</a", Truncated), (b'</a>;t="x', Truncated), (b"</a>,", Truncated),
                       (b"/a", Malformed), (b"</a> x", Malformed), (b"\xff", Malformed)):
        with pytest.raises(error):
            linkformat.parse(bad)
    links = linkformat.parse(b'</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>,</other/x>')
    assert linkformat.lwm2m_paths(links) == ("/lwm2m", ["/1/0", "/3/0"])
    got = decode_payload(b'</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>', 40, "/rd", MODEL)
    assert got.paths == ["/1/0", "/3/0"] and len(got.links) == 3


# ------------------------------------------------------------------ LwM2M CBOR (11544)
def test_lwm2m_cbor_nested_and_array_keys():
    payload = cbor2.dumps({3: {0: {0: "Open Mobile Alliance", 6: {0: 1, 1: 5}, 9: 100, 13: 1367491215}},
                           (6, 0): {0: 43.5, 1: -1.25}, (1, 0, 6): True, (33000, 0, 2): b"\x01\x02"})
    got = decode_payload(payload, 11544, "/", MODEL)
    assert got.error is None
    assert {v.path: (v.type, v.value) for v in got.values} == {
        "/3/0/0": ("string", "Open Mobile Alliance"), "/3/0/6/0": ("integer", 1), "/3/0/6/1": ("integer", 5),
        "/3/0/9": ("integer", 100), "/3/0/13": ("time", 1367491215), "/6/0/0": ("float", 43.5),
        "/6/0/1": ("float", -1.25), "/1/0/6": ("boolean", True), "/33000/0/2": ("opaque", "0102")}


@pytest.mark.parametrize("doc", [[1, 2], {"3": 1}, {3: [1]}, {(3, 0, 0, 0, 0): 1}, {-1: 2}, {3: {0: {0: None}}}])
def test_lwm2m_cbor_rejects(doc):
    data = cbor2.dumps(doc)
    if doc == {3: {0: {0: None}}}:     # structurally fine, but null is no resource value
        assert decode_payload(data, 11544, "/", MODEL).error
        return
    with pytest.raises(Malformed):
        lwm2m_cbor.decode(data)
    assert decode_payload(data, 11544, "/", MODEL).error


# ------------------------------------------------------------------ text/plain and opaque
@pytest.mark.parametrize("path, text, expected", [
    ("/3/0/9", "87", ("integer", 87)),
    ("/3/0/13", "1700000000", ("time", 1700000000)),
    ("/6/0/0", "43.918998", ("float", 43.918998)),
    ("/1/0/6", "1", ("boolean", True)),
    ("/0/0/13", "3", ("unsigned", 3)),
    ("/0/0/17", "21:0", ("objlnk", "21:0")),
    ("/5/0/1", "coap://h/fw.bin", ("string", "coap://h/fw.bin")),
    ("/33000/0/0", "unknown object", ("string", "unknown object")),
])
def test_text_plain_typed_by_model(path, text, expected):
    [value] = decode_payload(text.encode(), 0, path, MODEL).values
    assert (value.type, value.value) == expected


@pytest.mark.parametrize("path, text", [("/3/0/9", "eighty"), ("/1/0/6", "true"), ("/0/0/13", "-1"),
                                        ("/6/0/0", "north"), ("/0/0/17", "21"), ("/3/0", "87")])
def test_text_plain_errors(path, text):
    got = decode_payload(text.encode(), 0, path, MODEL)
    assert got.values == [] and got.error


def test_tlv_bytes_that_do_not_fit_the_model_stay_opaque():
    payload = bytes([0xC3, 0x09]) + b"\x01\x02\x03"      # Battery Level (integer) with 3 bytes
    got = decode_payload(payload, 11542, "/3/0", MODEL)
    assert [(v.path, v.type, v.value) for v in got.values] == [("/3/0/9", "opaque", "010203")]
    assert "integer of 3 bytes" in got.error


def test_tlv_needs_an_instance():
    got = decode_payload(bytes([0xC1, 0x09, 0x57]), 11542, "/3", MODEL)
    assert got.values == [] and "object instance" in got.error


# ------------------------------------------------------------------ secrets
KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
DIGEST = {"redacted": True, "sha256_8": hashlib.sha256(KEY).hexdigest()[:8]}


@pytest.mark.parametrize("cf, payload, path", [
    (11542, bytes([0xC8, 0x05, len(KEY)]) + KEY, "/0/1"),
    (110, json.dumps([{"n": "/0/1/5", "vd": base64.urlsafe_b64encode(KEY).decode().rstrip("=")}]).encode(), "/"),
    (112, cbor2.dumps([{-2: "/0/1/", 0: "5", 8: KEY}]), "/"),
    (11544, cbor2.dumps({0: {1: {5: KEY}}}), "/"),
    (0, base64.b64encode(KEY), "/0/1/5"),
    (42, KEY, "/0/1/5"),
    (60, cbor2.dumps(KEY), "/0/1/5"),
    (11542, bytes([0xC8, 0x00, len(KEY)]) + KEY, "/21/0"),
    (11542, bytes([0xC8, 0x05, len(KEY)]) + KEY, "/21/0"),
])
def test_secret_values_are_redacted_in_every_format(cf, payload, path):
    got = decode_payload(payload, cf, path, MODEL)
    [value] = got.values
    assert value.secret and value.raw == KEY and value.value == DIGEST
    assert redact(value) == DIGEST and redact(KEY) == DIGEST
    shown = json.dumps(value.value) + repr(value) + repr(got)
    for form in (KEY.hex(), repr(KEY)[2:-1], base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode()[:20]):
        assert form not in shown


def test_non_secret_security_resources_stay_visible():
    got = decode_payload(bytes([0xC1, 0x02, 0x00, 0xC1, 0x0A, 0x7B]), 11542, "/0/1", MODEL)
    assert [(v.path, v.value, v.secret) for v in got.values] == [("/0/1/2", 0, False), ("/0/1/10", 123, False)]


def test_value_repr_hides_raw():
    v = Value("/33000/0/2", "opaque", "00", raw=b"\x00")
    assert "raw" not in repr(v)


# ------------------------------------------------------------------ SenML resolution (RFC 8428)
def test_senml_rfc8428_multiple_datapoints_resolution():
    from parsers import senml
    # RFC 8428 §5.1.2 (first records), resolved per §4.6: bn+n, bt+t, u defaults to bu
    doc = b"""[
     {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,
      "n":"voltage","u":"V","v":120.1},
     {"n":"current","t":-5,"v":1.2},
     {"n":"current","t":-4,"v":1.3}]"""
    records = senml.decode_json(doc)
    assert [(r.name, r.unit, r.value) for r in records] == [
        ("urn:dev:ow:10e2073a0108006:voltage", "V", 120.1),
        ("urn:dev:ow:10e2073a0108006:current", "A", 1.2),
        ("urn:dev:ow:10e2073a0108006:current", "A", 1.3)]
    assert [round(r.time, 3) for r in records] == [1276020076.001, 1276020071.001, 1276020072.001]
    got = decode_payload(doc, 110, "/", MODEL)     # not LwM2M paths: reported, not guessed
    assert got.values == [] and "not an LwM2M path" in got.error


def test_senml_base_value_objlnk_and_bad_records():
    doc = json.dumps([{"bn": "/3/0/", "bv": 100, "n": "9", "v": -13},
                      {"n": "/0/0/17", "bn": "", "vlo": "21:0"}]).encode()
    got = decode_payload(doc, 110, "/", MODEL)
    assert [(v.path, v.type, v.value) for v in got.values] == [("/3/0/9", "integer", 87),
                                                               ("/0/0/17", "objlnk", "21:0")]
    for bad in ([{"n": "/3/0/9", "v": 1, "vs": "x"}], [{"n": "/3/0/9", "v": "1"}], {"n": "/3/0/9"},
                [{"n": "/3/0/9", "vd": "***"}], [{"n": "/3/0/9", "vlo": "21"}]):
        got = decode_payload(json.dumps(bad).encode(), 110, "/", MODEL)
        assert got.values == [] and got.error, bad


# ------------------------------------------------------------------ SenML round trip (json / cbor2 encoders)
leaf_value = st.one_of(
    st.tuples(st.just("vs"), st.text(max_size=12)),
    st.tuples(st.just("vb"), st.booleans()),
    st.tuples(st.just("v"), st.integers(-(2 ** 63), 2 ** 63 - 1)),
    st.tuples(st.just("v"), st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())),
    st.tuples(st.just("vd"), st.binary(max_size=12)))
record = st.tuples(st.integers(0, 3), st.integers(0, 65535), leaf_value, st.one_of(st.none(), st.integers(0, 2 ** 31)))
TYPE_OF = {"vs": "string", "vb": "boolean", "vd": "opaque"}


@settings(max_examples=200, deadline=None)
@given(st.lists(record, max_size=6), st.booleans())
def test_senml_round_trip_unknown_object(records, use_base_name):
    # object 40001 is not in the model: every type comes from the encoding
    expected, json_doc, cbor_doc = [], [], []
    for i, (inst, rid, (label, value), t) in enumerate(records):
        path = f"/40001/{inst}/{rid}"
        base, name = (f"/40001/{inst}/", str(rid)) if use_base_name else ("", path)
        j = {"n": name, label: base64.urlsafe_b64encode(value).decode().rstrip("=") if label == "vd" else value}
        c = {0: name, {"v": 2, "vs": 3, "vb": 4, "vd": 8}[label]: value}
        if use_base_name:
            j["bn"], c[-2] = base, base
        if t is not None:
            j["t"], c[6] = t, t
        json_doc.append(j)
        cbor_doc.append(c)
        kind = TYPE_OF.get(label) or ("integer" if isinstance(value, int) else "float")
        expected.append((path, kind, value.hex() if label == "vd" else value, t))
    for cf, payload in ((110, json.dumps(json_doc).encode()), (112, cbor2.dumps(cbor_doc))):
        got = decode_payload(payload, cf, "/", MODEL)
        assert got.error is None
        assert [(v.path, v.type, v.value, v.timestamp) for v in got.values] == expected
