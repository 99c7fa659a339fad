"""What is known about one DTLS session: typed facts, filled in by `dtls_tracker`, read by
`dtls_events` (handshake/alert documents) and by the LwM2M event builder (`lwm2m_fields`).

History letters (`dtls.history`, after Zeek's ssl_history): one letter per handshake message,
counted once even when its flight is retransmitted; upper-case when the client sent it,
lower-case when the server did.

    H hello_request        C client_hello          S server_hello
    V hello_verify_request T new_session_ticket    X certificate
    K server_key_exchange  R certificate_request   N server_hello_done
    Y certificate_verify   G client_key_exchange   F finished
    Z other/unknown type

Without keys the Finished messages cannot be read, but the first protected handshake record
after ChangeCipherSpec is Finished by definition (RFC 6347 §4.2.6), so it still reads F/f.
A full PSK handshake with a cookie exchange reads `CvCsnGFf`; with a PSK identity hint
`CvCsknGFf`; with a session ticket issued `CvCsnGFtf`; an abbreviated (resumed) handshake
`CvCsfF`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from parsers.dtls import VERSION_NAMES
from parsers.tls_suites import Suite

HISTORY_LETTERS = {0: "H", 1: "C", 2: "S", 3: "V", 4: "T", 11: "X", 12: "K", 13: "R", 14: "N",
                   15: "Y", 16: "G", 20: "F"}
UNKNOWN_LETTER = "Z"

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address


@dataclass(slots=True)
class AlertFact:
    ts_ns: int
    frame: int
    from_client: bool
    level: int | None            # None when encrypted and not decryptable
    description: int | None
    encrypted: bool


@dataclass(slots=True)
class DtlsSessionFacts:
    client: Address
    server: Address
    observer: str
    live: bool
    start_ts_ns: int
    start_frame: int
    end_ts_ns: int = 0
    end_frame: int = 0
    wire_version: int | None = None
    suite: Suite | None = None
    suite_code: int | None = None
    # ClientHello
    offered_suites: tuple[int, ...] = ()
    client_extensions: tuple[int, ...] = ()
    client_compression: tuple[int, ...] = ()
    supported_groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    server_name: str | None = None
    client_random: bytes | None = None
    offered_session_id: bytes = b""
    offered_ticket: bytes | None = None
    cookie_exchange: bool = False
    offered_versions: tuple[int, ...] = ()
    # ServerHello
    server_random: bytes | None = None
    session_id: bytes = b""
    server_extensions: tuple[int, ...] = ()
    compression_method: int | None = None
    extended_master_secret: bool = False
    encrypt_then_mac: bool = False
    cid_to_server: bytes | None = None     # CID carried by client->server records
    cid_to_client: bytes | None = None     # CID carried by server->client records
    cid_draft: bool = False
    client_cert_type: int = 0              # 0 x509, 2 raw public key
    server_cert_type: int = 0
    resumed: bool = False
    resumption: str | None = None          # "session_id" or "ticket"
    # key exchange
    psk_identity_hint: bytes | None = None
    psk_identity: bytes | None = None
    curve: int | None = None
    dh_bits: int | None = None
    server_signature_scheme: int | None = None
    server_certs: list[dict] = field(default_factory=list)
    client_certs: list[dict] = field(default_factory=list)
    server_rpk: dict | None = None
    client_rpk: dict | None = None
    certificate_requested: bool = False
    # progress
    history: str = ""
    client_finished: bool = False
    server_finished: bool = False
    finished_verified: bool | None = None
    alerts: list[AlertFact] = field(default_factory=list)
    fatal_alert: bool = False
    established: bool = False
    failed: bool = False
    emitted: bool = False
    mid_session: bool = False              # first seen after its handshake
    # decryption
    key_source: str | None = None          # keys-file, harvested, keylog, resumed:<source>
    decrypted: bool = False
    decrypt_error: str | None = None
    records: int = 0
    decrypted_records: int = 0
    failed_records: int = 0
    retransmissions: int = 0
    # lwm2m_fields() and the facts it was built from: rebuilt only when one of them changes
    fields_cache: tuple[tuple, dict] | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str | None:
        if self.wire_version is None:
            return None
        return VERSION_NAMES.get(self.wire_version, f"0x{self.wire_version:04x}")

    @property
    def cipher(self) -> str | None:
        if self.suite is not None:
            return self.suite.name
        return None if self.suite_code is None else f"unknown_0x{self.suite_code:04X}"

    @property
    def mode(self) -> str:
        if self.suite is not None and self.suite.is_psk:
            return "psk"
        if self.server_cert_type == 2 or self.server_rpk is not None:
            return "rpk"
        if self.server_certs:
            return "x509"
        return "unknown"

    @property
    def identity(self) -> tuple[str, str] | None:
        """The client's authenticated identity: PSK identity, certificate CN or RPK fingerprint."""
        if self.psk_identity is not None:
            return identity_text(self.psk_identity), "psk"
        if self.client_rpk is not None:
            return self.client_rpk["sha256"], "rpk"
        if self.client_certs:
            cn = self.client_certs[0].get("subject", {}).get("common_name") or []
            if cn:
                return cn[0], "x509"
        return None

    @property
    def connection_id(self) -> bool:
        return bool(self.cid_to_server) or bool(self.cid_to_client)

    def lwm2m_fields(self) -> dict:
        """Nested fields merged into every LwM2M event carried in this session: one dict per
        state of the session (every datagram asks; the documents share it, read-only)."""
        key = (self.wire_version, self.suite_code, self.suite is None, self.established, self.resumed,
               self.decrypted, self.psk_identity, self.key_source, self.cid_to_server,
               self.cid_to_client, self.server_cert_type, self.server_rpk is None,
               len(self.server_certs), self.client_rpk is None, len(self.client_certs))
        cache = self.fields_cache
        if cache is not None and cache[0] == key:
            return cache[1]
        fields = self._build_lwm2m_fields()
        self.fields_cache = (key, fields)
        return fields

    def _build_lwm2m_fields(self) -> dict:
        tls: dict = {"version": self.version or "unknown", "version_protocol": "dtls"}
        if self.cipher:
            tls["cipher"] = self.cipher
        tls["established"] = self.established
        tls["resumed"] = self.resumed
        dtls: dict = {"mode": self.mode, "decrypted": self.decrypted}
        if self.psk_identity is not None:
            dtls["psk_identity"] = identity_text(self.psk_identity)
        if self.key_source:
            dtls["key_source"] = self.key_source
        if self.connection_id:
            dtls["connection_id"] = True
        out: dict = {"tls": tls, "dtls": dtls}
        ident = self.identity
        if ident is not None:
            out["lwm2m"] = {"identity": {"value": ident[0], "type": ident[1]}}
        return out


def identity_text(raw: bytes) -> str:
    """PSK identities are usually UTF-8 text; anything else is shown as hex."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()
    return text if text.isprintable() else raw.hex()
