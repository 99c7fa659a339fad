"""DTLS decryption on third-party captures (../shared/corpus, MANIFEST.md §1-3), with the counts
Wireshark reaches, and a cross-check of our numbers against tshark on the same files."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from monitor.capture import CaptureStats, read_files
from monitor.dtls_tracker import DtlsTracker
from monitor.keys import KeyStore, Psk, load
from parsers import coap
from parsers.dtls import looks_like_dtls

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
WS = os.path.join(CORPUS, "wireshark")
WS_PCAP = os.path.join(WS, "dtls12-aes128ccm8.DERIVED-from-dsb.pcap")
WS_DSB = os.path.join(WS, "dtls12-aes128ccm8-dsb.pcapng")
WS_KEYLOG = os.path.join(WS, "dtls12-aes128ccm8.keylog.EXTRACTED-from-dsb.txt")
WS_PSK = "ca19e028a8a372ad2d325f950fcaceed"
GOLIOTH = os.path.join(CORPUS, "golioth-coap-pcap")
GOLIOTH_ID = b"20230614151602-linux@blush-unexpected-fox"
BASICS = (os.path.join(GOLIOTH, "golioth_basics_psk.pcapng"),
          "3639616631363835626139303830626539303739323237323863316539376335")
OTA = (os.path.join(GOLIOTH, "golioth_ota_download.pcapng"),
       "3234363835646335663162323237366138663433303038653230633062653932")
SNAKEOIL = os.path.join(CORPUS, "wireshark-wiki", "snakeoil-dtls.pcap")

pytestmark = pytest.mark.skipif(not os.path.isdir(CORPUS), reason="shared corpus not present")


class Run:
    """Everything the tracker produced for one capture."""

    def __init__(self, paths: list[str], keys: KeyStore) -> None:
        self.tracker = DtlsTracker(keys)
        self.plaintexts: list[bytes] = []
        self.documents: list[dict] = []
        self.anomalies: list[str] = []
        for d in read_files(paths, CaptureStats()):
            if not looks_like_dtls(d.payload):
                continue
            res = self.tracker.feed(d)
            self.plaintexts += res.plaintexts
            self.documents += res.documents
            self.anomalies += res.anomalies
        self.documents += self.tracker.close()

    def docs(self, dataset: str) -> list[dict]:
        return [d for d in self.documents if d["event"]["dataset"] == dataset]


def psk_store(identity: bytes, key_hex: str) -> KeyStore:
    return KeyStore(psks={identity: Psk(identity, bytes.fromhex(key_hex))})


def tshark(pcap: str, *options: str, fields: tuple[str, ...] = (), display: str | None = None) -> str:
    args = ["tshark", "-n", "-r", pcap, *options]
    if fields:
        args += ["-T", "fields"] + [x for f in fields for x in ("-e", f)]
    else:
        args.append("-x")
    if display:
        args += ["-Y", display]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# ------------------------------------------------------------------ Wireshark GnuTLS capture

def test_wireshark_psk_ccm8_decrypts_seven_records():
    run = Run([WS_PCAP], psk_store(b"test", WS_PSK))
    st = run.tracker.stats
    assert st["records"] == 15
    assert st["decrypted"] == 7          # 2 Finished + 4 application data + close_notify
    assert st["failed_mac"] == 0
    assert run.plaintexts == [b"DTLS1.2 test using GnuTLS 3.5.8\n"] * 2 + [b"Works for me!\n"] * 2
    (hs,) = run.docs("dtls.handshake")
    assert hs["tls"]["cipher"] == "TLS_PSK_WITH_AES_128_CCM_8"
    assert hs["tls"]["version"] == "1.2" and hs["tls"]["established"] is True
    assert hs["event"]["outcome"] == "success"
    assert hs["dtls"]["psk_identity"] == "test"
    assert hs["dtls"]["history"] == "CvCsnGFf"
    assert hs["dtls"]["cookie_exchange"] is True
    assert hs["dtls"]["finished_verified"] is True     # both Finished verify_data match
    assert hs["dtls"]["decrypted"] is True and hs["dtls"]["key_source"] == "keys-file"
    (alert,) = run.docs("dtls.alert")
    assert alert["dtls"]["alert"] == {"from": "client", "encrypted": True, "level": "warning",
                                      "description": "close_notify", "code": 0}


def test_wireshark_keylog_gives_the_same(tmp_path):
    keys = tmp_path / "k.yaml"
    keys.write_text(f"keylog: {os.path.abspath(WS_KEYLOG)!r}\n")
    run = Run([WS_PCAP], load(str(keys)))
    assert run.tracker.stats["decrypted"] == 7
    assert run.plaintexts == [b"DTLS1.2 test using GnuTLS 3.5.8\n"] * 2 + [b"Works for me!\n"] * 2
    (hs,) = run.docs("dtls.handshake")
    assert hs["dtls"]["key_source"] == "keylog" and hs["dtls"]["finished_verified"] is True


def test_wireshark_dsb_secrets_block_keylog():
    """The pcapng's own Decryption Secrets Block, read by the capture reader, is enough."""
    keys = KeyStore()

    def sink(path, secrets_type, data):
        for line in data.decode("ascii").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "CLIENT_RANDOM":
                keys.keylog[bytes.fromhex(parts[1])] = bytes.fromhex(parts[2])

    tracker = DtlsTracker(keys)
    plain = []
    for d in read_files([WS_DSB], CaptureStats(), on_secrets=sink):
        if looks_like_dtls(d.payload):
            plain += tracker.feed(d).plaintexts
    assert tracker.stats["decrypted"] == 7
    assert plain.count(b"Works for me!\n") == 2


