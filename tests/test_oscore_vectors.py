"""RFC 8613 Appendix C vectors and aiocoap's OSCORE option vectors (../shared/corpus §7, §8)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.keys import OscoreContextConfig
from monitor.oscore_context import Context, nonce
from parsers import coap, oscore
from parsers.errors import Malformed, Truncated

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
RFC = json.loads((CORPUS / "rfc8613-oscore" / "rfc8613_appendix_c_vectors.json").read_text())
AIOCOAP = json.loads((CORPUS / "aiocoap-oscore" / "oscore_option_vectors.json").read_text())
h = bytes.fromhex


def _cfg(v: dict, client_is_sender: bool) -> OscoreContextConfig:
    """The vectors are written from one endpoint's view; we store client/server IDs."""
    client_id, server_id = (v["sender_id"], v["recipient_id"]) if client_is_sender else (v["recipient_id"], v["sender_id"])
    return OscoreContextConfig(master_secret=h(v["master_secret"]), master_salt=h(v["master_salt"]),
                               id_context=None if v["id_context"] is None else h(v["id_context"]),
                               client_id=h(client_id), server_id=h(server_id), aead=v["aead_alg"])


@pytest.mark.parametrize("v", RFC["key_derivation"], ids=lambda v: v["rfc_section"])
def test_key_derivation(v):
    is_client = v["name"].split()[1] == "client"
    ctx = Context.derive(_cfg(v, is_client))
    sender_key, recipient_key = (ctx.client_key, ctx.server_key) if is_client else (ctx.server_key, ctx.client_key)
    assert sender_key.hex() == v["sender_key"]
    assert recipient_key.hex() == v["recipient_key"]
    assert ctx.common_iv.hex() == v["common_iv"]
    idc = None if v["id_context"] is None else h(v["id_context"])
    assert oscore.info(h(v["sender_id"]), idc, 10, "Key", 16).hex() == v["info_sender_key"]
    assert oscore.info(h(v["recipient_id"]), idc, 10, "Key", 16).hex() == v["info_recipient_key"]
    assert oscore.info(b"", idc, 10, "IV", 13).hex() == v["info_common_iv"]
    assert nonce(ctx.common_iv, h(v["sender_id"]), b"\0").hex() == v["sender_nonce_piv0"]
    assert nonce(ctx.common_iv, h(v["recipient_id"]), b"\0").hex() == v["recipient_nonce_piv0"]


def _context_for(m: dict) -> tuple[Context, bool]:
    kd = next(k for k in RFC["key_derivation"] if k["rfc_section"] == m["context"])
    is_client = kd["name"].split()[1] == "client"
    return Context.derive(_cfg(kd, is_client)), is_client


@pytest.mark.parametrize("m", RFC["messages"], ids=lambda m: m["rfc_section"])
def test_message_unprotect(m):
    ctx, sent_by_client = _context_for(m)
    msg = coap.parse(h(m["protected_coap"]))
    opt = oscore.parse_option(msg.oscore)
    assert oscore.encode_option(opt).hex() == m["oscore_option_value"]
    assert (opt.piv.hex() if opt.piv is not None else None) == m["partial_iv"]
    if m["direction"] == "request":
        assert opt.kid.hex() == m["kid"]
        assert (None if opt.kid_context is None else opt.kid_context.hex()) == m["kid_context"]
    aad = oscore.aad(10, h(m["request_kid"]), h(m["request_piv"]))
    assert aad.hex() == m["aad"]
    assert oscore.external_aad(10, h(m["request_kid"]), h(m["request_piv"])).hex() == m["aad_array"]
    if opt.piv is not None:
        nonce_id, nonce_piv = ctx.sender_id(sent_by_client), opt.piv
    else:
        nonce_id, nonce_piv = h(m["request_kid"]), h(m["request_piv"])
    assert nonce(ctx.common_iv, nonce_id, nonce_piv).hex() == m["nonce"]
    assert msg.payload.hex() == m["ciphertext_with_tag"]
    plain = ctx.open(sent_by_client, ctx.nonce(nonce_id, nonce_piv), aad, msg.payload)
    assert plain is not None and plain.hex() == m["plaintext"]
    # Protect direction: the same inputs give the RFC's ciphertext.
    assert ctx.seal(sent_by_client, ctx.nonce(nonce_id, nonce_piv), aad, plain).hex() == m["ciphertext_with_tag"]
    # Reassemble the unprotected message from outer header + inner plaintext, compare with RFC.
    inner = oscore.parse_plaintext(plain)
    plain_msg = coap.parse(h(m["unprotected_coap"]))
    outer_u = [(n, v) for n, v in msg.options if n != coap.OSCORE]
    rebuilt = coap.Message(msg.type, inner.code, msg.mid, msg.token, tuple(outer_u) + inner.options, inner.payload)
    assert coap.serialize(rebuilt) == coap.serialize(plain_msg)


