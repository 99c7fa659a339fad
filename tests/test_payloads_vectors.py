"""Every LwM2M payload vector of the external corpus (MANIFEST §9): Leshan and wakaama tests.

Types in the corpus come from the OMA object model, so these also check the shipped XMLs.
The corpus spells unsigned integers "unsigned_integer" and Read-Composite names "path_only";
our contract says "unsigned" and puts names in `paths`.
"""
import hashlib
import json
import math
from pathlib import Path

import pytest

from monitor.objects import ObjectModel
from monitor.payload_decoder import decode_payload
from parsers import linkformat, tlv
from parsers.errors import ParseError, Truncated

CORPUS = Path(__file__).resolve().parents[1] / "../shared/corpus/lwm2m-vectors"
TEST_OBJECTS = Path(__file__).with_name("payloads_objects")
MODEL = ObjectModel.load(TEST_OBJECTS)
h = bytes.fromhex


def _vectors(name):
    return json.loads((CORPUS / name).read_text())["vectors"]


LESHAN = _vectors("leshan_vectors.json")
WAKAAMA = _vectors("wakaama_vectors.json")
VALUE_VECTORS = [v for v in LESHAN + WAKAAMA if "expected" in v or v.get("expect_error")]
STRUCTURE_VECTORS = [v for v in WAKAAMA if "expected_structure" in v]
HEADER_VECTORS = [v for v in WAKAAMA if "expected_header" in v]
INTEGER_VECTORS = [v for v in WAKAAMA if "expected_integer" in v]


def test_corpus_is_complete():
    assert len(LESHAN) == 40 and len(WAKAAMA) == 90
    assert len(VALUE_VECTORS) + len(STRUCTURE_VECTORS) + len(HEADER_VECTORS) + len(INTEGER_VECTORS) == 130


def _same(expected, got):
    if isinstance(expected, str) and expected in ("NaN", "Infinity", "-Infinity"):
        return got == expected
    if isinstance(expected, float) or isinstance(got, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        return math.isclose(expected, got, rel_tol=1e-12, abs_tol=0) and \
            math.copysign(1, expected) == math.copysign(1, got)
    return type(expected) is type(got) and expected == got


def _check(vector, payload_hex):
    path = vector.get("request_path", vector.get("path"))
    got = decode_payload(h(payload_hex), vector["content_format"], path, MODEL)
    if vector.get("expect_error"):
        assert got.error and not got.values, got
        return
    assert got.error is None, got.error
    expected = [e for e in vector["expected"] if e["type"] != "path_only"]
    paths = [e["path"] for e in vector["expected"] if e["type"] == "path_only"]
    assert got.paths == paths
    key = lambda e: (e["path"], -(e.get("timestamp") or 0))
    values = sorted(({"path": v.path, "type": v.type, "value": v.value, "timestamp": v.timestamp,
                      "secret": v.secret, "raw": v.raw} for v in got.values), key=key)
    expected = sorted(expected, key=key)
    assert [v["path"] for v in values] == [e["path"] for e in expected]
    for e, v in zip(expected, values):
        etype = {"unsigned_integer": "unsigned"}.get(e["type"], e["type"])
        assert v["type"] == etype, (e, v)
        if v["secret"]:   # keying material: the value is the digest, the bytes stay in raw
            assert v["raw"].hex() == e["value"]
            digest = hashlib.sha256(bytes.fromhex(e["value"])).hexdigest()[:8]
            assert v["value"] == {"redacted": True, "sha256_8": digest}
        else:
            assert _same(e["value"], v["value"]), (e, v)
        if "timestamp" in e:
            assert v["timestamp"] is not None and math.isclose(v["timestamp"], e["timestamp"], abs_tol=1e-6)
        else:
            assert v["timestamp"] is None


@pytest.mark.parametrize("vector", VALUE_VECTORS, ids=lambda v: v["name"])
def test_value_vector(vector):
    _check(vector, vector["payload_hex"])
    for alternative in vector.get("alternative_payload_hex") or ():
        _check(vector, alternative)


def _structure(entries):
    out = []
    for e in entries:
        d = {"tlv_type": e.kind.name.lower(), "id": e.identifier}
        if e.is_container:
            d["children"] = _structure(e.children)
        else:
            d["value_hex"] = e.value.hex()
        out.append(d)
    return out


@pytest.mark.parametrize("vector", STRUCTURE_VECTORS, ids=lambda v: v["name"])
def test_tlv_structure_vector(vector):
    data = h(vector["payload_hex"])
    assert _structure(tlv.decode(data)) == vector["expected_structure"]
    with pytest.raises(Truncated):          # wakaama: a missing last byte must fail
        tlv.decode(data[:-1])


@pytest.mark.parametrize("vector", HEADER_VECTORS, ids=lambda v: v["name"])
def test_tlv_header_vector(vector):
    data = h(vector["payload_hex"])
    header = tlv.read_header(data)
    exp = vector["expected_header"]
    assert (header.kind.name.lower(), header.identifier, header.header_length,
            header.value_length, header.total_length) == (
        exp["tlv_type"], exp["id"], exp["header_length"], exp["value_length"], exp["total_length"])
    # The bodies are not valid nested TLV lists: the full decoder must refuse them.
    with pytest.raises(ParseError):
        tlv.decode(data)


@pytest.mark.parametrize("vector", INTEGER_VECTORS, ids=lambda v: v["name"])
def test_tlv_integer_vector(vector):
    assert tlv.as_integer(h(vector["value_hex"])) == vector["expected_integer"]


def test_corelnk_value_parses_as_the_links_leshan_asserts():
    vector = next(v for v in LESHAN if v["name"] == "leshan_tlv_obj3442_corelnk")
    got = decode_payload(h(vector["payload_hex"]), 11542, vector["request_path"], MODEL)
    links = linkformat.parse(got.values[0].value)
    assert [link.target for link in links] == vector["expected_links"]
    assert [len(link.attributes) for link in links] == [2, 1, 0, 0, 1, 0, 0]
    assert links[0].attr("rt") == "oma.lwm2m"