def test_wireshark_without_key_decrypts_nothing():
    run = Run([WS_PCAP], KeyStore())
    assert run.tracker.stats["decrypted"] == 0 and run.plaintexts == []
    (hs,) = run.docs("dtls.handshake")
    assert hs["dtls"]["decrypted"] is False
    assert hs["dtls"]["decrypt_error"] == "no PSK for this identity"
    assert hs["tls"]["established"] is True      # both (encrypted) Finished were seen
    (alert,) = run.docs("dtls.alert")
    assert alert["dtls"]["alert"] == {"from": "client", "encrypted": True}


def test_wireshark_wrong_psk_is_could_not_decrypt_never_garbage():
    wrong = "ca19e028a8a372ad2d325f950fcaceee"
    run = Run([WS_PCAP], psk_store(b"test", wrong))
    st = run.tracker.stats
    assert st["decrypted"] == 0 and run.plaintexts == []
    assert st["failed_mac"] == 7
    (hs,) = run.docs("dtls.handshake")
    assert hs["dtls"]["decrypted"] is False
    assert "wrong key" in hs["dtls"]["decrypt_error"]
    text = repr(run.documents) + repr(run.anomalies) + repr(st)
    assert wrong not in text and WS_PSK not in text


def test_key_harvested_after_start_is_used_lazily():
    keys = KeyStore()
    tracker = DtlsTracker(keys)
    plain, docs = [], []
    for d in read_files([WS_PCAP], CaptureStats()):
        if d.frame == 5:       # learned mid-run (as from a cleartext bootstrap), before CCS
            keys.add_harvested_psk(b"test", bytes.fromhex(WS_PSK))
        res = tracker.feed(d)
        plain += res.plaintexts
        docs += res.documents
    assert len(plain) == 4 and tracker.stats["decrypted"] == 7
    (hs,) = [doc for doc in docs if doc["event"]["dataset"] == "dtls.handshake"]
    assert hs["dtls"]["key_source"] == "harvested"


def test_harvested_key_source_is_reported():
    keys = KeyStore()
    keys.add_harvested_psk(b"test", bytes.fromhex(WS_PSK))
    run = Run([WS_PCAP], keys)
    (hs,) = run.docs("dtls.handshake")
    assert hs["dtls"]["key_source"] == "harvested"


@needs_tshark
def test_wireshark_counts_match_tshark():
    ours = Run([WS_PCAP], psk_store(b"test", WS_PSK))
    out = tshark(WS_PCAP, "-o", f"dtls.psk:{WS_PSK}")
    assert out.count("Decrypted DTLS") == ours.tracker.stats["decrypted"]
    fields = tshark(WS_PCAP, fields=("dtls.handshake.ciphersuite",), display="dtls.handshake.type == 2")
    (hs,) = ours.docs("dtls.handshake")
    assert int(fields.split()[0], 16) == int(hs["dtls"]["cipher"]["code"], 16)
    ident = tshark(WS_PCAP, fields=("dtls.handshake.identity",), display="dtls.handshake.type == 16")
    assert bytes.fromhex(ident.strip().replace(":", "")).decode() == hs["dtls"]["psk_identity"]
    records = tshark(WS_PCAP, fields=("dtls.record.content_type",))
    assert sum(len(line.split(",")) for line in records.split()) == ours.tracker.stats["records"]


# ------------------------------------------------------------------ Golioth (real cloud service)

def test_golioth_basics_gcm_all_app_data_is_coap():
    run = Run([BASICS[0]], psk_store(GOLIOTH_ID, BASICS[1]))
    st = run.tracker.stats
    assert st["records"] == 74 and st["decrypted"] == 66 and st["failed_mac"] == 0
    assert len(run.plaintexts) == 64
    messages = [coap.parse(p) for p in run.plaintexts]
    assert messages[0].mid == 43156
    (hs,) = run.docs("dtls.handshake")
    assert hs["tls"]["cipher"] == "TLS_PSK_WITH_AES_128_GCM_SHA256"
    assert hs["dtls"]["psk_identity"] == GOLIOTH_ID.decode()
    assert hs["dtls"]["finished_verified"] is True
    assert hs["dtls"]["extended_master_secret"] is True
    assert hs["tls"]["client"]["server_name"] == "coap.golioth.io"