@pytest.mark.parametrize("m", RFC["messages"], ids=lambda m: m["rfc_section"])
def test_message_wrong_key_fails(m):
    ctx, sent_by_client = _context_for(m)
    msg = coap.parse(h(m["protected_coap"]))
    aad = oscore.aad(10, h(m["request_kid"]), h(m["request_piv"]))
    bad = bytes([msg.payload[0] ^ 1]) + msg.payload[1:]
    opt = oscore.parse_option(msg.oscore)
    nid, npiv = (ctx.sender_id(sent_by_client), opt.piv) if opt.piv is not None else (h(m["request_kid"]), h(m["request_piv"]))
    assert ctx.open(sent_by_client, ctx.nonce(nid, npiv), aad, bad) is None
    # The other endpoint's key must not verify either.
    assert ctx.open(not sent_by_client, ctx.nonce(nid, npiv), aad, msg.payload) is None


@pytest.mark.parametrize("v", AIOCOAP["vectors"], ids=lambda v: v["name"])
def test_aiocoap_option_vectors(v):
    value = h(v["oscore_option"])
    exp = v["expect"]
    if "error" in exp:
        with pytest.raises(Malformed):
            oscore.parse_option(value)
        return
    opt = oscore.parse_option(value)
    for name, got in (("partial_iv", opt.piv), ("kid", opt.kid), ("kid_context", opt.kid_context)):
        assert (None if got is None else got.hex()) == exp[name], name
    assert opt.group == exp.get("group_flag", False)
    assert oscore.encode_option(opt) == value


@pytest.mark.parametrize("value,error", [
    (b"\x06" + b"\0" * 6, Malformed), (b"\x07" + b"\0" * 7, Malformed),   # reserved PIV lengths
    (b"\x03\x01\x02", Truncated),             # PIV shorter than n
    (b"\x11\x00", Truncated),                 # kid context length missing
    (b"\x11\x00\x05ab", Truncated),           # kid context shorter than s
    (b"\x01\x00\xaa", Malformed),             # trailing bytes without kid flag
])
def test_option_errors(value, error):
    with pytest.raises(error):
        oscore.parse_option(value)


def test_zero_flag_byte_reads_as_empty_option():
    # RFC 8613 §6.1 wants an empty option here; Interop6 peers sent 0x00 and Wireshark reads it.
    assert oscore.parse_option(b"\x00") == oscore.Option(None, None, None)


def test_plaintext_errors():
    with pytest.raises(Truncated):
        oscore.parse_plaintext(b"")
    with pytest.raises(Malformed):
        oscore.parse_plaintext(b"\x00")            # code 0.00 is no request or response
    with pytest.raises(Malformed):
        oscore.parse_plaintext(b"\x45\xff")        # payload marker with no payload
    assert oscore.parse_plaintext(b"\x45\xff\x41") == oscore.Inner(0x45, (), b"A")
