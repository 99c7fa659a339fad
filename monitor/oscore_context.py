"""OSCORE security contexts (RFC 8613 §3.2): key derivation, nonces (§5.2) and the COSE AEADs.

A monitor sees both directions, so one `Context` holds the keys of both endpoints: the key the
LwM2M client sends with (`client_key`, derived from client_id) and the server's (`server_key`).
`Context.open(...)` returns the plaintext or None when the tag does not verify; it never
returns unauthenticated bytes, so a wrong key cannot produce garbage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from parsers import oscore as wire

from .keys import OscoreContextConfig


@dataclass(frozen=True, slots=True)
class Aead:
    """A COSE AEAD algorithm (IANA COSE Algorithms registry) as OSCORE uses it."""

    number: int
    name: str
    key_len: int
    nonce_len: int
    tag_len: int
    family: str          # "ccm", "gcm", "chacha"


AEADS: dict[int, Aead] = {a.number: a for a in (
    Aead(10, "AES-CCM-16-64-128", 16, 13, 8, "ccm"),
    Aead(11, "AES-CCM-16-64-256", 32, 13, 8, "ccm"),
    Aead(12, "AES-CCM-64-64-128", 16, 7, 8, "ccm"),
    Aead(13, "AES-CCM-64-64-256", 32, 7, 8, "ccm"),
    Aead(30, "AES-CCM-16-128-128", 16, 13, 16, "ccm"),
    Aead(31, "AES-CCM-16-128-256", 32, 13, 16, "ccm"),
    Aead(32, "AES-CCM-64-128-128", 16, 7, 16, "ccm"),
    Aead(33, "AES-CCM-64-128-256", 32, 7, 16, "ccm"),
    Aead(1, "A128GCM", 16, 12, 16, "gcm"),
    Aead(2, "A192GCM", 24, 12, 16, "gcm"),
    Aead(3, "A256GCM", 32, 12, 16, "gcm"),
    Aead(24, "ChaCha20/Poly1305", 32, 12, 16, "chacha"),
)}

CONFIGURED = object()     # "use the ID Context of the configuration" (None means "no ID Context")

_HASHES = {"sha256": hashes.SHA256, "sha512": hashes.SHA512}


def hkdf(secret: bytes, salt: bytes, info: bytes, length: int, hash_name: str = "sha256") -> bytes:
    # An empty Master Salt means HashLen zero bytes (RFC 5869 §2.2); HMAC pads b"" to the same.
    return HKDF(algorithm=_HASHES[hash_name](), length=length, salt=salt, info=info).derive(secret)


def derive_key(cfg: OscoreContextConfig, ident: bytes, id_context: bytes | None) -> bytes:
    alg = AEADS[cfg.aead]
    return hkdf(cfg.master_secret, cfg.master_salt,
                wire.info(ident, id_context, alg.number, "Key", alg.key_len), alg.key_len, cfg.hkdf)


def derive_common_iv(cfg: OscoreContextConfig, id_context: bytes | None) -> bytes:
    alg = AEADS[cfg.aead]
    return hkdf(cfg.master_secret, cfg.master_salt,
                wire.info(b"", id_context, alg.number, "IV", alg.nonce_len), alg.nonce_len, cfg.hkdf)


def nonce(common_iv: bytes, sender_id: bytes, piv: bytes) -> bytes:
    """RFC 8613 §5.2: (len(ID_PIV) | ID_PIV left-padded to nonce_len-6 | PIV left-padded to 5) XOR IV."""
    n = len(common_iv)
    if len(sender_id) > n - 6 or len(piv) > 5:
        raise ValueError("sender ID or Partial IV too long for this AEAD's nonce")
    block = bytes([len(sender_id)]) + sender_id.rjust(n - 6, b"\0") + piv.rjust(5, b"\0")
    return (int.from_bytes(block, "big") ^ int.from_bytes(common_iv, "big")).to_bytes(n, "big")


def _cipher(alg: Aead, key: bytes):
    if alg.family == "ccm":
        return AESCCM(key, tag_length=alg.tag_len)
    if alg.family == "gcm":
        return AESGCM(key)
    return ChaCha20Poly1305(key)


@dataclass(eq=False)
class Context:
    """Derived keys of one configured context (one ID Context) for both endpoints."""

    config: OscoreContextConfig = field(repr=False)
    id_context: bytes | None
    alg: Aead
    client_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    common_iv: bytes = field(repr=False)
    _client_cipher: object = field(repr=False, default=None)
    _server_cipher: object = field(repr=False, default=None)

    @classmethod
    def derive(cls, cfg: OscoreContextConfig, id_context: bytes | None | object = CONFIGURED) -> "Context":
        """Derive keys; an `id_context` given overrides the configured one (B.2 re-derivation)."""
        idc = cfg.id_context if id_context is CONFIGURED else id_context
        alg = AEADS[cfg.aead]
        ctx = cls(cfg, idc, alg, derive_key(cfg, cfg.client_id, idc), derive_key(cfg, cfg.server_id, idc),
                  derive_common_iv(cfg, idc))
        ctx._client_cipher = _cipher(alg, ctx.client_key)
        ctx._server_cipher = _cipher(alg, ctx.server_key)
        return ctx

    def sender_id(self, client_sent: bool) -> bytes:
        return self.config.client_id if client_sent else self.config.server_id

    def nonce(self, sender_id: bytes, piv: bytes) -> bytes | None:
        """The AEAD nonce, or None when the sender ID is too long for this algorithm's nonce."""
        if len(sender_id) > len(self.common_iv) - 6 or len(piv) > 5:
            return None
        return nonce(self.common_iv, sender_id, piv)

    def open(self, client_sent: bool, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes | None:
        """Decrypt a message sent by the client (or server); None if the tag does not verify.

        `nonce` comes from `self.nonce(sender ID, Partial IV)`: the request's for a response
        without a Partial IV of its own."""
        if len(ciphertext) < self.alg.tag_len:
            return None
        cipher = self._client_cipher if client_sent else self._server_cipher
        try:
            return cipher.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None

    def seal(self, client_sent: bool, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt (used by tests to build messages the way a peer would)."""
        cipher = self._client_cipher if client_sent else self._server_cipher
        return cipher.encrypt(nonce, plaintext, aad)