def test_golioth_ota_ccm_block2_download_reassembles():
    run = Run([OTA[0]], psk_store(GOLIOTH_ID, OTA[1]))
    st = run.tracker.stats
    assert st["records"] == 274 and st["decrypted"] == 266 and len(run.plaintexts) == 264
    blocks: dict[int, bytes] = {}
    for p in run.plaintexts:
        m = coap.parse(p)
        if m.token == bytes.fromhex("e59e5806c97af6ff") and m.is_response and m.block2 is not None:
            blocks[m.block2.num] = m.payload
    assert sorted(blocks) == list(range(131))
    body = b"".join(blocks[n] for n in range(131))
    assert len(body) == 133165 and body[:4] == bytes.fromhex("89504e47")
    assert hashlib.sha256(body).hexdigest() == \
        "32164b721a76d0207e3b28d52987169e0bcaa9b18492d91e18a208563002fd4d"
    (hs,) = run.docs("dtls.handshake")
    assert hs["tls"]["cipher"] == "TLS_PSK_WITH_AES_128_CCM"


def test_golioth_without_key_zero_decrypted():
    for path, _ in (BASICS, OTA):
        run = Run([path], KeyStore())
        assert run.tracker.stats["decrypted"] == 0 and run.plaintexts == []


def test_two_files_one_run_other_sessions_unaffected_by_a_wrong_key():
    keys = psk_store(GOLIOTH_ID, BASICS[1])           # right for basics, wrong for OTA
    run = Run([BASICS[0], OTA[0]], keys)
    assert len(run.plaintexts) == 64
    outcomes = sorted((d["tls"]["cipher"], d["dtls"]["decrypted"]) for d in run.docs("dtls.handshake"))
    assert outcomes == [("TLS_PSK_WITH_AES_128_CCM", False), ("TLS_PSK_WITH_AES_128_GCM_SHA256", True)]


@needs_tshark
@pytest.mark.parametrize("capture", [BASICS, OTA], ids=["basics", "ota"])
def test_golioth_counts_match_tshark(capture):
    path, key = capture
    ours = Run([path], psk_store(GOLIOTH_ID, key))
    assert tshark(path, "-o", f"dtls.psk:{key}").count("Decrypted DTLS") == ours.tracker.stats["decrypted"]
    coap_frames = tshark(path, "-o", f"dtls.psk:{key}", fields=("coap.mid",), display="coap")
    assert [int(x) for x in coap_frames.split()] == [coap.parse(p).mid for p in ours.plaintexts]
    suite = tshark(path, fields=("dtls.handshake.ciphersuite",), display="dtls.handshake.type == 2")
    (hs,) = ours.docs("dtls.handshake")
    assert int(suite.split()[0], 16) == int(hs["dtls"]["cipher"]["code"], 16)


# ------------------------------------------------------------------ snakeoil: DTLS 1.0 RSA

def test_snakeoil_dtls10_rsa_is_reported_not_decryptable():
    run = Run([SNAKEOIL], psk_store(b"x", "00112233"))
    st = run.tracker.stats
    assert st["records"] == 14 and st["decrypted"] == 0 and run.plaintexts == []
    (hs,) = run.docs("dtls.handshake")
    assert hs["tls"]["version"] == "1.0"
    assert hs["tls"]["cipher"] == "TLS_RSA_WITH_AES_256_CBC_SHA"
    assert hs["dtls"]["mode"] == "x509"
    assert hs["dtls"]["decrypted"] is False
    assert "not PSK" in hs["dtls"]["decrypt_error"]
    assert hs["tls"]["server"]["x509"]["subject"]["common_name"] == ["www.snakeoil.dom"]
    assert hs["tls"]["server"]["x509"]["public_key_algorithm"] == "RSA"
    assert hs["tls"]["server"]["x509"]["public_key_size"] == 1024
    assert hs["dtls"]["history"] == "CvCsxnGFf"


@needs_tshark
def test_snakeoil_facts_match_tshark():
    run = Run([SNAKEOIL], KeyStore())
    (hs,) = run.docs("dtls.handshake")
    out = tshark(SNAKEOIL, fields=("dtls.handshake.ciphersuite", "x509sat.uTF8String",
                                   "x509sat.printableString"), display="dtls.handshake.type == 2")
    suite = out.split()[0]
    assert int(suite, 16) == int(hs["dtls"]["cipher"]["code"], 16)
    assert "www.snakeoil.dom" in out
