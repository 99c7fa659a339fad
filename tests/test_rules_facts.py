"""Fact fields for the rules (monitor/rule_facts.py) against the IANA suite table of parsers/tls_suites."""
from __future__ import annotations

import pytest

from monitor.rule_facts import FactSettings, enrich, suite_weaknesses
from parsers.tls_suites import SUITES


@pytest.mark.parametrize("name,etm,version,want", [
    ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", False, "1.2", ["export", "rc4", "md5-mac"]),
    ("TLS_DH_anon_WITH_AES_128_CBC_SHA", True, "1.2", ["anonymous"]),
    ("TLS_DH_anon_WITH_AES_128_CBC_SHA", False, "1.2", ["anonymous", "cbc-mac-then-encrypt"]),
    ("TLS_PSK_WITH_NULL_SHA256", False, "1.2", ["null-cipher"]),
    ("TLS_PSK_WITH_3DES_EDE_CBC_SHA", True, "1.2", ["3des"]),
    ("TLS_RSA_WITH_DES_CBC_SHA", True, "1.2", ["des"]),
    ("TLS_PSK_WITH_AES_128_CBC_SHA", True, "1.0", ["dtls-1.0"]),
    ("TLS_PSK_WITH_AES_128_CCM_8", None, "1.2", []),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", None, "1.2", []),
    ("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", False, "1.2", []),
])
def test_suite_weaknesses(name, etm, version, want):
    assert suite_weaknesses(name, version, etm) == want


def test_every_suite_the_dtls_table_calls_weak_has_a_named_weakness():
    weak = [s for s in SUITES.values() if s.is_weak]
    assert len(weak) > 40
    for s in weak:
        assert suite_weaknesses(s.name, "1.2", True), s.name
    # and AEAD suites without anonymous/export key exchange never do
    for s in SUITES.values():
        if s.aead and not s.is_weak:
            assert suite_weaknesses(s.name, "1.2", False) == [], s.name


def _hs(**tls):
    return {"@timestamp": "2026-11-23T10:00:00.000000Z", "event": {"dataset": "dtls.handshake", "kind": "event"},
            "tls": {"version": "1.2", **tls}, "dtls": {"mode": "x509"}}


def test_key_facts_from_certificates_and_time_of_the_packet():
    doc = _hs(server={"x509": {"public_key_algorithm": "RSA", "public_key_size": 2048, "signature_algorithm": "md5",
                               "not_before": "2026-11-24T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"}},
              client={"x509": {"public_key_algorithm": "EC", "public_key_size": 224, "signature_algorithm": "sha256",
                               "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-11-23T09:59:59Z"}})
    enrich(doc, FactSettings())
    assert doc["dtls"]["key"] == {"weak": True, "weaknesses": ["server-cert-signed-md5", "server-cert-not-yet-valid",
                                                               "client-cert-ec-224", "client-cert-expired"]}
    ok = _hs(server={"x509": {"public_key_algorithm": "EC", "public_key_size": 256, "signature_algorithm": "sha256",
                              "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"}})
    enrich(ok, FactSettings())
    assert ok["dtls"]["key"] == {"weak": False}
    psk = _hs(cipher="TLS_PSK_WITH_AES_128_CCM_8")
    psk["dtls"]["mode"] = "psk"
    enrich(psk, FactSettings())
    assert "key" not in psk["dtls"] and psk["dtls"]["cipher"] == {"weak": False}


def test_offered_sha1_and_endpoint_facts():
    doc = _hs(cipher="TLS_PSK_WITH_AES_128_CCM_8")
    doc["dtls"]["client"] = {"cipher_suites": ["TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_128_CBC_SHA"]}
    enrich(doc, FactSettings())
    assert doc["dtls"]["cipher"]["offered_sha1"] is True
    op = {"event": {"dataset": "lwm2m.operation"},
          "lwm2m": {"endpoint": "ep-1", "identity": {"value": "id-9", "type": "psk", "matches_endpoint": False}}}
    enrich(op, FactSettings())
    assert "endpoint_allowed" not in op["lwm2m"]                 # no allowlist: no fact
    enrich(op, FactSettings(endpoint_allowlist=frozenset({"ep-2"}), identity_map={"id-9": "ep-1"}))
    assert op["lwm2m"]["endpoint_allowed"] is False and op["lwm2m"]["identity"]["matches_endpoint"] is True
