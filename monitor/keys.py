"""The keys file (../shared/KEYS.md) and the run's key store.

Loading validates everything up front and raises `KeysError` with one line naming the file,
the entry and the problem, never the secret. The store also receives keys harvested from
cleartext bootstrap traffic; those never leave the process either.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field

from .yaml_loader import is_yaml_error, load_fast


class KeysError(Exception):
    """The keys file cannot be used; the message is safe to print."""


@dataclass(frozen=True)
class Psk:
    identity: bytes
    key: bytes = field(repr=False)
    source: str = "keys-file"       # "keys-file" or "harvested"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


@dataclass(frozen=True)
class OscoreContextConfig:
    master_secret: bytes = field(repr=False)
    master_salt: bytes = field(default=b"", repr=False)
    id_context: bytes | None = None
    client_id: bytes = b""
    server_id: bytes = b""
    aead: int = 10
    hkdf: str = "sha256"
    source: str = "keys-file"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.master_secret)


def fingerprint(secret: bytes) -> str:
    """First 8 hex digits of SHA-256: enough to correlate, useless to an attacker."""
    return hashlib.sha256(secret).hexdigest()[:8]


@dataclass
class KeyStore:
    psks: dict[bytes, Psk] = field(default_factory=dict)
    keylog: dict[bytes, bytes] = field(default_factory=dict, repr=False)  # client_random -> master secret
    oscore: list[OscoreContextConfig] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)             # identity -> endpoint
    path: str | None = None

    def psk(self, identity: bytes) -> Psk | None:
        return self.psks.get(identity)

    def add_harvested_psk(self, identity: bytes, key: bytes) -> bool:
        """Learn a PSK seen in clear; a configured key for the identity wins. True if new."""
        if identity in self.psks:
            return False
        self.psks[identity] = Psk(identity, key, source="harvested")
        return True

    def add_harvested_oscore(self, ctx: OscoreContextConfig) -> bool:
        if any(c.master_secret == ctx.master_secret and c.client_id == ctx.client_id
               and c.server_id == ctx.server_id for c in self.oscore):
            return False
        self.oscore.append(ctx)
        return True

    def expected_endpoint(self, identity: str) -> str | None:
        return self.identities.get(identity)


_TOP = {"psk", "keylog", "oscore", "identities"}
_PSK = {"identity", "identity_hex", "key", "key_text", "key_base64"}
_OSCORE = {"master_secret", "master_salt", "id_context", "client_id", "server_id", "aead", "hkdf"}
_AEADS = {10, 11, 12, 13, 30, 31, 32, 33, 1, 2, 3, 24}   # COSE algorithm numbers we can run


def load(path: str) -> KeyStore:
    """Read and validate a keys file; raise `KeysError` naming file and entry on any problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = load_fast(fh.read())        # a fleet's plain file without PyYAML's per-node cost
    except FileNotFoundError:
        raise KeysError(f"{path}: keys file not found") from None
    except OSError as exc:
        raise KeysError(f"{path}: cannot read keys file ({exc.strerror})") from None
    except Exception as exc:                # noqa: BLE001 — re-raised unless PyYAML's
        if not is_yaml_error(exc):
            raise
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KeysError(f"{path}: not valid YAML{where}") from None
    store = KeyStore(path=path)
    if raw is None:
        return store
    if not isinstance(raw, dict):
        raise KeysError(f"{path}: top level must be a mapping")
    unknown = set(raw) - _TOP
    if unknown:
        raise KeysError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for i, entry in enumerate(_list(raw.get("psk"), path, "psk")):
        where = f"{path}: psk[{i}]"
        _check_keys(entry, _PSK, where)
        identity = _identity(entry, where)
        if identity in store.psks:
            raise KeysError(f"{where}: duplicate identity {identity!r}")
        store.psks[identity] = Psk(identity, _secret(entry, where))
    if raw.get("keylog") is not None:
        store.keylog = _read_keylog(os.path.join(os.path.dirname(os.path.abspath(path)), str(raw["keylog"])), path)
    for i, entry in enumerate(_list(raw.get("oscore"), path, "oscore")):
        store.oscore.append(_oscore(entry, f"{path}: oscore[{i}]"))
    idmap = raw.get("identities") or {}
    if not isinstance(idmap, dict):
        raise KeysError(f"{path}: identities must be a mapping of identity to endpoint name")
    store.identities = {str(k): str(v) for k, v in idmap.items()}
    return store


