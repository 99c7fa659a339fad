"""DTLS 1.0/1.2 record layer and handshake message readers (RFC 6347, RFC 9146 CID records),
plus recognition of the DTLS 1.3 unified header (RFC 9147 §4).

Every reader returns a typed value or raises `Truncated` (input ends before a length says it
should) or `Malformed` (complete but invalid); nothing else. No state: the CID length of
RFC 9146 records is learned from the hello extensions by the caller and passed in.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import Malformed, Truncated

# Content types.
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT, TLS12_CID = 20, 21, 22, 23, 24, 25
CONTENT_NAMES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data",
                 24: "heartbeat", 25: "tls12_cid"}

# Handshake message types.
HELLO_REQUEST, CLIENT_HELLO, SERVER_HELLO, HELLO_VERIFY_REQUEST, NEW_SESSION_TICKET = 0, 1, 2, 3, 4
CERTIFICATE, SERVER_KEY_EXCHANGE, CERTIFICATE_REQUEST, SERVER_HELLO_DONE = 11, 12, 13, 14
CERTIFICATE_VERIFY, CLIENT_KEY_EXCHANGE, FINISHED = 15, 16, 20
HANDSHAKE_NAMES = {0: "hello_request", 1: "client_hello", 2: "server_hello",
                   3: "hello_verify_request", 4: "new_session_ticket", 11: "certificate",
                   12: "server_key_exchange", 13: "certificate_request", 14: "server_hello_done",
                   15: "certificate_verify", 16: "client_key_exchange", 20: "finished"}

# Wire versions.
DTLS10_OPENSSL_PRE = 0x0100   # OpenSSL before 0.9.8f
DTLS10, DTLS12, DTLS13 = 0xFEFF, 0xFEFD, 0xFEFC
VERSION_NAMES = {DTLS10: "1.0", DTLS12: "1.2", DTLS13: "1.3", DTLS10_OPENSSL_PRE: "1.0"}

# Extension numbers the tracker reads.
EXT_SERVER_NAME, EXT_MAX_FRAGMENT_LENGTH, EXT_SUPPORTED_GROUPS, EXT_EC_POINT_FORMATS = 0, 1, 10, 11
EXT_SIGNATURE_ALGORITHMS, EXT_CLIENT_CERT_TYPE, EXT_SERVER_CERT_TYPE = 13, 19, 20
EXT_ENCRYPT_THEN_MAC, EXT_EXTENDED_MASTER_SECRET, EXT_RECORD_SIZE_LIMIT = 22, 23, 28
EXT_SESSION_TICKET, EXT_SUPPORTED_VERSIONS, EXT_CONNECTION_ID = 35, 43, 54
EXT_CONNECTION_ID_DRAFT = 254   # pre-RFC 9146 code point still used by mbed TLS 2.x
EXT_RENEGOTIATION_INFO = 0xFF01

_RECORD = struct.Struct("!BHHHIH")      # type, version, epoch, seq (16+32 bits), length
HANDSHAKE_HEADER_LEN = 12


@dataclass(slots=True, init=False)
class Record:
    """One DTLSPlaintext/DTLSCiphertext record. `cid` is set for content type 25 only.

    Not frozen, and its own `__init__`: one is built per record, and a frozen dataclass's
    generated `__init__` runs interpreted (one `object.__setattr__` per field) even in the
    compiled build. Nothing assigns to a record after it is built."""

    content_type: int
    version: int
    epoch: int
    seq: int
    fragment: bytes
    cid: bytes
    offset: int

    def __init__(self, content_type: int, version: int, epoch: int, seq: int, fragment: bytes,
                 cid: bytes = b"", offset: int = 0) -> None:
        self.content_type = content_type
        self.version = version
        self.epoch = epoch
        self.seq = seq
        self.fragment = fragment
        self.cid = cid
        self.offset = offset


@dataclass(frozen=True, slots=True)
class UnifiedRecord:
    """A DTLS 1.3 ciphertext record (unified header); never decrypted here."""

    flags: int
    cid: bytes | None      # None when the header says a CID follows but its length is unknown
    seq_low: int | None
    fragment: bytes
    offset: int = 0

    @property
    def epoch_low(self) -> int:
        return self.flags & 0x03


def looks_like_dtls(data: bytes) -> bool:
    """Cheap content check for any UDP payload: DTLS 1.0/1.2 record header or DTLS 1.3 unified."""
    if len(data) < 13:
        return len(data) >= 2 and (data[0] & 0xE0) == 0x20
    first = data[0]
    if 20 <= first <= 25:
        version = (data[1] << 8) | data[2]
        return version in (DTLS12, DTLS10, DTLS13, DTLS10_OPENSSL_PRE)
    return (first & 0xE0) == 0x20


def parse_records(data: bytes, cid_length: int | None = None) -> list[Record | UnifiedRecord]:
    """All records of one datagram. Raises Truncated/Malformed if any record is bad.

    `cid_length`: length of the Connection ID in content-type-25 records (RFC 9146 records carry
    no length for it); None means unknown, which makes such a record Malformed.
    """
    records: list[Record | UnifiedRecord] = []
    pos, end = 0, len(data)
    while pos < end:
        first = data[pos]
        if (first & 0xE0) == 0x20:
            rec, pos = _unified(data, pos, cid_length)
            records.append(rec)
            continue
        if end - pos < 13:
            raise Truncated(f"record header needs 13 bytes, {end - pos} left")
        ctype, version, epoch, seq_hi, seq_lo, length = _RECORD.unpack_from(data, pos)
        if not 20 <= ctype <= 25:
            raise Malformed(f"content type {ctype}")
        if version not in (DTLS12, DTLS10, DTLS13, DTLS10_OPENSSL_PRE):
            raise Malformed(f"record version 0x{version:04x}")
        start = pos + 13
        cid = b""
        if ctype == TLS12_CID:
            if cid_length is None:
                raise Malformed("connection id record with unknown cid length")
            # RFC 9146: the CID sits between sequence number and length.
            if end - pos < 11 + cid_length + 2:
                raise Truncated("cid record header")
            cid = data[pos + 11:pos + 11 + cid_length]
            (length,) = struct.unpack_from("!H", data, pos + 11 + cid_length)
            start = pos + 13 + cid_length
        if length > 16384 + 2048:
            raise Malformed(f"record length {length}")
        if start + length > end:
            raise Truncated(f"record needs {length} bytes, {end - start} left")
        records.append(Record(ctype, version, epoch, (seq_hi << 32) | seq_lo,
                              data[start:start + length], cid, pos))
        pos = start + length
    return records


def _unified(data: bytes, pos: int, cid_length: int | None) -> tuple[UnifiedRecord, int]:
    flags = data[pos]
    p = pos + 1
    cid: bytes | None = b""
    if flags & 0x10:
        if cid_length is None:
            # Cannot tell where the CID ends: report the rest of the datagram as one record.
            return UnifiedRecord(flags, None, None, data[p:], pos), len(data)
        if len(data) - p < cid_length:
            raise Truncated("unified header cid")
        cid = data[p:p + cid_length]
        p += cid_length
    seq_len = 2 if flags & 0x08 else 1
    if len(data) - p < seq_len:
        raise Truncated("unified header sequence number")
    seq = int.from_bytes(data[p:p + seq_len], "big")
    p += seq_len
    if flags & 0x04:
        if len(data) - p < 2:
            raise Truncated("unified header length")
        (length,) = struct.unpack_from("!H", data, p)
        p += 2
        if len(data) - p < length:
            raise Truncated("unified record body")
    else:
        length = len(data) - p
    return UnifiedRecord(flags, cid, seq, data[p:p + length], pos), p + length


# ---------------------------------------------------------------------------------------------
# Handshake layer

@dataclass(slots=True, init=False)
class HandshakeFragment:
    """One handshake fragment; not frozen, and its own `__init__`, as `Record` (several are built
    per handshake). Nothing assigns to a fragment after it is built."""

    msg_type: int
    length: int           # total message length
    message_seq: int
    fragment_offset: int
    body: bytes           # this fragment's bytes

    def __init__(self, msg_type: int, length: int, message_seq: int, fragment_offset: int,
                 body: bytes) -> None:
        self.msg_type = msg_type
        self.length = length
        self.message_seq = message_seq
        self.fragment_offset = fragment_offset
        self.body = body

    @property
    def whole(self) -> bool:
        return self.fragment_offset == 0 and len(self.body) == self.length


def parse_handshake(data: bytes) -> list[HandshakeFragment]:
    """The handshake fragments in one (decrypted) handshake record."""
    out: list[HandshakeFragment] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < HANDSHAKE_HEADER_LEN:
            raise Truncated("handshake header needs 12 bytes")
        msg_type = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        message_seq = (data[pos + 4] << 8) | data[pos + 5]
        offset = int.from_bytes(data[pos + 6:pos + 9], "big")
        frag_len = int.from_bytes(data[pos + 9:pos + 12], "big")
        if offset + frag_len > length:
            raise Malformed("handshake fragment beyond message length")
        start = pos + HANDSHAKE_HEADER_LEN
        if start + frag_len > end:
            raise Truncated("handshake fragment body")
        out.append(HandshakeFragment(msg_type, length, message_seq, offset, data[start:start + frag_len]))
        pos = start + frag_len
    return out


def handshake_bytes(msg_type: int, message_seq: int, body: bytes) -> bytes:
    """The message as one unfragmented DTLS handshake message (the form the transcript hashes)."""
    n = len(body).to_bytes(3, "big")
    return bytes([msg_type]) + n + message_seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if self.left() < n:
            raise Truncated(what)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u24(self, what: str) -> int:
        return int.from_bytes(self.take(3, what), "big")

    def vec(self, size_bytes: int, what: str) -> bytes:
        n = int.from_bytes(self.take(size_bytes, what), "big")
        return self.take(n, what)


@dataclass(frozen=True, slots=True)
class Extension:
    type: int
    data: bytes


def _extensions(r: _Reader) -> tuple[Extension, ...]:
    if r.left() == 0:
        return ()
    block = _Reader(r.vec(2, "extensions"))
    out = []
    while block.left():
        etype = block.u16("extension type")
        out.append(Extension(etype, block.vec(2, "extension data")))
    if r.left():
        raise Malformed("bytes after extensions")
    return tuple(out)


def _find(extensions: tuple[Extension, ...], etype: int) -> bytes | None:
    for e in extensions:
        if e.type == etype:
            return e.data
    return None


@dataclass(frozen=True, slots=True)
class ClientHello:
    version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]

    def ext(self, etype: int) -> bytes | None:
        return _find(self.extensions, etype)


@dataclass(frozen=True, slots=True)
class ServerHello:
    version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]

    def ext(self, etype: int) -> bytes | None:
        return _find(self.extensions, etype)


@dataclass(frozen=True, slots=True)
class HelloVerifyRequest:
    version: int
    cookie: bytes


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    lifetime: int
    ticket: bytes


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    psk_identity_hint: bytes | None
    curve: int | None             # named group for ECDHE
    public_key: bytes | None      # ECDHE point or DH Ys
    dh_prime_bits: int | None
    signature_scheme: int | None


@dataclass(frozen=True, slots=True)
class ClientKeyExchange:
    psk_identity: bytes | None
    public_key: bytes | None      # ECDHE point, DH Yc, or RSA-encrypted premaster


@dataclass(frozen=True, slots=True)
class Alert:
    level: int
    description: int


def parse_client_hello(body: bytes) -> ClientHello:
    r = _Reader(body)
    version = r.u16("client_hello version")
    random = r.take(32, "client_hello random")
    session_id = r.vec(1, "client_hello session_id")
    if len(session_id) > 32:
        raise Malformed("session_id longer than 32")
    cookie = r.vec(1, "client_hello cookie")
    suites_raw = r.vec(2, "client_hello cipher_suites")
    if len(suites_raw) % 2:
        raise Malformed("odd cipher_suites length")
    suites = tuple(int.from_bytes(suites_raw[i:i + 2], "big") for i in range(0, len(suites_raw), 2))
    compression = tuple(r.vec(1, "client_hello compression_methods"))
    return ClientHello(version, random, session_id, cookie, suites, compression, _extensions(r))


def parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body)
    version = r.u16("server_hello version")
    random = r.take(32, "server_hello random")
    session_id = r.vec(1, "server_hello session_id")
    if len(session_id) > 32:
        raise Malformed("session_id longer than 32")
    suite = r.u16("server_hello cipher_suite")
    compression = r.u8("server_hello compression_method")
    return ServerHello(version, random, session_id, suite, compression, _extensions(r))


def parse_hello_verify_request(body: bytes) -> HelloVerifyRequest:
    r = _Reader(body)
    version = r.u16("hello_verify_request version")
    cookie = r.vec(1, "hello_verify_request cookie")
    if r.left():
        raise Malformed("bytes after cookie")
    return HelloVerifyRequest(version, cookie)


def parse_new_session_ticket(body: bytes) -> NewSessionTicket:
    r = _Reader(body)
    lifetime = int.from_bytes(r.take(4, "ticket lifetime"), "big")
    return NewSessionTicket(lifetime, r.vec(2, "ticket"))


def parse_server_key_exchange(body: bytes, kx: str) -> ServerKeyExchange:
    """`kx` is the suite's key exchange label from tls_suites (psk, ecdhe_psk, dhe, ...)."""
    r = _Reader(body)
    hint = r.vec(2, "psk_identity_hint") if kx in ("psk", "ecdhe_psk", "dhe_psk", "rsa_psk") else None
    curve = pub = bits = scheme = None
    if kx in ("ecdhe", "ecdhe_psk", "ecdh_anon"):
        curve_type = r.u8("ec curve_type")
        if curve_type != 3:
            raise Malformed(f"ec curve_type {curve_type} (only named_curve is allowed)")
        curve = r.u16("named curve")
        pub = r.vec(1, "ec point")
    elif kx in ("dhe", "dhe_psk", "dh_anon"):
        bits = len(r.vec(2, "dh_p").lstrip(b"\x00")) * 8
        r.vec(2, "dh_g")
        pub = r.vec(2, "dh_Ys")
    if kx in ("ecdhe", "dhe") and r.left() >= 4:
        scheme = r.u16("signature scheme")
        r.vec(2, "signature")
    return ServerKeyExchange(hint, curve, pub, bits, scheme)


