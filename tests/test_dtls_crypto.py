"""monitor/dtls_crypto.py against published vectors, against OpenSSL's independent TLS1-PRF
implementation (`openssl kdf`), and against records of a real GnuTLS capture."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305

from monitor import dtls_crypto as c
from monitor.capture import CaptureStats, read_files
from parsers import dtls
from parsers.dtls import DTLS10, DTLS12
from parsers.tls_suites import suite

h = bytes.fromhex
CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
WS_PCAP = os.path.join(CORPUS, "wireshark", "dtls12-aes128ccm8.DERIVED-from-dsb.pcap")
# MANIFEST.md §1: the keylog line Wireshark's DSB block carries for this capture
WS_MASTER = h("7057f3d706cf0680a40e4f2e0747ce78ce98da2622eb9a9543f7f15463744157"
              "256a796db50bbe65cdbdc292a09335b4")
WS_PSK = h("ca19e028a8a372ad2d325f950fcaceed")


def test_prf_sha256_published_vector():
    # The TLS 1.2 PRF vector posted to the IETF TLS WG list (msg03416), used by many stacks.
    out = c.prf(DTLS12, "sha256", h("9bbe436ba940f017b17652849a71db35"), b"test label",
                h("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out == h("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
                    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
                    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
                    "87347b66")


def test_prf_sha384_published_vector():
    out = c.prf(DTLS12, "sha384", h("b80b733d6ceefcdc71566ea48e5567df"), b"test label",
                h("cd665cf6a8447dd6ff8b27555edb7465"), 48)
    assert out == h("7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
                    "e9ca0faa60be9fe34f82b1233c9146a0")


def _openssl_prf(digest: str, secret: bytes, label: bytes, seed: bytes, n: int) -> bytes:
    out = subprocess.run(["openssl", "kdf", "-binary", "-keylen", str(n), "-kdfopt", f"digest:{digest}",
                          "-kdfopt", f"hexsecret:{secret.hex()}", "-kdfopt", f"hexseed:{(label + seed).hex()}",
                          "TLS1-PRF"], capture_output=True, check=True, timeout=30)
    return out.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
@pytest.mark.parametrize("version,hash_name,digest", [(DTLS12, "sha256", "SHA2-256"),
                                                      (DTLS12, "sha384", "SHA2-384"),
                                                      (DTLS10, "sha256", "MD5-SHA1")])
def test_prf_matches_openssl(version, hash_name, digest):
    secret = bytes(range(7, 55))          # odd-length halves are the DTLS 1.0 corner case
    for n_secret in (48, 33):
        s = secret[:n_secret]
        for label in (b"master secret", b"extended master secret", b"key expansion"):
            seed = bytes(range(100, 164))
            assert c.prf(version, hash_name, s, label, seed, 104) == \
                _openssl_prf(digest, s, label, seed, 104)


def test_psk_premaster_layout_rfc4279():
    psk = h("0102030405")
    assert c.psk_premaster(psk) == h("0005") + bytes(5) + h("0005") + psk
    assert c.psk_premaster(psk, other_secret=h("aabb")) == h("0002aabb0005") + psk


def test_ems_master_uses_session_hash_not_randoms():
    pms = c.psk_premaster(WS_PSK)
    plain = c.master_secret(DTLS12, "sha256", pms, b"C" * 32, b"S" * 32)
    ems = c.master_secret(DTLS12, "sha256", pms, b"C" * 32, b"S" * 32, session_hash=b"H" * 32)
    assert ems == c.prf(DTLS12, "sha256", pms, b"extended master secret", b"H" * 32, 48)
    assert ems != plain
    assert c.master_secret(DTLS12, "sha256", pms, b"X" * 32, b"Y" * 32, session_hash=b"H" * 32) == ems


def test_ccm8_primitive_rfc3610_packet_vector_1():
    key, nonce = h("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"), h("00000003020100a0a1a2a3a4a5")
    packet = bytes(range(31))
    expected = h("588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0")
    assert AESCCM(key, tag_length=8).encrypt(nonce, packet[8:], packet[:8]) == expected


def test_chacha20_poly1305_primitive_rfc8439_2_8_2():
    key = bytes(range(0x80, 0xA0))
    nonce, aad = h("070000004041424344454647"), h("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
          b"the future, sunscreen would be it.")
    out = ChaCha20Poly1305(key).encrypt(nonce, pt, aad)
    assert out[:16] == h("d31a8d34648e60db7b86afbc53ef7ec2")
    assert out[-16:] == h("1ae10b594f09e26a7e902ecbd0600691")


def _gnutls_session():
    dgrams = list(read_files([WS_PCAP], CaptureStats()))
    recs = [dtls.parse_records(d.payload) for d in dgrams]
    ch = dtls.parse_client_hello(dtls.parse_handshake(recs[2][0].fragment)[0].body)
    sh = dtls.parse_server_hello(dtls.parse_handshake(recs[3][0].fragment)[0].body)
    return recs, ch, sh


def test_plain_psk_master_equals_the_keylog_master():
    """RFC 4279 premaster + RFC 5246 PRF from the PSK gives GnuTLS's logged master secret."""
    _, ch, sh = _gnutls_session()
    ms = c.master_secret(DTLS12, "sha256", c.psk_premaster(WS_PSK), ch.random, sh.random)
    assert ms == WS_MASTER


