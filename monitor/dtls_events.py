"""`dtls.handshake` and `dtls.alert` documents (../shared/EVENTS.md "DTLS") from session facts.

The one place that writes DTLS field names. Secrets never reach here: only identities,
fingerprints and negotiated parameters. Ids come from packet facts (file, frame, addresses).
"""
from __future__ import annotations

from parsers.tls_suites import alert_name, extension_name, named_group, signature_scheme, suite_name

from .datagram import Datagram
from .dtls_session import AlertFact, DtlsSessionFacts, identity_text
from .ecs import base_document, event_id, timestamp


def _tls(f: DtlsSessionFacts) -> dict:
    tls: dict = {"version": f.version or "unknown", "version_protocol": "dtls"}
    if f.cipher:
        tls["cipher"] = f.cipher
    tls["established"] = f.established
    tls["resumed"] = f.resumed
    if f.curve is not None:
        tls["curve"] = named_group(f.curve)
    client: dict = {}
    if f.offered_suites:
        client["supported_ciphers"] = [suite_name(c) for c in f.offered_suites]
    if f.server_name:
        client["server_name"] = f.server_name
    if f.client_random is not None:
        client["random"] = f.client_random.hex()
    if f.client_certs:
        client["x509"] = f.client_certs[0]
        client["certificate_chain_length"] = len(f.client_certs)
    if client:
        tls["client"] = client
    server: dict = {}
    if f.server_certs:
        server["x509"] = f.server_certs[0]
        server["certificate_chain_length"] = len(f.server_certs)
        cn = f.server_certs[0].get("subject", {}).get("common_name")
        if cn:
            server["subject"] = cn[0]
    if server:
        tls["server"] = server
    return tls


def _dtls(f: DtlsSessionFacts) -> dict:
    d: dict = {"history": f.history, "mode": f.mode, "decrypted": f.decrypted}
    if f.psk_identity is not None:
        d["psk_identity"] = identity_text(f.psk_identity)
    if f.psk_identity_hint:
        d["psk_identity_hint"] = identity_text(f.psk_identity_hint)
    d["extended_master_secret"] = f.extended_master_secret
    d["encrypt_then_mac"] = f.encrypt_then_mac
    d["connection_id"] = f.connection_id
    if f.connection_id:
        d["cid"] = {"to_server": (f.cid_to_server or b"").hex(), "to_client": (f.cid_to_client or b"").hex()}
    d["cookie_exchange"] = f.cookie_exchange
    if f.key_source:
        d["key_source"] = f.key_source
    if f.decrypt_error:
        d["decrypt_error"] = f.decrypt_error
    if f.finished_verified is not None:
        d["finished_verified"] = f.finished_verified
    if f.resumption:
        d["resumption"] = f.resumption
    if f.suite is not None:
        s = f.suite
        d["cipher"] = {"code": f"0x{s.code:04x}", "key_exchange": s.kx, "auth": s.auth,
                       "mode": s.mode, "aead": s.aead, "mac": s.mac, "is_weak": s.is_weak,
                       "is_sha1_mac": s.is_sha1_mac}
    elif f.suite_code is not None:
        d["cipher"] = {"code": f"0x{f.suite_code:04x}"}
    client: dict = {}
    if f.offered_suites:
        client["cipher_suites"] = [suite_name(c) for c in f.offered_suites]
    if f.client_extensions:
        client["extensions"] = [extension_name(e) for e in f.client_extensions]
    if f.client_compression:
        client["compression_methods"] = list(f.client_compression)
    if f.supported_groups:
        client["supported_groups"] = [named_group(g) for g in f.supported_groups]
    if f.signature_algorithms:
        client["signature_algorithms"] = [signature_scheme(a) for a in f.signature_algorithms]
    if f.offered_session_id:
        client["session_id"] = f.offered_session_id.hex()
    if f.client_rpk is not None:
        client["rpk"] = f.client_rpk
    if client:
        d["client"] = client
    server: dict = {}
    if f.server_extensions or f.server_random is not None:
        server["extensions"] = [extension_name(e) for e in f.server_extensions]
    if f.compression_method is not None:
        server["compression_method"] = f.compression_method
    if f.session_id:
        server["session_id"] = f.session_id.hex()
    if f.server_signature_scheme is not None:
        server["signature_scheme"] = signature_scheme(f.server_signature_scheme)
    if f.dh_bits is not None:
        server["dh_bits"] = f.dh_bits
    if f.server_rpk is not None:
        server["rpk"] = f.server_rpk
    if f.certificate_requested:
        server["certificate_requested"] = True
    if server:
        d["server"] = server
    if f.alerts:
        d["alerts"] = [_alert_fields(a) for a in f.alerts]
    if f.mid_session:
        d["mid_session"] = True
    d["records"] = f.records
    d["decrypted_records"] = f.decrypted_records
    if f.failed_records:
        d["failed_records"] = f.failed_records
    if f.retransmissions:
        d["retransmissions"] = f.retransmissions
    return d


def _alert_fields(a: AlertFact) -> dict:
    out: dict = {"from": "client" if a.from_client else "server", "encrypted": a.encrypted}
    if a.level is not None:
        out["level"] = "fatal" if a.level == 2 else "warning"
        out["description"] = alert_name(a.description)
        out["code"] = a.description
    return out


def handshake_document(f: DtlsSessionFacts, outcome: str) -> dict:
    action = "resumption" if f.resumed else "handshake"
    eid = event_id("dtls.handshake", f.observer, f.start_frame, f.client, f.server)
    doc = base_document(dataset="dtls.handshake", action=action, ts_ns=f.end_ts_ns or f.start_ts_ns,
                        src=f.client, dst=f.server, client=f.client, server=f.server,
                        observer=f.observer, live=f.live, eid=eid, outcome=outcome)
    doc["event"]["start"] = _iso(f.start_ts_ns)
    doc["event"]["end"] = _iso(f.end_ts_ns or f.start_ts_ns)
    doc["event"]["duration"] = max(0, (f.end_ts_ns or f.start_ts_ns) - f.start_ts_ns)
    doc["tls"] = _tls(f)
    doc["dtls"] = _dtls(f)
    ident = f.identity
    if ident is not None:
        doc["lwm2m"] = {"identity": {"value": ident[0], "type": ident[1]}}
    return doc


def alert_document(f: DtlsSessionFacts, a: AlertFact, dgram: Datagram) -> dict:
    eid = event_id("dtls.alert", dgram.source, dgram.frame, dgram.src, dgram.dst, len(f.alerts))
    fatal = a.level == 2
    outcome = "failure" if fatal else ("success" if a.level == 1 else "unknown")
    doc = base_document(dataset="dtls.alert", action="alert", ts_ns=a.ts_ns, src=dgram.src,
                        dst=dgram.dst, client=f.client, server=f.server, observer=dgram.source,
                        live=dgram.live, eid=eid, outcome=outcome)
    doc["tls"] = {"version": f.version or "unknown", "version_protocol": "dtls"}
    if f.cipher:
        doc["tls"]["cipher"] = f.cipher
    doc["dtls"] = {"alert": _alert_fields(a), "history": f.history, "mode": f.mode}
    if f.psk_identity is not None:
        doc["dtls"]["psk_identity"] = identity_text(f.psk_identity)
    return doc


_iso = timestamp
