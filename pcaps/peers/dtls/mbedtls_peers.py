"""A python-mbedtls DTLS 1.2 client and server on 127.0.0.1 playing an LwM2M conversation.

Both peers run in this process (server in a thread) over real UDP sockets, so tcpdump on
`lo` sees ordinary datagrams. python-mbedtls 2.10 / Mbed TLS 2.28 exposes neither a key-log
callback nor session resumption nor DTLS Connection ID; the key log for ECDHE sessions is
read from Mbed TLS's own context serialisation (mbedtls_ssl_context_save), see `_keylog_line`.
"""
from __future__ import annotations

import datetime as dt
import socket
import struct
import threading
from contextlib import suppress
from dataclasses import dataclass, field

from mbedtls import hashlib as mbed_hashlib
from mbedtls import pk, tls, x509
from mbedtls.exceptions import TLSError

from lwm2m_script import CLIENT, SERVER, Step

HOST = "127.0.0.1"
SERVER_NAME = "lwm2m-server.test"  # CN of the self-signed server certificate


@dataclass(frozen=True)
class Session:
    port: int
    cipher: str
    steps: list[Step]
    client_identity: str = ""
    client_psk: bytes = b""
    server_psks: dict[str, bytes] = field(default_factory=dict)
    certificate: bool = False  # ECDHE-ECDSA with a self-signed server certificate
    keylog: bool = False  # write an NSS key-log line (needed for ECDHE suites)


@dataclass(frozen=True)
class Outcome:
    handshake_ok: bool
    steps_done: int
    negotiated: str  # cipher suite name mbedtls reports, "" if the handshake failed
    error: str  # the error class name on failure (never a message that could hold data)
    keylog_line: str  # "CLIENT_RANDOM <hex> <hex>" or ""


def _self_signed() -> tuple[x509.CRT, pk.ECC]:
    key = pk.ECC(pk.Curve.SECP256R1)
    key.generate()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    csr = x509.CSR.new(key, f"CN={SERVER_NAME}", mbed_hashlib.sha256())
    crt = x509.CRT.selfsign(csr, key, not_before=now - dt.timedelta(days=1),
                            not_after=now + dt.timedelta(days=30), serial_number=0x1077,
                            basic_constraints=x509.BasicConstraints(True, 0))
    return crt, key


def _configurations(session: Session):
    common = dict(ciphers=(session.cipher,),
                  lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
                  highest_supported_version=tls.DTLSVersion.DTLSv1_2,
                  handshake_timeout_min=0.5, handshake_timeout_max=4.0)
    if session.certificate:
        crt, key = _self_signed()
        server = tls.DTLSConfiguration(certificate_chain=([crt], key),
                                       validate_certificates=False, **common)
        client = tls.DTLSConfiguration(trust_store=tls.TrustStore([crt]),
                                       validate_certificates=True, **common)
    else:
        server = tls.DTLSConfiguration(pre_shared_key_store=session.server_psks,
                                       validate_certificates=False, **common)
        client = tls.DTLSConfiguration(pre_shared_key=(session.client_identity, session.client_psk),
                                       validate_certificates=False, **common)
    return server, client


def _keylog_line(buffer) -> str:
    """Master secret and client random from mbedtls_ssl_context_save's output.

    Layout (Mbed TLS 2.28 ssl_tls.c): 8-byte header, u32 session length, the session
    (8-byte start time, suite u16, compression u8, id_len u8, id[32], master[48], ...),
    then transform->randbytes = server_random || client_random (already swapped for key
    expansion). Saving resets the context, so the state is loaded straight back.
    """
    state = buffer.__getstate__()
    blob = state["connection"]
    buffer.__setstate__(state)
    (session_len,) = struct.unpack_from("!I", blob, 8)
    session = blob[12:12 + session_len]
    master = session[44:92]
    randbytes = blob[12 + session_len:12 + session_len + 64]
    if len(master) != 48 or len(randbytes) != 64:
        raise RuntimeError("unexpected mbedtls context layout")
    return f"CLIENT_RANDOM {randbytes[32:].hex()} {master.hex()}"


def _play(sock, me: str, steps: list[Step]) -> int:
    done = 0
    for step in steps:
        if step.sender == me:
            sock.send(step.datagram)
        else:
            received = sock.recv(4096)
            if received != step.datagram:
                raise RuntimeError(f"{me}: unexpected datagram at step {done}")
        done += 1
    return done


def _flush(sock) -> None:
    buffer = sock._buffer
    pending = buffer.peek_outgoing(4096)
    if pending:
        sock._socket.send(pending)
        buffer.consume_outgoing(len(pending))


def _send_close_notify(sock) -> None:
    # TLSWrappedSocket.close() queues close_notify in the buffer but never sends it
    sock._buffer.shutdown()
    _flush(sock)


def _serve(listener, session: Session, result: dict) -> None:
    try:
        conn, addr = listener.accept()
        conn.setcookieparam(addr[0].encode("ascii"))
        with suppress(tls.HelloVerifyRequest):  # first ClientHello: answer with a cookie
            conn.do_handshake()
        conn, addr = conn.accept()
        conn.setcookieparam(addr[0].encode("ascii"))
        # a timeout makes the fd non-blocking, which accept()'s fromfd copies would inherit
        conn.settimeout(10)
        try:
            conn.do_handshake()
        except TLSError:
            _flush(conn)  # the fatal alert Mbed TLS queued but python-mbedtls did not send
            raise
        _play(conn, SERVER, session.steps)
        with suppress(Exception):  # the client's close_notify
            conn.recv(4096)
        conn.close()
    except Exception as exc:  # reported by run(); the client side decides the outcome
        result["error"] = type(exc).__name__


def run(session: Session) -> Outcome:
    server_conf, client_conf = _configurations(session)
    listener = tls.ServerContext(server_conf).wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, session.port))
    server_result: dict = {}
    thread = threading.Thread(target=_serve, args=(listener, session, server_result), daemon=True)
    thread.start()
    client = tls.ClientContext(client_conf).wrap_socket(
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        server_hostname=SERVER_NAME if session.certificate else None)
    client.settimeout(10)
    client.connect((HOST, session.port))
    try:
        client.do_handshake()
    except Exception as exc:
        client.close()
        thread.join(15)
        return Outcome(False, 0, "", type(exc).__name__, "")
    negotiated = client.cipher()[0] if client.cipher() else ""
    done = _play(client, CLIENT, session.steps)
    # after the exchange: right after the handshake Mbed TLS still holds handshake state
    # and refuses to serialise the context
    keylog = _keylog_line(client._buffer) if session.keylog else ""
    _send_close_notify(client)
    client.close()
    thread.join(15)
    listener.close()
    return Outcome(True, done, str(negotiated), server_result.get("error", ""), keylog)
