"""Property tests: any prefix of a valid OSCORE option value / plaintext / protected message plus
random bytes gives the right type or the one documented error; the tracker never raises and never
reports a decryption for bytes that were not produced with the key."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.datagram import Datagram
from monitor.keys import KeyStore, OscoreContextConfig
from monitor.oscore_tracker import OscoreResult, OscoreTracker
from parsers import coap, oscore
from parsers.errors import Malformed, ParseError, Truncated

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
RFC = json.loads((CORPUS / "rfc8613-oscore" / "rfc8613_appendix_c_vectors.json").read_text())
OPTIONS = [bytes.fromhex(m["oscore_option_value"]) for m in RFC["messages"]] + [
    bytes.fromhex(v["oscore_option"]) for v in
    json.loads((CORPUS / "aiocoap-oscore" / "oscore_option_vectors.json").read_text())["vectors"]]
PLAINTEXTS = [bytes.fromhex(m["plaintext"]) for m in RFC["messages"]]
PROTECTED = [bytes.fromhex(m["protected_coap"]) for m in RFC["messages"]]
h = bytes.fromhex


def _cut(valid: list[bytes]):
    return st.tuples(st.sampled_from(valid), st.integers(0, 64), st.binary(max_size=24)).map(
        lambda t: t[0][:t[1]] + t[2])


@settings(max_examples=400, deadline=None)
@given(_cut(OPTIONS))
def test_option_value_prefix_plus_noise(value):
    try:
        opt = oscore.parse_option(value)
    except (Truncated, Malformed):
        return
    assert isinstance(opt, oscore.Option)
    assert opt.piv is None or 1 <= len(opt.piv) <= 5
    # What we read re-encodes to the same bytes (up to the 0x00 flag byte read as empty).
    assert oscore.encode_option(opt) == (b"" if value == b"\x00" else value)


@settings(max_examples=400, deadline=None)
@given(_cut(PLAINTEXTS))
def test_plaintext_prefix_plus_noise(data):
    try:
        inner = oscore.parse_plaintext(data)
    except (Truncated, Malformed):
        return
    assert isinstance(inner, oscore.Inner) and inner.code == data[0]


def _keys() -> KeyStore:
    secret, salt = h("0102030405060708090a0b0c0d0e0f10"), h("9e7ca92223786340")
    return KeyStore(oscore=[OscoreContextConfig(secret, salt, None, b"", h("01")),
                            OscoreContextConfig(secret, b"", None, h("00"), h("01")),
                            OscoreContextConfig(secret, salt, h("37cbf3210017a2d3"), b"", h("01"))])


TRACKER = OscoreTracker(_keys(), max_contexts=64)


@settings(max_examples=600, deadline=None)
@given(_cut(PROTECTED), st.sampled_from([True, False, None]))
def test_tracker_never_raises_on_prefix_plus_noise(data, from_client):
    try:
        msg = coap.parse(data)
    except ParseError:
        return
    if msg.oscore is None:
        return
    dgram = Datagram(1, "10.0.0.1", 5683, "10.0.0.2", 5683, data, 1, "fuzz")
    res = TRACKER.unprotect(dgram, msg, from_client)
    assert isinstance(res, OscoreResult)
    assert res.decrypted == (res.inner is not None)
    if res.decrypted:
        # Only an untouched RFC ciphertext can verify (a changed byte breaks the 64-bit tag).
        assert msg.payload in {coap.parse(p).payload for p in PROTECTED}
    else:
        assert res.error
    assert len(TRACKER._pending) <= 64 and len(TRACKER._contexts) <= 64 and len(TRACKER._failed_flows) <= 64


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(min_size=1, max_size=40), st.booleans())
def test_tracker_random_option_and_payload(option, payload, request):
    msg = coap.Message(coap.CON, coap.POST if request else 0x44, 1, b"\x01", ((coap.OSCORE, option),), payload)
    dgram = Datagram(1, "10.0.0.1", 1000, "10.0.0.2", 5683, b"", 1, "fuzz")
    res = TRACKER.unprotect(dgram, msg, None)
    assert not res.decrypted and res.error
