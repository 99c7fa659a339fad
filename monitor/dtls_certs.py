"""Facts about peer certificates (X.509) and RFC 7250 raw public keys, via `cryptography`.

Returns plain dicts shaped like ECS `x509.*`; a certificate we cannot parse yields
{"parse_error": "..."} rather than an exception (a monitor reports, it does not stop).
"""
from __future__ import annotations

import hashlib
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID


def _key_facts(key) -> dict:
    if isinstance(key, rsa.RSAPublicKey):
        return {"public_key_algorithm": "RSA", "public_key_size": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"public_key_algorithm": "EC", "public_key_size": key.curve.key_size,
                "public_key_curve": key.curve.name}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"public_key_algorithm": "Ed25519", "public_key_size": 256}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"public_key_algorithm": "Ed448", "public_key_size": 456}
    if isinstance(key, dsa.DSAPublicKey):
        return {"public_key_algorithm": "DSA", "public_key_size": key.key_size}
    return {"public_key_algorithm": type(key).__name__}


def _names(name: x509.Name, oid) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def x509_facts(der: bytes) -> dict:
    """Facts of one DER certificate off the wire (`parse_error` when it does not parse).
    `cryptography` warns on stderr about certificates a later release will refuse (a serial
    number that is not positive): a peer's bytes are not the user's code, so that stays quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _x509_facts(der)


def _x509_facts(der: bytes) -> dict:
    try:
        cert = x509.load_der_x509_certificate(der)
        # `cryptography` parses the outer structure only: a damaged name, serial, version or
        # validity raises when first read (ValueError, InvalidVersion, KeyError for an unknown
        # string tag in a name, ...), so these are read here too, and any error is the
        # certificate's parse_error: its bytes come off the wire.
        out: dict = {
            "subject": {"common_name": _names(cert.subject, NameOID.COMMON_NAME),
                        "organization": _names(cert.subject, NameOID.ORGANIZATION_NAME),
                        "distinguished_name": cert.subject.rfc4514_string()},
            "issuer": {"common_name": _names(cert.issuer, NameOID.COMMON_NAME),
                       "distinguished_name": cert.issuer.rfc4514_string()},
            "serial_number": format(cert.serial_number, "X"),
            "version_number": str(cert.version.value + 1),
            "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "hash": {"sha256": hashlib.sha256(der).hexdigest()},
        }
        self_signed = cert.subject == cert.issuer
    except Exception as exc:
        return {"parse_error": f"{type(exc).__name__}: {exc}"[:120],
                "hash": {"sha256": hashlib.sha256(der).hexdigest()}}
    try:
        h = cert.signature_hash_algorithm
        out["signature_algorithm"] = (h.name if h is not None else cert.signature_algorithm_oid._name)
    except Exception:  # unsupported algorithm OIDs raise UnsupportedAlgorithm
        out["signature_algorithm"] = cert.signature_algorithm_oid.dotted_string
    try:
        out.update(_key_facts(cert.public_key()))
    except Exception:
        out["public_key_algorithm"] = "unsupported"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["alternative_names"] = [str(v.value) for v in san]
    except x509.ExtensionNotFound:
        pass
    except Exception:                        # damaged extensions raise more than ValueError
        out["alternative_names_error"] = "unparseable"
    out["self_signed"] = self_signed
    return out


def rpk_facts(spki: bytes) -> dict:
    """RFC 7250 raw public key: type, size and the SHA-256 of the SubjectPublicKeyInfo DER."""
    out: dict = {"sha256": hashlib.sha256(spki).hexdigest()}
    try:
        out.update(_key_facts(load_der_public_key(spki)))
    except (ValueError, Exception):  # unsupported key types raise UnsupportedAlgorithm
        out["parse_error"] = "not a SubjectPublicKeyInfo we can read"
    return out