def test_record_decryptor_on_real_records_and_tamper():
    recs, ch, sh = _gnutls_session()
    s = suite(0xC0A8)
    kb = c.key_block(DTLS12, s, WS_MASTER, ch.random, sh.random)
    client = c.RecordDecryptor(s, DTLS12, kb.client_key, kb.client_iv, kb.client_mac)
    server = c.RecordDecryptor(s, DTLS12, kb.server_key, kb.server_iv, kb.server_mac)
    (app_from_client,) = recs[8]             # frame 9: client (54273) -> server (4433)
    (app_from_server,) = recs[9]
    assert server.open(app_from_server) == (23, b"DTLS1.2 test using GnuTLS 3.5.8\n")
    assert client.open(app_from_client) == (23, b"DTLS1.2 test using GnuTLS 3.5.8\n")
    assert client.open(app_from_server) is None          # the other direction's key
    flipped = bytearray(app_from_server.fragment)
    flipped[12] ^= 1
    forged = dtls.Record(app_from_server.content_type, app_from_server.version, app_from_server.epoch,
                         app_from_server.seq, bytes(flipped))
    assert server.open(forged) is None
    replayed_seq = dtls.Record(23, DTLS12, 1, app_from_server.seq + 1, app_from_server.fragment)
    assert server.open(replayed_seq) is None            # seq is authenticated (AAD)


def test_finished_verify_data_on_real_handshake():
    recs, _, _ = _gnutls_session()
    _, ch, sh = _gnutls_session()
    s = suite(0xC0A8)
    kb = c.key_block(DTLS12, s, WS_MASTER, ch.random, sh.random)
    client = c.RecordDecryptor(s, DTLS12, kb.client_key, kb.client_iv, kb.client_mac)
    # transcript: second ClientHello, ServerHello, ServerHelloDone, ClientKeyExchange
    msgs = []
    for i, j in ((2, 0), (3, 0), (4, 0), (5, 0)):
        for f in dtls.parse_handshake(recs[i][j].fragment):
            msgs.append(dtls.handshake_bytes(f.msg_type, f.message_seq, f.body))
    ctype, finished = client.open(recs[5][2])
    (fin,) = dtls.parse_handshake(finished)
    assert fin.msg_type == dtls.FINISHED
    assert fin.body == c.verify_data(DTLS12, "sha256", WS_MASTER, True,
                                     c.transcript_hash(DTLS12, "sha256", msgs))


def test_can_decrypt_only_what_is_implemented():
    yes = [0xC0A8, 0xC0A4, 0x00A8, 0x00A9, 0x008C, 0x00AE, 0x00AF, 0xCCAB, 0xCCAC, 0xD001, 0x00B0]
    no = [0x0000, 0x1301, 0x00FF, 0x008B, 0x008A, 0xC06A, 0xC094]   # NULL_NULL, TLS 1.3, SCSV, 3DES, RC4, ARIA, Camellia
    assert all(c.can_decrypt(suite(x)) for x in yes)
    assert not any(c.can_decrypt(suite(x)) for x in no)


