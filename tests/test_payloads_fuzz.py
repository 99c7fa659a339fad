"""Hypothesis: every decoder, fed a valid payload cut anywhere plus arbitrary bytes, returns a
value or raises its one documented error (parsers), and `decode_payload` never raises."""
import json
from pathlib import Path

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.objects import ObjectModel
from monitor.payload_decoder import DecodedPayload, decode_payload
from parsers import cbor_value, linkformat, lwm2m_cbor, lwm2m_json, senml, tlv
from parsers.errors import ParseError

CORPUS = Path(__file__).resolve().parents[1] / "../shared/corpus/lwm2m-vectors"
MODEL = ObjectModel.builtin()


def _samples():
    out = {}
    for name in ("leshan_vectors.json", "wakaama_vectors.json"):
        for v in json.loads((CORPUS / name).read_text())["vectors"]:
            if v.get("payload_hex"):
                path = v.get("request_path", v.get("path")) or "/"
                out.setdefault(v["content_format"], []).append((bytes.fromhex(v["payload_hex"]), path))
    out[40] = [(b'</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1/0>,</3>;ver=1.2,</3/0>', "/rd"),
               (b'</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>;title="a \\"b\\", c"', "/rd")]
    out[11544] = [(cbor2.dumps({3: {0: {0: "Open Mobile Alliance", 6: {0: 1, 1: 5}, 13: 1367491215}}}), "/3/0"),
                  (cbor2.dumps({(0, 1): {3: b"id", 5: b"\x01\x02"}, 6: {0: {0: 1.5}}}), "/")]
    return out


SAMPLES = _samples()
FORMATS = sorted(SAMPLES)
PARSERS = {11542: tlv.decode, 110: senml.decode_json, 112: senml.decode_cbor, 11543: lwm2m_json.decode,
           11544: lwm2m_cbor.decode, 60: cbor_value.decode, 40: linkformat.parse}


@st.composite
def mangled(draw):
    cf = draw(st.sampled_from(FORMATS))
    payload, path = draw(st.sampled_from(SAMPLES[cf]))
    cut = draw(st.integers(0, len(payload)))
    tail = draw(st.binary(max_size=24))
    return cf, payload[:cut] + tail, path


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mangled())
def test_decode_payload_never_raises(case):
    cf, data, path = case
    got = decode_payload(data, cf, path, MODEL)
    assert isinstance(got, DecodedPayload)
    parser = PARSERS.get(cf)
    if parser is not None and data:     # an empty payload is "no value", not an error
        try:
            parser(data)
        except ParseError:
            assert got.error is not None    # what the parser refuses is reported, not dropped
    json.dumps([{"path": v.path, "type": v.type, "value": v.value} for v in got.values])   # JSON-able


@FUZZ
@given(mangled())
def test_parsers_raise_only_their_errors(case):
    cf, data, _ = case
    parser = PARSERS.get(cf)
    if parser is None:
        return
    try:
        parser(data)
    except ParseError:
        pass


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([0, 40, 42, 60, 110, 112, 11542, 11543, 11544, None, 9999]),
       st.sampled_from(["/", "/3", "/3/0", "/3/0/13", "/0/0/5", "/21/0", "not a path", None]))
def test_random_bytes_any_format(data, cf, path):
    got = decode_payload(data, cf, path, MODEL)
    assert isinstance(got, DecodedPayload)


@FUZZ
@given(st.binary(max_size=40))
def test_tlv_header_reader(data):
    try:
        header = tlv.read_header(data)
    except ParseError:
        return
    assert 2 <= header.header_length <= 6 and header.header_length <= len(data)
