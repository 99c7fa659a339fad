"""DtlsTracker behaviour on real captures replayed with the disturbances a network causes:
retransmitted and duplicated datagrams, a client changing address (RFC 9146 CID), sessions
picked up mid-way, bounded tables, DTLS 1.3 records, truncated datagrams."""
from __future__ import annotations

import json
import os

import pytest

from monitor.capture import CaptureStats, read_files
from monitor.dtls_tracker import DtlsTracker
from monitor.keys import KeyStore, Psk, load

HERE = os.path.dirname(__file__)
CORPUS = os.path.join(HERE, "..", "..", "shared", "corpus")
WS_PCAP = os.path.join(CORPUS, "wireshark", "dtls12-aes128ccm8.DERIVED-from-dsb.pcap")
CID_PCAP = os.path.join(HERE, "..", "pcaps", "leshan-psk-cid.pcap")


def ws_keys() -> KeyStore:
    return KeyStore(psks={b"test": Psk(b"test", bytes.fromhex("ca19e028a8a372ad2d325f950fcaceed"))})


WS = list(read_files([WS_PCAP], CaptureStats()))


def feed_all(tracker, dgrams):
    plain, docs, anomalies = [], [], []
    for d in dgrams:
        r = tracker.feed(d)
        plain += r.plaintexts
        docs += r.documents
        anomalies += r.anomalies
    return plain, docs + tracker.close(), anomalies


def test_retransmitted_flight_counted_once():
    # the client resends its cookie ClientHello and its CKE/CCS/Finished flight (same bytes)
    dgrams = WS[:3] + [WS[2]] + WS[3:6] + [WS[5]] + WS[6:]
    t = DtlsTracker(ws_keys())
    plain, docs, _ = feed_all(t, dgrams)
    (hs,) = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    assert hs["dtls"]["history"] == "CvCsnGFf"
    # ClientHello and ClientKeyExchange are retransmissions; the identical epoch-1 Finished
    # record (same sequence number) is a duplicated datagram, caught by the replay window
    assert hs["dtls"]["retransmissions"] == 2 and t.stats["retransmissions"] == 2
    assert t.stats["duplicates"] == 1
    assert hs["dtls"]["finished_verified"] is True
    assert len(plain) == 4


def test_duplicated_application_datagram_reported_once():
    dgrams = WS[:9] + [WS[8]] + WS[9:]
    t = DtlsTracker(ws_keys())
    plain, _, anomalies = feed_all(t, dgrams)
    assert len(plain) == 4 and t.stats["duplicates"] == 1
    assert anomalies.count("dtls.duplicate_record") == 1


def test_mid_session_capture():
    t = DtlsTracker(ws_keys())
    plain, docs, _ = feed_all(t, WS[8:])
    assert plain == []
    (hs,) = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    assert hs["event"]["outcome"] == "unknown" and hs["dtls"]["mid_session"] is True
    assert hs["client"]["port"] == 54273 and hs["server"]["port"] == 4433
    assert hs["dtls"]["decrypt_error"].startswith("handshake not seen")


def test_unfinished_handshake_emitted_at_close_and_on_eviction():
    t = DtlsTracker(ws_keys(), max_sessions=1)
    for d in WS[:3]:
        t.feed(d)
    other = WS[0]._replace(src_port=40000, frame=100)
    res = t.feed(other)
    (evicted,) = res.documents
    assert evicted["event"]["outcome"] == "unknown" and evicted["dtls"]["history"] == "CvC"
    assert t.stats["evictions"] == 1 and "dtls.session_evicted" in res.anomalies
    (left,) = t.close()
    assert left["client"]["port"] == 40000 and left["event"]["outcome"] == "unknown"


def test_documents_are_deterministic_and_session_fields():
    runs = []
    for _ in range(2):
        t = DtlsTracker(ws_keys())
        _, docs, _ = feed_all(t, WS)
        runs.append(json.dumps(docs, sort_keys=True))
    assert runs[0] == runs[1]
    t = DtlsTracker(ws_keys())
    res = [t.feed(d) for d in WS][9]
    fields = res.session.lwm2m_fields()
    assert fields["tls"] == {"version": "1.2", "version_protocol": "dtls",
                             "cipher": "TLS_PSK_WITH_AES_128_CCM_8", "established": True, "resumed": False}
    assert fields["dtls"]["psk_identity"] == "test" and fields["dtls"]["decrypted"] is True
    assert fields["dtls"]["key_source"] == "keys-file" and fields["dtls"]["mode"] == "psk"
    assert fields["lwm2m"] == {"identity": {"value": "test", "type": "psk"}}
    assert res.session.client == ("127.0.0.1", 54273)