def test_null_cipher_record_is_authenticated():
    s = suite(0x00B0)        # TLS_PSK_WITH_NULL_SHA256: plaintext + HMAC-SHA256
    import hmac as _hmac
    key = bytes(range(32))
    rec_hdr = (1).to_bytes(2, "big") + (5).to_bytes(6, "big") + bytes([23]) + b"\xfe\xfd" + (5).to_bytes(2, "big")
    tag = _hmac.digest(key, rec_hdr + b"hello", "sha256")     # RFC 5246 §6.2.3.1 MAC input
    dec = c.RecordDecryptor(s, DTLS12, b"", b"", key)
    assert dec.open(dtls.Record(23, DTLS12, 1, 5, b"hello" + tag)) == (23, b"hello")
    assert dec.open(dtls.Record(23, DTLS12, 1, 6, b"hello" + tag)) is None


def _cbc_record(key: bytes, mac_key: bytes, seq: int, plain: bytes, mac: str = "sha256") -> dtls.Record:
    """A MAC-then-encrypt AES-CBC record (RFC 5246 §6.2.3.2), sealed with cryptography's CBC mode."""
    import hmac as _hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    hdr = (1).to_bytes(2, "big") + seq.to_bytes(6, "big") + bytes([23]) + b"\xfe\xfd" + len(plain).to_bytes(2, "big")
    body = plain + _hmac.digest(mac_key, hdr + plain, mac)
    pad = 15 - len(body) % 16
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return dtls.Record(23, DTLS12, 1, seq, iv + enc.update(body + bytes([pad]) * (pad + 1)) + enc.finalize())


@pytest.mark.parametrize("code, key_len", [(0x00AE, 16), (0x00AF, 32)])   # AES-128-CBC-SHA256, AES-256-CBC-SHA384
def test_cbc_records_in_sequence_through_one_decryptor(code, key_len):
    """The decryptor keeps one ECB context for the session and chains the blocks itself: many
    records of every length, forged and misaligned ones among them, each give exactly the
    plaintext a fresh CBC context gives, and a bad record leaves nothing behind for the next."""
    s = suite(code)
    key, mac_key = os.urandom(key_len), os.urandom(s.mac_len)
    dec = c.RecordDecryptor(s, DTLS12, key, b"", mac_key)
    for seq in range(1, 120):
        plain = os.urandom(seq % 70)
        rec = _cbc_record(key, mac_key, seq, plain, s.mac)
        if seq % 7 == 0:                          # cut mid-block: rejected, and the context stays clean
            assert dec.open(dtls.Record(23, DTLS12, 1, seq, rec.fragment[:-5])) is None
        if seq % 11 == 0:                         # one flipped ciphertext bit: the MAC fails
            bad = bytearray(rec.fragment)
            bad[20] ^= 0x40
            assert dec.open(dtls.Record(23, DTLS12, 1, seq, bytes(bad))) is None
        assert dec.open(rec) == (23, plain)
    other = c.RecordDecryptor(s, DTLS12, os.urandom(key_len), b"", mac_key)
    assert other.open(_cbc_record(key, mac_key, 500, b"coap")) is None      # a wrong key: no garbage


def test_without_openssl_hmac_objects_the_fallback_gives_the_same(monkeypatch):
    """The PRF and the record MAC key OpenSSL's HMAC object once and copy it; an interpreter
    without `_hashlib` keys `hmac.new`'s object instead, with the same results."""
    import hmac as _hmac

    s = suite(0x00AE)
    key, mac_key = os.urandom(16), os.urandom(32)
    rec = _cbc_record(key, mac_key, 9, b"</3/0>")
    secret, seed = os.urandom(48), os.urandom(64)
    fast = [c.prf(DTLS12, "sha256", secret, b"key expansion", seed, n) for n in (12, 40, 48, 96)]
    assert c.RecordDecryptor(s, DTLS12, key, b"", mac_key).open(rec) == (23, b"</3/0>")
    monkeypatch.setattr(c, "_hashlib", None)
    assert [c.prf(DTLS12, "sha256", secret, b"key expansion", seed, n) for n in (12, 40, 48, 96)] == fast
    slow = c.RecordDecryptor(s, DTLS12, key, b"", mac_key)
    assert isinstance(slow._keyed_mac, _hmac.HMAC)              # the fallback was taken
    assert slow.open(rec) == (23, b"</3/0>")
    assert slow.open(_cbc_record(key, os.urandom(32), 10, b"x")) is None     # a wrong MAC key
