"""DTLS decryption on the real-peer captures in pcaps/ (python-mbedtls, OpenSSL CLI, Leshan;
see pcaps/README.md), each cross-checked against tshark decoding the same file with the same keys."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest
import yaml

from monitor.capture import CaptureStats, read_files
from monitor.dtls_tracker import DtlsTracker
from monitor.keys import load
from parsers import coap
from parsers.dtls import looks_like_dtls

PCAPS = os.path.join(os.path.dirname(__file__), "..", "pcaps")
CAPTURES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(PCAPS, "dtls-*.pcap"))
                  if os.path.exists(p[:-5] + ".keys.yaml"))
CAPTURES += [n for n in ("leshan-psk-ccm8", "leshan-psk-cid")
             if os.path.exists(os.path.join(PCAPS, n + ".pcap"))]
# made by pcaps/make_dtls_cbc_mte_captures.py: text lines, not CoAP, on port 5685
TEXT_CAPTURES = {"dtls-openssl-dtls10-psk-aes128-cbc-sha", "dtls-openssl-psk-aes256-cbc-sha384-mte",
                 "dtls-openssl-ticket-resumption"}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def path(name: str, ext: str = ".pcap") -> str:
    return os.path.join(PCAPS, name + ext)


class Run:
    def __init__(self, name: str) -> None:
        self.tracker = DtlsTracker(load(path(name, ".keys.yaml")))
        self.plaintexts: list[bytes] = []
        self.documents: list[dict] = []
        for d in read_files([path(name)], CaptureStats()):
            if looks_like_dtls(d.payload):
                res = self.tracker.feed(d)
                self.plaintexts += res.plaintexts
                self.documents += res.documents
        self.documents += self.tracker.close()
        self.handshakes = [d for d in self.documents if d["event"]["dataset"] == "dtls.handshake"]


def tshark_options(name: str) -> list[str]:
    with open(path(name, ".keys.yaml")) as fh:
        raw = yaml.safe_load(fh) or {}
    opts = []
    if raw.get("psk"):
        opts += ["-o", f"dtls.psk:{raw['psk'][0]['key']}"]
    if raw.get("keylog"):
        opts += ["-o", f"tls.keylog_file:{os.path.join(PCAPS, raw['keylog'])}"]
    return opts


def tshark(name: str, *args: str) -> str:
    cmd = ["tshark", "-n", "-r", path(name), *tshark_options(name), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


@needs_tshark
@pytest.mark.parametrize("name", CAPTURES)
def test_decrypted_records_and_coap_match_tshark(name):
    run = Run(name)
    tshark_count = tshark(name, "-x").count("Decrypted DTLS")
    if tshark_count == 0 and "chacha20" in name:
        # tshark 4.0 does not decrypt DTLS ChaCha20-Poly1305 (pcaps/README.md says so too);
        # there the proof is the verified Finished (test_good_keys...) and the LwM2M content.
        register = coap.parse(run.plaintexts[0])
        assert register.code == coap.POST and register.uri_path == ("rd",)
        assert any(q.startswith("ep=") for q in register.uri_query)
        pytest.skip("tshark cannot decrypt DTLS ChaCha20-Poly1305: counts not comparable")
    assert tshark_count == run.tracker.stats["decrypted"]
    if name in TEXT_CAPTURES:
        data = tshark(name, "-T", "fields", "-e", "data.data", "-Y", "data")
        assert data.split() == [p.hex() for p in run.plaintexts]
        return
    mids = tshark(name, "-d", "udp.port==5684,dtls", "-T", "fields", "-e", "coap.mid", "-Y", "coap")
    assert [int(x) for x in mids.split()] == [coap.parse(p).mid for p in run.plaintexts]
    assert run.tracker.stats["malformed"] == run.tracker.stats["truncated"] == 0


@needs_tshark
@pytest.mark.parametrize("name", CAPTURES)
def test_handshake_facts_match_tshark(name):
    run = Run(name)
    rows = tshark(name, "-T", "fields", "-E", "separator=|", "-e", "dtls.handshake.type",
                  "-e", "dtls.handshake.ciphersuite", "-e", "dtls.handshake.extension.type",
                  "-e", "dtls.handshake.identity", "-Y", "dtls.handshake.type == 2 || dtls.handshake.type == 1 || dtls.handshake.type == 16")
    server_suites, identities, hello_ext = [], [], {1: [], 2: []}
    for row in rows.splitlines():
        types, suites, exts, ident = row.split("|")
        types = [int(t) for t in types.split(",") if t.isdigit()]
        if 2 in types:
            server_suites.append(int(suites.split(",")[0], 16))
        for t in (1, 2):
            if t in types and types[0] == t:
                hello_ext[t].append({int(e) for e in exts.split(",") if e})
        if 16 in types and ident:
            identities.append(bytes.fromhex(ident.replace(":", "")).decode())
    ours = [int(d["dtls"]["cipher"]["code"], 16) for d in run.handshakes]
    assert ours == server_suites
    # tshark 4.0 dissects the identity of plain-PSK ClientKeyExchanges only (not ECDHE_PSK)
    assert [d["dtls"]["psk_identity"] for d in run.handshakes
            if d["dtls"]["cipher"]["key_exchange"] == "psk" and "psk_identity" in d["dtls"]] == identities
    # extended master secret negotiated = extension 23 in the last ClientHello and the ServerHello
    ems = [23 in sh and 23 in hello_ext[1][-1] for sh in hello_ext[2]]
    assert [d["dtls"]["extended_master_secret"] for d in run.handshakes] == ems


@pytest.mark.parametrize("name", [n for n in CAPTURES
                                  if "wrong" not in n and "unknown" not in n])
def test_good_keys_decrypt_and_finished_verifies(name):
    run = Run(name)
    assert run.handshakes
    for hs in run.handshakes:
        assert hs["event"]["outcome"] == "success" and hs["tls"]["established"] is True
        assert hs["dtls"]["decrypted"] is True and hs["dtls"]["finished_verified"] is True
    assert run.tracker.stats["failed_mac"] == 0
    assert run.plaintexts
    if name not in TEXT_CAPTURES:
        assert all(coap.parse(p) for p in run.plaintexts)


def _only(name):
    return pytest.mark.skipif(name not in CAPTURES, reason=f"{name} not captured yet")


@_only("dtls-mbedtls-wrong-psk")
def test_wrong_psk_capture():
    run = Run("dtls-mbedtls-wrong-psk")
    (hs,) = run.handshakes
    assert run.plaintexts == [] and hs["dtls"]["decrypted"] is False
    assert hs["event"]["outcome"] == "failure"
    assert "wrong key" in hs["dtls"]["decrypt_error"]
    alerts = [d["dtls"]["alert"] for d in run.documents if d["event"]["dataset"] == "dtls.alert"]
    assert {"from": "server", "encrypted": False, "level": "fatal", "description": "bad_record_mac",
            "code": 20} in alerts


@_only("dtls-mbedtls-unknown-identity")
def test_unknown_identity_capture():
    run = Run("dtls-mbedtls-unknown-identity")
    (hs,) = run.handshakes
    assert hs["dtls"]["psk_identity"] == "stranger-01"
    assert hs["dtls"]["decrypt_error"] == "no PSK for this identity"
    assert hs["event"]["outcome"] == "failure" and hs["lwm2m"]["identity"]["type"] == "psk"


@_only("dtls-openssl-resumption")
def test_resumption_reuses_master_secret():
    run = Run("dtls-openssl-resumption")
    full, resumed = run.handshakes
    assert full["event"]["action"] == "handshake" and full["tls"]["resumed"] is False
    assert resumed["event"]["action"] == "resumption" and resumed["tls"]["resumed"] is True
    assert resumed["dtls"]["decrypted"] is True and resumed["dtls"]["finished_verified"] is True
    assert resumed["dtls"]["history"].replace("Cv", "", 1) == "CsfF"
    assert resumed["dtls"]["client"]["session_id"] == full["dtls"]["server"]["session_id"]


@_only("dtls-openssl-no-ems")
def test_no_ems_capture():
    (hs,) = Run("dtls-openssl-no-ems").handshakes
    assert hs["dtls"]["extended_master_secret"] is False and hs["dtls"]["decrypted"] is True


@_only("dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8")
def test_certificate_facts_and_keylog():
    (hs,) = Run("dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8").handshakes
    assert hs["dtls"]["mode"] == "x509" and hs["dtls"]["key_source"] == "keylog"
    x = hs["tls"]["server"]["x509"]
    assert x["subject"]["common_name"] == ["lwm2m-server.test"]
    assert x["public_key_algorithm"] == "EC" and x["public_key_curve"] == "secp256r1"
    assert hs["tls"]["curve"]


@needs_tshark
@_only("leshan-psk-cid")
def test_connection_id_records_match_tshark():
    run = Run("leshan-psk-cid")
    (hs,) = run.handshakes
    assert hs["dtls"]["connection_id"] is True
    out = tshark("leshan-psk-cid", "-T", "fields", "-E", "separator=|", "-e", "ip.src", "-e", "udp.srcport",
                 "-e", "dtls.record.connection_id", "-Y", "dtls.record.connection_id")
    by_sender = {}
    for row in out.split():
        _, port, cid = row.split("|")
        by_sender.setdefault(int(port), set()).add(cid.split(",")[0].replace(":", ""))
    assert by_sender[hs["server"]["port"]] == {hs["dtls"]["cid"]["to_client"]}
    assert by_sender[hs["client"]["port"]] == {hs["dtls"]["cid"]["to_server"]}
    assert len(run.plaintexts) == 28


@pytest.mark.parametrize("name,version,cipher", [
    ("dtls-openssl-dtls10-psk-aes128-cbc-sha", "1.0", "TLS_PSK_WITH_AES_128_CBC_SHA"),
    ("dtls-openssl-psk-aes256-cbc-sha384-mte", "1.2", "TLS_PSK_WITH_AES_256_CBC_SHA384")])
def test_mac_then_encrypt_cbc(name, version, cipher):
    if name not in CAPTURES:
        pytest.skip(f"{name} not captured")
    run = Run(name)
    (hs,) = run.handshakes
    assert (hs["tls"]["version"], hs["tls"]["cipher"]) == (version, cipher)
    assert hs["dtls"]["encrypt_then_mac"] is False and hs["dtls"]["finished_verified"] is True
    assert run.plaintexts == [b"client line one: MAC-then-encrypt\n", b"client line two\n",
                              b"server says hello\n"]


@_only("dtls-openssl-ticket-resumption")
def test_ticket_resumption_reuses_master_secret():
    """The first session had no session id, only a NewSessionTicket: the abbreviated handshake
    can only be opened through the ticket -> master secret map."""
    run = Run("dtls-openssl-ticket-resumption")
    full, resumed = run.handshakes
    assert "session_id" not in full["dtls"]["server"] and "t" in full["dtls"]["history"]
    assert resumed["event"]["action"] == "resumption" and resumed["dtls"]["resumption"] == "ticket"
    assert resumed["dtls"]["history"] == "CvCsfF" and resumed["dtls"]["finished_verified"] is True
    assert len(run.plaintexts) == 6 and run.tracker.stats["failed_mac"] == 0