def test_truncated_and_dtls13_datagrams_are_named_not_fatal():
    t = DtlsTracker(ws_keys())
    cut = WS[2]._replace(payload=WS[2].payload[:40])
    assert "dtls.record_truncated" in t.feed(cut).anomalies
    unified = WS[8]._replace(payload=bytes([0b00101100]) + b"\x00\x07\x00\x03abc")
    assert "dtls.dtls13_record" in t.feed(unified).anomalies
    plain, _, _ = feed_all(t, WS)
    assert len(plain) == 4 and t.stats["truncated"] == 1 and t.stats["dtls13_records"] == 1


@pytest.mark.skipif(not os.path.exists(CID_PCAP), reason="leshan-psk-cid.pcap not present")
def test_cid_session_survives_client_address_change():
    keys = load(CID_PCAP[:-5] + ".keys.yaml")
    dgrams = list(read_files([CID_PCAP], CaptureStats()))
    client_port = dgrams[0].src_port
    moved = []
    for d in dgrams:
        if d.frame > 8:        # after registration the client's NAT binding changes
            if d.src_port == client_port:
                d = d._replace(src_ip="10.9.8.7", src_port=61000)
            elif d.dst_port == client_port:
                d = d._replace(dst_ip="10.9.8.7", dst_port=61000)
        moved.append(d)
    t = DtlsTracker(keys)
    plain, docs, anomalies = feed_all(t, moved)
    assert len(plain) == 28 and t.stats["failed_mac"] == 0
    assert t.stats["sessions"] == 1 and t.stats["cid_address_changes"] == 1
    assert [d["event"]["dataset"] for d in docs].count("dtls.handshake") == 1


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_GOOD = {b"DTLS1.2 test using GnuTLS 3.5.8\n", b"Works for me!\n"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(WS) - 1), st.integers(min_value=0),
       st.integers(min_value=1, max_value=255), st.booleans())
def test_corrupted_datagram_never_crashes_nor_yields_garbage(which, pos, xor, truncate):
    """Flip a byte (or cut) anywhere in one datagram of a real session: the tracker must carry
    on, and every plaintext it emits must be one the peers really sent."""
    victim = WS[which].payload
    if truncate:
        payload = victim[:pos % len(victim)]
    else:
        i = pos % len(victim)
        payload = victim[:i] + bytes([victim[i] ^ xor]) + victim[i + 1:]
    dgrams = list(WS)
    dgrams[which] = WS[which]._replace(payload=payload)
    t = DtlsTracker(ws_keys())
    plain, docs, _ = feed_all(t, dgrams)
    assert set(plain) <= _GOOD
    assert all(d["event"]["dataset"] in ("dtls.handshake", "dtls.alert") for d in docs)


ECDSA_PCAP = os.path.join(HERE, "..", "pcaps", "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.pcap")


@pytest.mark.skipif(not os.path.exists(ECDSA_PCAP), reason="mbedtls certificate capture not present")
def test_raw_public_key_certificate_message():
    """RFC 7250: the Certificate message carries one SubjectPublicKeyInfo. Built from the
    real server key of the mbed TLS certificate capture (no RPK peer capture exists yet)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from monitor.dtls_certs import rpk_facts
    from parsers import dtls

    der = None
    for d in read_files([ECDSA_PCAP], CaptureStats()):
        for r in dtls.parse_records(d.payload):
            if r.epoch == 0 and r.content_type == dtls.HANDSHAKE:
                for f in dtls.parse_handshake(r.fragment):
                    if f.msg_type == dtls.CERTIFICATE and f.whole:
                        der = der or next(iter(dtls.parse_certificate(f.body)), None)  # client's is empty
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    (got,) = dtls.parse_certificate(len(spki).to_bytes(3, "big") + spki, raw_public_key=True)
    facts = rpk_facts(got)
    assert facts["sha256"] == hashlib.sha256(spki).hexdigest()
    assert (facts["public_key_algorithm"], facts["public_key_size"]) == ("EC", 256)


def test_replay_window_follows_rfc6347():
    """RFC 6347 §4.1.2.6: a 64-record sliding window; anything older than it is not judged."""
    from monitor.dtls_tracker import _ReplayWindow
    w = _ReplayWindow(100)
    assert w.seen(100) is True                     # the first record again
    assert w.seen(98) is False and w.seen(98) is True   # late but new, then its duplicate
    assert w.seen(101) is False and w.seen(163) is False
    assert w.seen(100) is True                     # 63 back from 163: inside the window
    assert w.seen(99) is False and w.seen(99) is False   # 64 back: outside, never judged
    assert w.seen(1000) is False and w.seen(163) is False   # a jump past the window forgets it
    assert w.seen(1000) is True


def test_stats_is_a_snapshot_with_per_record_counters():
    t = DtlsTracker(ws_keys())
    plain, _, _ = feed_all(t, WS)
    st = t.stats
    assert st["datagrams"] == len(WS) and st["decrypted"] == 7   # 4 + Finished x2 + alert
    assert st["records"] >= st["decrypted"] and list(st)[:3] == ["datagrams", "records", "decrypted"]
    st["datagrams"] = -1                           # a copy: the tracker's counters are its own
    assert t.stats["datagrams"] == len(WS)