def parse_client_key_exchange(body: bytes, kx: str) -> ClientKeyExchange:
    r = _Reader(body)
    identity = r.vec(2, "psk_identity") if kx in ("psk", "ecdhe_psk", "dhe_psk", "rsa_psk") else None
    pub = None
    if kx in ("ecdhe", "ecdhe_psk", "ecdh", "ecdh_anon"):
        pub = r.vec(1, "ec point")
    elif kx == "rsa" and int.from_bytes(body[:2], "big") != len(body) - 2:
        pub = r.take(r.left(), "encrypted premaster")   # SSLv3 style, OpenSSL before 0.9.8f
    elif kx in ("dhe", "dhe_psk", "dh_anon", "rsa", "rsa_psk"):
        pub = r.vec(2, "exchange keys")
    if kx in ("psk", "ecdhe_psk", "dhe_psk", "rsa_psk", "ecdhe", "ecdh", "ecdh_anon", "dhe",
              "dh_anon", "rsa") and r.left():
        raise Malformed("bytes after client_key_exchange")
    return ClientKeyExchange(identity, pub)


def parse_certificate(body: bytes, raw_public_key: bool = False) -> tuple[bytes, ...]:
    """DER certificates in order, or (for an RFC 7250 raw public key) the one SubjectPublicKeyInfo."""
    r = _Reader(body)
    block = r.vec(3, "certificate list")
    if r.left():
        raise Malformed("bytes after certificate list")
    if raw_public_key:
        return (block,)
    lr = _Reader(block)
    out = []
    while lr.left():
        out.append(lr.vec(3, "certificate"))
    return tuple(out)


