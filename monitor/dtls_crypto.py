"""DTLS 1.0/1.2 key schedule and record protection, for decryption by a passive observer.

PRF (RFC 2246 §5 for DTLS 1.0, RFC 5246 §5 for DTLS 1.2), RFC 4279 PSK premaster, RFC 7627
extended master secret, key expansion, Finished verify_data, and one `RecordDecryptor` per
direction and epoch: AEAD (AES-CCM/CCM_8/GCM, ChaCha20-Poly1305) or CBC/NULL with HMAC,
MAC-then-encrypt or encrypt-then-MAC (RFC 7366), with RFC 9146 Connection ID AAD.
Every record's tag/MAC is checked: a record that does not authenticate yields None, never bytes.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from parsers.dtls import DTLS12, TLS12_CID, Record
from parsers.tls_suites import Suite

_hashlib: ModuleType | None
try:                                     # the C HMAC object that `hmac.new` wraps, as `hmac` imports it
    import _hashlib
except ImportError:                      # an interpreter without OpenSSL
    _hashlib = None

# MAC/AAD prefix of a record without CID: epoch, 48-bit sequence number, type, version, length
_AAD = struct.Struct("!HHIBHH")


def _keyed_hmac(key: bytes, name: str) -> Any:
    """An HMAC keyed once, to `copy()` per message: a one-shot `hmac.digest` looks the hash up and
    sets the key up each time, half its cost. OpenSSL's object where there is one: `hmac.new`'s
    Python layer around it costs, compiled, what the copy saves."""
    if _hashlib is not None:
        return _hashlib.hmac_new(key, digestmod=name)
    return hmac.new(key, digestmod=name)


def _p_hash(name: str, secret: bytes, seed: bytes, n: int) -> bytes:
    keyed = _keyed_hmac(secret, name)    # a PRF runs four times per handshake
    out, a = bytearray(), seed
    while len(out) < n:
        h = keyed.copy()
        h.update(a)
        a = h.digest()
        h = keyed.copy()
        h.update(a)
        h.update(seed)
        out += h.digest()
    return bytes(out[:n])


def prf(version: int, hash_name: str, secret: bytes, label: bytes, seed: bytes, n: int) -> bytes:
    """TLS 1.2 PRF with the suite's hash; DTLS 1.0 uses the TLS 1.0/1.1 MD5 xor SHA-1 PRF."""
    if version == DTLS12:
        return _p_hash(hash_name, secret, label + seed, n)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, n)
    sha = _p_hash("sha1", secret[len(secret) - half:], label + seed, n)
    return bytes(x ^ y for x, y in zip(md5, sha))


def transcript_hash(version: int, hash_name: str, messages: list[bytes]) -> bytes:
    if version == DTLS12:
        h = hashlib.new(hash_name)
        for m in messages:
            h.update(m)
        return h.digest()
    md5, sha = hashlib.md5(), hashlib.sha1()
    for m in messages:
        md5.update(m)
        sha.update(m)
    return md5.digest() + sha.digest()


def psk_premaster(psk: bytes, other_secret: bytes | None = None) -> bytes:
    """RFC 4279 §2: other_secret (zeros of len(psk) for plain PSK) and psk, each length-prefixed."""
    other = bytes(len(psk)) if other_secret is None else other_secret
    return len(other).to_bytes(2, "big") + other + len(psk).to_bytes(2, "big") + psk


def master_secret(version: int, hash_name: str, premaster: bytes, client_random: bytes,
                  server_random: bytes, session_hash: bytes | None = None) -> bytes:
    """RFC 5246 §8.1, or RFC 7627 §4 when `session_hash` is given (extended master secret)."""
    if session_hash is not None:
        return prf(version, hash_name, premaster, b"extended master secret", session_hash, 48)
    return prf(version, hash_name, premaster, b"master secret", client_random + server_random, 48)


def verify_data(version: int, hash_name: str, master: bytes, from_client: bool,
                handshake_hash: bytes) -> bytes:
    label = b"client finished" if from_client else b"server finished"
    return prf(version, hash_name, master, label, handshake_hash, 12)


@dataclass(frozen=True)
class KeyBlock:
    client_mac: bytes = field(repr=False)
    server_mac: bytes = field(repr=False)
    client_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    client_iv: bytes = field(repr=False)
    server_iv: bytes = field(repr=False)


def key_block(version: int, suite: Suite, master: bytes, client_random: bytes,
              server_random: bytes) -> KeyBlock:
    mac, key, iv = suite.mac_len, suite.key_len, suite.fixed_iv_len
    kb = prf(version, suite.prf, master, b"key expansion", server_random + client_random,
             2 * (mac + key + iv))
    parts, pos = [], 0
    for n in (mac, mac, key, key, iv, iv):
        parts.append(kb[pos:pos + n])
        pos += n
    return KeyBlock(*parts)


def can_decrypt(suite: Suite) -> bool:
    if suite.kx in ("tls13", "scsv"):
        return False
    if suite.mode in ("CCM", "CCM_8", "GCM"):
        return suite.cipher in ("AES_128", "AES_256")
    if suite.mode == "CBC":
        return suite.cipher in ("AES_128", "AES_256") and suite.mac in ("sha1", "sha256", "sha384")
    if suite.mode == "NULL":
        return suite.mac in ("sha1", "sha256", "sha384")      # NULL_WITH_NULL_NULL has no MAC
    return suite.mode == "CHACHA20_POLY1305"


