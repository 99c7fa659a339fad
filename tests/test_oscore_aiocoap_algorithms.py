"""Every AEAD and HKDF hash the keys file accepts, against messages protected by an independent
implementation: aiocoap 0.4.17's OSCORE code (its `protect` / `unprotect`), one context per side.
Wireshark 4.0.17 offers only AES-CCM-16-64-128 for OSCORE, so these have no tshark cross-check."""
from __future__ import annotations

import json
import warnings

import aiocoap
import pytest
from aiocoap import oscore as aiocoap_oscore
from aiocoap.message import Direction
from aiocoap.numbers.codes import CONTENT, GET

from monitor.datagram import Datagram
from monitor.keys import KeyStore, OscoreContextConfig
from monitor.oscore_tracker import OscoreTracker
from parsers import coap

SECRET, SALT, ID_CONTEXT = "00112233445566778899aabbccddeeff", "0a0b0c", "cafe01"
# aiocoap's algorithm names -> COSE numbers (IANA COSE Algorithms registry).
ALGORITHMS = {"AES-CCM-16-64-128": 10, "AES-CCM-16-64-256": 11, "AES-CCM-64-64-128": 12,
              "AES-CCM-64-64-256": 13, "AES-CCM-16-128-128": 30, "AES-CCM-16-128-256": 31,
              "AES-CCM-64-128-128": 32, "AES-CCM-64-128-256": 33, "A128GCM": 1, "A192GCM": 2,
              "A256GCM": 3, "ChaCha20/Poly1305": 24}
CLIENT, SERVER = ("127.0.0.1", 56830), ("127.0.0.1", 5683)


def _context(tmp_path, name, sender, recipient, alg, hkdf):
    d = tmp_path / name
    d.mkdir()
    (d / "secret.json").write_text(json.dumps({"secret_hex": SECRET, "salt_hex": SALT}))
    (d / "settings.json").write_text(json.dumps({"algorithm": alg, "kdf-hashfun": hkdf, "sender-id_hex": sender,
                                                 "recipient-id_hex": recipient, "id-context_hex": ID_CONTEXT}))
    return aiocoap_oscore.FilesystemSecurityContext(str(d))


def _wire(msg, mtype, mid, token) -> bytes:
    msg.mtype, msg.mid, msg.token = mtype, mid, token
    return msg.encode()


@pytest.mark.parametrize("hkdf", ["sha256", "sha512"])
@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_aiocoap_protected_exchange(tmp_path, alg, hkdf):
    client = _context(tmp_path, "client", "01", "02", alg, hkdf)
    server = _context(tmp_path, "server", "02", "01", alg, hkdf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        req, _ = client.protect(aiocoap.Message(code=GET, uri_path=["3", "0", "0"]))
        req_bytes = _wire(req, aiocoap.CON, 0x1234, b"\x0b\x0c")
        incoming = aiocoap.Message.decode(req_bytes)
        incoming.direction = Direction.INCOMING
        _, request_id = server.unprotect(incoming)
        # First response reuses the request nonce; the second (a notification) carries its own PIV.
        r1, _ = server.protect(aiocoap.Message(code=CONTENT, payload=b"first"), request_id)
        r2, _ = server.protect(aiocoap.Message(code=CONTENT, payload=b"second", observe=2), request_id)
        resp1 = _wire(r1, aiocoap.ACK, 0x1234, b"\x0b\x0c")
        resp2 = _wire(r2, aiocoap.CON, 0x0777, b"\x0b\x0c")

    cfg = OscoreContextConfig(bytes.fromhex(SECRET), bytes.fromhex(SALT), bytes.fromhex(ID_CONTEXT),
                              client_id=b"\x01", server_id=b"\x02", aead=ALGORITHMS[alg], hkdf=hkdf)
    tracker = OscoreTracker(KeyStore(oscore=[cfg]))
    got = []
    for frame, (src, dst, data) in enumerate([(CLIENT, SERVER, req_bytes), (SERVER, CLIENT, resp1),
                                              (SERVER, CLIENT, resp2)], 1):
        dgram = Datagram(frame, src[0], src[1], dst[0], dst[1], data, frame, "aiocoap")
        got.append(tracker.unprotect(dgram, coap.parse(data), src == CLIENT))
    assert [r.error for r in got] == [None, None, None]
    assert got[0].inner.code_text == "0.01" and got[0].inner.uri_path == ("3", "0", "0")
    assert got[0].kid_context == bytes.fromhex(ID_CONTEXT)
    assert (got[1].inner.code_text, got[1].inner.payload, got[1].piv) == ("2.05", b"first", None)
    assert (got[2].inner.payload, got[2].inner.observe) == (b"second", 2) and got[2].piv is not None

    # The other hash (or another AEAD of the same key size) must not verify.
    other = OscoreContextConfig(cfg.master_secret, cfg.master_salt, cfg.id_context, cfg.client_id, cfg.server_id,
                                aead=cfg.aead, hkdf="sha512" if hkdf == "sha256" else "sha256")
    wrong = OscoreTracker(KeyStore(oscore=[other]))
    dgram = Datagram(1, CLIENT[0], CLIENT[1], SERVER[0], SERVER[1], req_bytes, 1, "aiocoap")
    r = wrong.unprotect(dgram, coap.parse(req_bytes), True)
    assert (r.decrypted, r.inner, r.error) == (False, None, "tag check failed")