def parse_alert(data: bytes) -> Alert:
    if len(data) < 2:
        raise Truncated("alert needs 2 bytes")
    if len(data) > 2:
        raise Malformed("alert longer than 2 bytes")
    if data[0] not in (1, 2):
        raise Malformed(f"alert level {data[0]}")
    return Alert(data[0], data[1])


# ---------------------------------------------------------------------------------------------
# Extension bodies

def ext_connection_id(data: bytes) -> bytes:
    r = _Reader(data)
    cid = r.vec(1, "connection_id")
    if r.left():
        raise Malformed("bytes after connection_id")
    return cid


def ext_u16_list(data: bytes) -> tuple[int, ...]:
    """supported_groups, signature_algorithms: a 2-byte-length list of u16."""
    raw = _Reader(data).vec(2, "u16 list")
    if len(raw) % 2:
        raise Malformed("odd u16 list length")
    return tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))


def ext_u8_list(data: bytes) -> tuple[int, ...]:
    """ec_point_formats, client_certificate_type in ClientHello: a 1-byte-length list of u8."""
    return tuple(_Reader(data).vec(1, "u8 list"))


def ext_supported_versions(data: bytes, server: bool) -> tuple[int, ...]:
    if server:
        return (_Reader(data).u16("selected version"),)
    raw = _Reader(data).vec(1, "versions")
    return tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2))


def ext_server_name(data: bytes) -> str | None:
    r = _Reader(_Reader(data).vec(2, "server_name_list")) if data else None
    while r is not None and r.left():
        kind = r.u8("name type")
        name = r.vec(2, "host name")
        if kind == 0:
            return name.decode("ascii", "replace")
    return None
