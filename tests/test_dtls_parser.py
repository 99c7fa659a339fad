"""parsers/dtls.py: record and handshake readers on real datagrams, their error contract under
arbitrary truncation/garbage (Hypothesis), DTLS 1.3 unified headers, RFC 9146 CID records."""
from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.capture import CaptureStats, read_files
from parsers import dtls
from parsers.errors import Malformed, ParseError, Truncated
from parsers.tls_suites import SUITES, suite, suite_name

HERE = os.path.dirname(__file__)
CORPUS = os.path.join(HERE, "..", "..", "shared", "corpus")
WS_PCAP = os.path.join(CORPUS, "wireshark", "dtls12-aes128ccm8.DERIVED-from-dsb.pcap")
SNAKEOIL = os.path.join(CORPUS, "wireshark-wiki", "snakeoil-dtls.pcap")
GOLIOTH = os.path.join(CORPUS, "golioth-coap-pcap", "golioth_basics_psk.pcapng")
COAP_CBOR = os.path.join(CORPUS, "wireshark-wiki", "coap-cbor.pcap")
CID_PCAP = os.path.join(HERE, "..", "pcaps", "leshan-psk-cid.pcap")


def datagrams(path: str) -> list:
    return list(read_files([path], CaptureStats()))


WS = datagrams(WS_PCAP)
SAMPLES = [d.payload for d in WS + datagrams(SNAKEOIL) + datagrams(GOLIOTH)[:20]
           if dtls.looks_like_dtls(d.payload)]


def test_looks_like_dtls_on_real_traffic():
    assert all(dtls.looks_like_dtls(d.payload) for d in WS)
    coap_payloads = [d.payload for d in datagrams(COAP_CBOR)]
    assert coap_payloads and not any(dtls.looks_like_dtls(p) for p in coap_payloads)
    dns = [d.payload for d in datagrams(GOLIOTH) if 53 in (d.src_port, d.dst_port)]
    assert dns and not any(dtls.looks_like_dtls(p) for p in dns)


def test_frame6_holds_three_records():
    """Wireshark frame 6: ClientKeyExchange, ChangeCipherSpec, Finished (epoch 1)."""
    recs = dtls.parse_records(WS[5].payload)
    assert [(r.content_type, r.epoch, r.seq) for r in recs] == [(22, 0, 2), (20, 0, 3), (22, 1, 0)]
    (cke,) = dtls.parse_handshake(recs[0].fragment)
    assert cke.msg_type == dtls.CLIENT_KEY_EXCHANGE and cke.whole
    assert dtls.parse_client_key_exchange(cke.body, "psk").psk_identity == b"test"
    assert len(recs[2].fragment) == 8 + 24 + 8   # explicit nonce + Finished + CCM_8 tag


def test_hello_verify_and_client_hellos():
    (ch1,) = dtls.parse_handshake(dtls.parse_records(WS[0].payload)[0].fragment)
    (hvr,) = dtls.parse_handshake(dtls.parse_records(WS[1].payload)[0].fragment)
    (ch2,) = dtls.parse_handshake(dtls.parse_records(WS[2].payload)[0].fragment)
    first, second = dtls.parse_client_hello(ch1.body), dtls.parse_client_hello(ch2.body)
    cookie = dtls.parse_hello_verify_request(hvr.body).cookie
    assert first.cookie == b"" and second.cookie == cookie and cookie
    assert (ch1.message_seq, hvr.message_seq, ch2.message_seq) == (0, 0, 1)
    assert second.random == first.random
    assert 0xC0A8 in second.cipher_suites


def test_handshake_bytes_is_the_unfragmented_form():
    (frag,) = dtls.parse_handshake(dtls.parse_records(WS[2].payload)[0].fragment)
    rec = dtls.parse_records(WS[2].payload)[0]
    assert dtls.handshake_bytes(frag.msg_type, frag.message_seq, frag.body) == rec.fragment


def test_fragmented_handshake_fragments():
    body = bytes(range(200))
    a = bytes([1]) + (200).to_bytes(3, "big") + b"\x00\x05" + (0).to_bytes(3, "big") + (120).to_bytes(3, "big") + body[:120]
    b = bytes([1]) + (200).to_bytes(3, "big") + b"\x00\x05" + (120).to_bytes(3, "big") + (80).to_bytes(3, "big") + body[120:]
    f1, f2 = dtls.parse_handshake(a + b)
    assert not f1.whole and f2.fragment_offset == 120 and f1.body + f2.body == body
    bad = bytes([1]) + (10).to_bytes(3, "big") + b"\x00\x00" + (5).to_bytes(3, "big") + (8).to_bytes(3, "big") + bytes(8)
    with pytest.raises(Malformed):
        dtls.parse_handshake(bad)