class RecordDecryptor:
    """Opens the records of one direction and epoch. `open` returns (content_type, plaintext)
    or None when the record does not authenticate (wrong key, corruption, forgery)."""

    def __init__(self, suite: Suite, version: int, key: bytes, iv: bytes, mac_key: bytes,
                 *, encrypt_then_mac: bool = False, cid_draft: bool = False) -> None:
        self.suite, self.version = suite, version
        self._iv = iv
        self._etm = encrypt_then_mac
        self._cid_draft = cid_draft
        mode = suite.mode
        self._aead: AESGCM | AESCCM | ChaCha20Poly1305 | None
        if mode == "GCM":
            self._aead = AESGCM(key)
        elif mode in ("CCM", "CCM_8"):
            self._aead = AESCCM(key, tag_length=suite.tag_len)
        elif mode == "CHACHA20_POLY1305":
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = None
        self._key = key
        # CBC through one ECB decryptor kept for the session (block i = D(C_i) xor C_i-1): a CBC
        # context per record (its IV) cost 8.6 us of cryptography's set-up against 1 us
        self._ecb: Any = (Cipher(algorithms.AES(key), modes.ECB()).decryptor()
                          if mode == "CBC" and len(key) in (16, 32) else None)
        # the record MAC's HMAC keyed once, copied per record (0.75 against 1.6 us one-shot)
        self._keyed_mac: Any = _keyed_hmac(mac_key, suite.mac) if suite.mac else None

    def _header(self, rec: Record, length: int) -> bytes:
        """MAC/AAD prefix: RFC 6347 §4.1.2.1, or RFC 9146 §5 for CID records."""
        if rec.content_type != TLS12_CID:       # one pack: this runs for every record
            return _AAD.pack(rec.epoch, rec.seq >> 32, rec.seq & 0xFFFFFFFF, rec.content_type,
                             rec.version, length)
        seq = rec.epoch.to_bytes(2, "big") + rec.seq.to_bytes(6, "big")
        ver = rec.version.to_bytes(2, "big")
        n = length.to_bytes(2, "big")
        cid_len = bytes([len(rec.cid)])
        if self._cid_draft:   # draft-ietf-tls-dtls-connection-id-05 (mbed TLS ext 254)
            return seq + bytes([TLS12_CID]) + ver + rec.cid + cid_len + n
        return b"\xff" * 8 + bytes([TLS12_CID]) + cid_len + bytes([TLS12_CID]) + ver + seq + rec.cid + n

    def open(self, rec: Record) -> tuple[int, bytes] | None:
        plain = self._open_aead(rec) if self._aead is not None else self._open_mac(rec)
        if plain is None:
            return None
        if rec.content_type != TLS12_CID:
            return rec.content_type, plain
        # DTLSInnerPlaintext: content || real type || zero padding.
        end = len(plain)
        while end and plain[end - 1] == 0:
            end -= 1
        if end == 0:
            return None
        return plain[end - 1], plain[:end - 1]

    def _open_aead(self, rec: Record) -> bytes | None:
        frag, s = rec.fragment, self.suite
        overhead = s.record_iv_len + s.tag_len
        if len(frag) < overhead:
            return None
        if s.mode == "CHACHA20_POLY1305":
            seq = (rec.epoch << 48) | rec.seq
            nonce = bytes(a ^ b for a, b in zip(self._iv, seq.to_bytes(12, "big")))
            body = frag
        else:
            nonce = self._iv + frag[:8]
            body = frag[8:]
        aad = self._header(rec, len(body) - s.tag_len)
        aead = self._aead
        if aead is None:                   # not an AEAD suite: _open_mac's records, never here
            return None
        try:
            return aead.decrypt(nonce, body, aad)
        except InvalidTag:
            return None

    def _open_mac(self, rec: Record) -> bytes | None:
        s, frag = self.suite, rec.fragment
        mac_len, bs = s.mac_len, s.block_size
        if s.mode == "NULL":
            if len(frag) < mac_len:
                return None
            content, tag = frag[:len(frag) - mac_len], frag[len(frag) - mac_len:]
            return content if self._mac_ok(rec, content, tag) else None
        if self._etm:
            if len(frag) < bs + mac_len or (len(frag) - mac_len) % bs:
                return None
            ivct, tag = frag[:len(frag) - mac_len], frag[len(frag) - mac_len:]
            if not self._mac_ok(rec, ivct, tag):
                return None
            padded = self._cbc(ivct[:bs], ivct[bs:])
            pad = padded[-1]
            if pad + 1 > len(padded) or any(b != pad for b in padded[len(padded) - pad - 1:]):
                return None
            return padded[:len(padded) - pad - 1]
        if len(frag) < bs + max(bs, mac_len + 1) or len(frag) % bs:
            return None
        padded = self._cbc(frag[:bs], frag[bs:])
        pad = padded[-1]
        if pad + 1 + mac_len > len(padded) or any(b != pad for b in padded[len(padded) - pad - 1:]):
            return None
        body = padded[:len(padded) - pad - 1]
        content, tag = body[:len(body) - mac_len], body[len(body) - mac_len:]
        return content if self._mac_ok(rec, content, tag) else None

    def _cbc(self, iv: bytes, ct: bytes) -> bytes:
        ecb = self._ecb
        if ecb is None or len(ct) % 16:    # whole blocks only: the ECB context must keep no tail
            d = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
            return d.update(ct) + d.finalize()
        n = len(ct)
        blocks = ecb.update(ct)
        return (int.from_bytes(blocks, "big") ^ int.from_bytes(iv + ct[:n - 16], "big")).to_bytes(n, "big")

    def _mac_ok(self, rec: Record, data: bytes, tag: bytes) -> bool:
        keyed = self._keyed_mac
        if keyed is None:                  # a suite without a MAC: never authenticates
            return False
        h = keyed.copy()
        h.update(self._header(rec, len(data)))
        h.update(data)
        return hmac.compare_digest(h.digest(), tag)