def _list(value, path: str, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise KeysError(f"{path}: {name} must be a list of mappings")
    return value


def _check_keys(entry: dict, allowed: set[str], where: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise KeysError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")


def _hex(value, where: str, name: str) -> bytes:
    text = "" if value is None else str(value)
    try:
        return bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise KeysError(f"{where}: {name} is not valid hex") from None


def _identity(entry: dict, where: str) -> bytes:
    if ("identity" in entry) == ("identity_hex" in entry):
        raise KeysError(f"{where}: give exactly one of identity, identity_hex")
    if "identity" in entry:
        return str(entry["identity"]).encode("utf-8")
    return _hex(entry["identity_hex"], where, "identity_hex")


def _secret(entry: dict, where: str) -> bytes:
    given = [k for k in ("key", "key_text", "key_base64") if k in entry]
    if len(given) != 1:
        raise KeysError(f"{where}: give exactly one of key, key_text, key_base64")
    name = given[0]
    if name == "key":
        key = _hex(entry["key"], where, "key")
    elif name == "key_text":
        key = str(entry["key_text"]).encode("utf-8")
    else:
        try:
            key = base64.b64decode(str(entry["key_base64"]), validate=True)
        except binascii.Error:
            raise KeysError(f"{where}: key_base64 is not valid base64") from None
    if not key:
        raise KeysError(f"{where}: {name} is empty")
    return key


def _oscore(entry: dict, where: str) -> OscoreContextConfig:
    _check_keys(entry, _OSCORE, where)
    if "master_secret" not in entry:
        raise KeysError(f"{where}: master_secret is required")
    secret = _hex(entry["master_secret"], where, "master_secret")
    if not secret:
        raise KeysError(f"{where}: master_secret is empty")
    aead = entry.get("aead", 10)
    if aead not in _AEADS:
        raise KeysError(f"{where}: aead {aead} is not a supported COSE algorithm")
    hkdf = str(entry.get("hkdf", "sha256")).lower()
    if hkdf not in ("sha256", "sha512"):
        raise KeysError(f"{where}: hkdf must be sha256 or sha512")
    id_context = entry.get("id_context")
    return OscoreContextConfig(
        master_secret=secret,
        master_salt=_hex(entry.get("master_salt", ""), where, "master_salt"),
        id_context=None if id_context in (None, "") else _hex(id_context, where, "id_context"),
        client_id=_hex(entry.get("client_id", ""), where, "client_id"),
        server_id=_hex(entry.get("server_id", ""), where, "server_id"),
        aead=int(aead), hkdf=hkdf)


def parse_keylog(text: str) -> dict[bytes, bytes]:
    """CLIENT_RANDOM entries of key-log text (e.g. a pcapng Decryption Secrets Block);
    lines that do not parse are skipped, as Wireshark does."""
    out: dict[bytes, bytes] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "CLIENT_RANDOM":
            try:
                random, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except ValueError:
                continue
            if len(random) == 32 and len(secret) == 48:
                out[random] = secret
    return out


def _read_keylog(path: str, keys_path: str) -> dict[bytes, bytes]:
    """NSS key log: `CLIENT_RANDOM <32-byte hex> <48-byte hex>` lines; others ignored."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            lines = fh.readlines()
    except OSError as exc:
        raise KeysError(f"{keys_path}: keylog {path}: {exc.strerror}") from None
    out: dict[bytes, bytes] = {}
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "CLIENT_RANDOM":
            try:
                random, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except ValueError:
                raise KeysError(f"{keys_path}: keylog {path} line {n}: not valid hex") from None
            if len(random) != 32 or len(secret) != 48:
                raise KeysError(f"{keys_path}: keylog {path} line {n}: wrong lengths")
            out[random] = secret
    return out