def test_unified_header_is_recognised_not_misparsed():
    # RFC 9147 §4: 001CSLEE; here C=0, S=1 (16-bit seq), L=1, epoch bits 3
    rec = bytes([0b00101111]) + b"\x12\x34" + struct.pack("!H", 5) + b"ABCDE"
    assert dtls.looks_like_dtls(rec)
    (u,) = dtls.parse_records(rec)
    assert isinstance(u, dtls.UnifiedRecord)
    assert (u.seq_low, u.epoch_low, u.fragment, u.cid) == (0x1234, 3, b"ABCDE", b"")
    # with a CID of unknown length the rest stays one opaque record
    (u,) = dtls.parse_records(bytes([0b00110110]) + b"\x01\x02\x03\x04\x05")
    assert u.cid is None and u.fragment == b"\x01\x02\x03\x04\x05"
    with pytest.raises(Truncated):
        dtls.parse_records(bytes([0b00101100]) + b"\x00\x01\x00\x09abc")


@pytest.mark.skipif(not os.path.exists(CID_PCAP), reason="leshan-psk-cid.pcap not present")
def test_cid_records_need_the_cid_length():
    payloads = [d.payload for d in datagrams(CID_PCAP)]
    cid_payload = next(p for p in payloads if p[0] == dtls.TLS12_CID)
    with pytest.raises(Malformed):
        dtls.parse_records(cid_payload)
    (rec,) = dtls.parse_records(cid_payload, cid_length=4)
    assert rec.content_type == dtls.TLS12_CID and len(rec.cid) == 4
    assert rec.cid.hex() in ("336fdd2b", "a535ba2b")


def test_alert_reader():
    assert dtls.parse_alert(b"\x02\x28") == dtls.Alert(2, 40)
    with pytest.raises(Truncated):
        dtls.parse_alert(b"\x02")
    with pytest.raises(Malformed):
        dtls.parse_alert(b"\x07\x00")


def test_suite_table_properties():
    s = suite(0xC0A8)
    assert (s.kx, s.mode, s.tag_len, s.key_len, s.fixed_iv_len, s.prf) == ("psk", "CCM_8", 8, 16, 4, "sha256")
    s = suite(0x00A9)
    assert (s.mode, s.prf, s.key_len, s.aead) == ("GCM", "sha384", 32, True)
    s = suite(0x008C)
    assert (s.mode, s.mac, s.mac_len, s.is_sha1_mac, s.record_iv_len) == ("CBC", "sha1", 20, True, 16)
    assert suite(0xC037).kx == "ecdhe_psk" and suite(0xC0AA).kx == "dhe_psk"
    assert suite(0xCCAB).fixed_iv_len == 12 and suite(0xCCAB).record_iv_len == 0
    assert suite(0x0004).is_weak and suite(0x002C).is_weak and suite(0x0018).is_weak
    assert not suite(0xC0A8).is_weak
    assert suite_name(0x0A0A).startswith("GREASE") and suite_name(0x1234) == "unknown_0x1234"
    # every PSK suite of the IANA registry's RFC 4279/4785/5487/5489/6655/7905/8442 families
    psk = {c for c, s in SUITES.items() if s.auth == "psk"}
    assert {0x008A, 0x008B, 0x008C, 0x008D, 0x00A8, 0x00A9, 0x00AE, 0x00AF, 0x00B0, 0x00B1, 0xC0A4,
            0xC0A5, 0xC0A8, 0xC0A9, 0xCCAB, 0xCCAC, 0xCCAD, 0xCCAE, 0xD001, 0xD002, 0xD003,
            0xD005, 0xC035, 0xC036, 0xC037, 0xC038, 0xC039, 0xC03A, 0xC03B} <= psk


# ------------------------------------------------------------------ error contract

_READERS = (dtls.parse_records,
            lambda b: dtls.parse_records(b, cid_length=4),
            dtls.parse_handshake, dtls.parse_client_hello, dtls.parse_server_hello,
            dtls.parse_hello_verify_request, dtls.parse_alert, dtls.parse_new_session_ticket,
            lambda b: dtls.parse_server_key_exchange(b, "ecdhe_psk"),
            lambda b: dtls.parse_server_key_exchange(b, "dhe"),
            lambda b: dtls.parse_client_key_exchange(b, "psk"),
            lambda b: dtls.parse_client_key_exchange(b, "rsa"),
            lambda b: dtls.parse_certificate(b), lambda b: dtls.parse_certificate(b, True),
            dtls.ext_connection_id, dtls.ext_u16_list, dtls.ext_u8_list, dtls.ext_server_name,
            lambda b: dtls.ext_supported_versions(b, False))


def _bodies() -> list[bytes]:
    out = []
    for p in SAMPLES:
        for r in dtls.parse_records(p):
            if isinstance(r, dtls.Record) and r.epoch == 0 and r.content_type == dtls.HANDSHAKE:
                out += [f.body for f in dtls.parse_handshake(r.fragment)]
    return out


BODIES = _bodies()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES + BODIES), st.integers(min_value=0), st.binary(max_size=64),
       st.integers(min_value=0, max_value=len(_READERS) - 1))
def test_any_prefix_plus_garbage_gives_value_or_documented_error(sample, cut, tail, which):
    data = sample[:cut % (len(sample) + 1)] + tail
    try:
        value = _READERS[which](data)
    except ParseError as exc:
        assert isinstance(exc, (Truncated, Malformed))
        return
    # ext_server_name returns None by contract when the list holds no host_name (e.g. the
    # empty extension a server echoes, RFC 6066); every other reader returns a value
    assert value is not None or _READERS[which] is dtls.ext_server_name
    assert dtls.looks_like_dtls(data) in (True, False)
