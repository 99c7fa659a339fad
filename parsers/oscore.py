"""OSCORE (RFC 8613) wire structures: the option value, the AEAD's AAD and the inner plaintext.

`parse_option(value)` returns an `Option` or raises `Truncated`/`Malformed`;
`parse_plaintext(data)` returns an `Inner` or raises `Truncated`/`Malformed`;
`aad(...)` and `info(...)` only encode. No keys and no crypto here (see monitor/oscore_context.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from .coap import check_option_lengths, parse_options
from .errors import Malformed, Truncated

# Flag byte of the OSCORE option value (RFC 8613 §6.1; 0x20 from Group OSCORE, RFC 9203 draft).
PIV_LENGTH_MASK = 0x07
KID_FLAG = 0x08
KID_CONTEXT_FLAG = 0x10
GROUP_FLAG = 0x20
RESERVED_FLAG = 0x40
EXTENSION_FLAG = 0x80

OSCORE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Option:
    """The decoded OSCORE option: absent fields are None (an empty kid is b"", not None)."""

    piv: bytes | None
    kid: bytes | None
    kid_context: bytes | None
    group: bool = False

    @property
    def piv_int(self) -> int | None:
        return None if self.piv is None else int.from_bytes(self.piv, "big")


@dataclass(frozen=True, slots=True)
class Inner:
    """The decrypted COSE plaintext: inner code, Class E options (wire order), payload."""

    code: int
    options: tuple[tuple[int, bytes], ...]
    payload: bytes


def parse_option(value: bytes) -> Option:
    """Decode an OSCORE option value; raises `Truncated` or `Malformed`."""
    if not value:
        return Option(None, None, None)
    flags = value[0]
    if flags & (RESERVED_FLAG | EXTENSION_FLAG):
        raise Malformed("reserved OSCORE flag bit set")
    # A lone 0x00 should be sent as an empty option (§6.1); draft-era peers (Interop6) send it,
    # and it is unambiguous, so it reads as "no fields".
    n = flags & PIV_LENGTH_MASK
    if n > 5:
        raise Malformed(f"reserved Partial IV length {n}")
    pos = 1 + n
    if len(value) < pos:
        raise Truncated("OSCORE Partial IV")
    piv = value[1:pos] if n else None
    kid_context = None
    if flags & KID_CONTEXT_FLAG:
        if len(value) < pos + 1:
            raise Truncated("OSCORE kid context length")
        end = pos + 1 + value[pos]
        if len(value) < end:
            raise Truncated("OSCORE kid context")
        kid_context = value[pos + 1:end]
        pos = end
    if flags & KID_FLAG:
        kid = value[pos:]
    elif pos != len(value):
        raise Malformed("bytes after the OSCORE option fields")
    else:
        kid = None
    return Option(piv, kid, kid_context, bool(flags & GROUP_FLAG))


def encode_option(opt: Option) -> bytes:
    """Inverse of `parse_option` (for tests and for building messages)."""
    piv = opt.piv or b""
    flags = len(piv)
    tail = bytearray(piv)
    if opt.kid_context is not None:
        flags |= KID_CONTEXT_FLAG
        tail += bytes([len(opt.kid_context)]) + opt.kid_context
    if opt.kid is not None:
        flags |= KID_FLAG
        tail += opt.kid
    if opt.group:
        flags |= GROUP_FLAG
    return bytes([flags]) + bytes(tail) if flags else b""


def parse_plaintext(data: bytes) -> Inner:
    """Decode the decrypted plaintext (code byte, Class E options, payload); raises on bad input."""
    if not data:
        raise Truncated("OSCORE plaintext needs a code byte")
    code = data[0]
    if code == 0 or code >> 5 in (1, 6, 7):
        raise Malformed(f"inner code {code >> 5}.{code & 0x1F:02d} not allowed")
    options, payload = parse_options(data, 1)
    check_option_lengths(options)
    return Inner(code, options, payload)


# --- CBOR, only the few items these structures need (deterministic encoding, RFC 8949 §4.2) ---

def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")


def _int(n: int) -> bytes:
    return _head(0, n) if n >= 0 else _head(1, -1 - n)


def _bstr(b: bytes) -> bytes:
    return _head(2, len(b)) + b


def _tstr(s: str) -> bytes:
    raw = s.encode()
    return _head(3, len(raw)) + raw


_NULL = b"\xf6"
_ENCRYPT0 = _tstr("Encrypt0")


def external_aad(alg: int, request_kid: bytes, request_piv: bytes, class_i_options: bytes = b"") -> bytes:
    """The `aad_array` of RFC 8613 §5.4: [oscore_version, [alg_aead], request_kid, request_piv, options]."""
    return (b"\x85" + _int(OSCORE_VERSION) + b"\x81" + _int(alg) + _bstr(request_kid)
            + _bstr(request_piv) + _bstr(class_i_options))


def aad(alg: int, request_kid: bytes, request_piv: bytes, class_i_options: bytes = b"") -> bytes:
    """The AEAD additional data: COSE Enc_structure ["Encrypt0", h'', external_aad]."""
    return b"\x83" + _ENCRYPT0 + b"\x40" + _bstr(external_aad(alg, request_kid, request_piv, class_i_options))


def info(ident: bytes, id_context: bytes | None, alg: int, kind: str, length: int) -> bytes:
    """HKDF info of RFC 8613 §3.2.1: [id, id_context / nil, alg_aead, type ("Key"/"IV"), L]."""
    ctx = _NULL if id_context is None else _bstr(id_context)
    return b"\x85" + _bstr(ident) + ctx + _int(alg) + _tstr(kind) + _int(length)
