"""Tracker behaviour that the captures do not exercise: RFC 8613 Appendix B.2 ID Context
re-derivation, harvested contexts, role filtering, replays, bounded state.

Messages are protected with `Context.seal`, the encryption direction whose correctness the RFC
8613 Appendix C vectors establish (tests/test_oscore_vectors.py)."""
from __future__ import annotations

from monitor.datagram import Datagram
from monitor.keys import KeyStore, OscoreContextConfig
from monitor.oscore_context import Context
from monitor.oscore_tracker import OscoreTracker
from parsers import coap, oscore

h = bytes.fromhex
CFG = OscoreContextConfig(h("00112233445566778899aabbccddeeff"), h("a1a2a3a4"), None, client_id=h("c1"),
                          server_id=h("5e"))
CLIENT, SERVER = ("192.0.2.1", 56830), ("192.0.2.2", 5683)


def _dgram(src, dst, frame=1):
    return Datagram(frame * 1_000_000, src[0], src[1], dst[0], dst[1], b"", frame, "unit")


def request(idc, *, piv: int, client: bool = True, kid_context=None, token=b"\x01", mid=1, cfg=CFG,
            path=("rd",), observe: int | None = None):
    ctx = Context.derive(cfg, idc)
    kid = ctx.sender_id(client)
    p = piv.to_bytes(max(1, (piv.bit_length() + 7) // 8), "big")
    inner = bytes([coap.GET]) + coap.serialize_options([(coap.URI_PATH, s.encode()) for s in path])
    aad = oscore.aad(10, kid, p)
    ct = ctx.seal(client, ctx.nonce(kid, p), aad, inner)
    outer = [(coap.OSCORE, oscore.encode_option(oscore.Option(p, kid, kid_context)))]
    if observe is not None:
        outer.append((coap.OBSERVE, coap.encode_option_uint(observe)))
    code = coap.FETCH if observe is not None else coap.POST
    return coap.Message(coap.CON, code, mid, token, tuple(outer), ct)


def response(idc, req: coap.Message, *, client: bool = False, piv: int | None = None, kid_context=None,
             observe: int | None = None, code=0x45, payload=b"ok", cfg=CFG, mid=None):
    ctx = Context.derive(cfg, idc)
    ropt = oscore.parse_option(req.oscore)
    p = None if piv is None else piv.to_bytes(max(1, (piv.bit_length() + 7) // 8), "big")
    nonce = ctx.nonce(ctx.sender_id(client), p) if p is not None else ctx.nonce(ropt.kid, ropt.piv)
    ct = ctx.seal(client, nonce, oscore.aad(10, ropt.kid, ropt.piv), bytes([code]) + b"\xff" + payload)
    outer = [(coap.OSCORE, oscore.encode_option(oscore.Option(p, None, kid_context)))]
    if observe is not None:
        outer.append((coap.OBSERVE, coap.encode_option_uint(observe)))
    return coap.Message(coap.ACK if observe is None else coap.CON, 0x44, req.mid if mid is None else mid,
                        req.token, tuple(outer), ct)


def test_request_response_and_lwm2m_fields():
    tr = OscoreTracker(KeyStore(oscore=[CFG]))
    req = request(None, piv=7)
    r = tr.unprotect(_dgram(CLIENT, SERVER), req, True)
    assert r.decrypted and r.inner.code == coap.GET and r.inner.uri_path == ("rd",)
    assert r.inner.type == coap.CON and r.inner.mid == 1 and not r.inner.has_option(coap.OSCORE)
    assert r.lwm2m_fields() == {"oscore": {"decrypted": True, "kid": "c1", "piv": 7,
                                           "context": {"fingerprint": CFG.fingerprint}},
                                "lwm2m": {"identity": {"value": "c1", "type": "oscore"}}}
    resp = tr.unprotect(_dgram(SERVER, CLIENT, 2), response(None, req), False)
    assert resp.decrypted and resp.inner.code_text == "2.05" and resp.inner.payload == b"ok"
    assert resp.kid == h("c1") and resp.piv is None          # the request's kid, no own PIV
    [seen] = [d for d in r.documents if d["event"]["action"] == "context-seen"]
    assert seen["client"] == {"ip": CLIENT[0], "port": CLIENT[1]} and seen["oscore"]["sender"] == "client"


def test_server_request_and_wrong_role_guess():
    tr = OscoreTracker(KeyStore(oscore=[CFG]))
    req = request(None, piv=1, client=False)                    # kid 5e, LwM2M server -> client
    assert tr.unprotect(_dgram(SERVER, CLIENT), req, False).decrypted
    # A wrong role guess from the caller costs a second try; the tag tells the real sender.
    guess = tr.unprotect(_dgram(CLIENT, SERVER, 2), request(None, piv=2, client=False, token=b"\x02"), True)
    assert guess.decrypted and guess.from_client is False and tr.stats["role_hint_wrong"] == 1
    # A kid that is nobody's Sender ID matches no context.
    other = OscoreContextConfig(CFG.master_secret, CFG.master_salt, None, h("77"), h("78"))
    stranger = tr.unprotect(_dgram(CLIENT, SERVER, 3), request(None, piv=3, token=b"\x03", cfg=other), True)
    assert not stranger.decrypted and stranger.error == "no context"


def test_wrong_secret_is_tag_failure_not_garbage():
    bad = OscoreContextConfig(h("00112233445566778899aabbccddeef0"), CFG.master_salt, None, CFG.client_id,
                              CFG.server_id)
    tr = OscoreTracker(KeyStore(oscore=[bad]))
    req = request(None, piv=1)
    r = tr.unprotect(_dgram(CLIENT, SERVER), req, True)
    assert (r.decrypted, r.inner, r.error) == (False, None, "tag check failed")
    r2 = tr.unprotect(_dgram(SERVER, CLIENT, 2), response(None, req), False)
    assert (r2.decrypted, r2.inner, r2.error) == (False, None, "tag check failed")
    assert "lwm2m" not in r.lwm2m_fields()
    [doc] = r.documents
    assert doc["event"]["action"] == "decryption-failed" and doc["event"]["outcome"] == "failure"


def test_appendix_b2_id_context_rederivation():
    """Figure 14: request #1 with ID1 (kid context R1), response #1 with kid context R2 protected
    with ID Context R2||ID1, request #2 with R2||R3, then ordinary traffic on R2||R3."""
    tr = OscoreTracker(KeyStore(oscore=[CFG]))
    r1, r2, r3 = b"R1R1R1R1", b"R2R2R2R2", b"R3R3R3R3"
    req1 = request(r1, piv=0, kid_context=r1, token=b"\x0a")
    a = tr.unprotect(_dgram(CLIENT, SERVER, 1), req1, True)
    assert a.decrypted and a.id_context == r1
    b = tr.unprotect(_dgram(SERVER, CLIENT, 2), response(r2 + r1, req1, kid_context=r2, code=0x81), False)
    assert b.decrypted and b.inner.code_text == "4.01" and b.id_context == r2 + r1
    req2 = request(r2 + r3, piv=1, kid_context=r2 + r3, token=b"\x0b", mid=2)
    c = tr.unprotect(_dgram(CLIENT, SERVER, 3), req2, True)
    assert c.decrypted and c.id_context == r2 + r3
    assert tr.unprotect(_dgram(SERVER, CLIENT, 4), response(r2 + r3, req2), False).decrypted
    # Later requests omit the kid context: the flow's current ID Context is used.
    req3 = request(r2 + r3, piv=2, token=b"\x0c", mid=3)
    d = tr.unprotect(_dgram(CLIENT, SERVER, 5), req3, True)
    assert d.decrypted and d.id_context == r2 + r3
    actions = [doc["event"]["action"] for res in (a, b, c, d) for doc in res.documents]
    assert actions.count("context-rederived") == 2
    redo = [doc for res in (a, c) for doc in res.documents if doc["event"]["action"] == "context-rederived"]
    assert [x["oscore"]["previous_id_context"] for x in redo] == [None, r1.hex()]
    assert tr.stats["rederived"] == 2


def test_harvested_context_is_used_from_then_on():
    store = KeyStore()
    tr = OscoreTracker(store)
    assert tr.unprotect(_dgram(CLIENT, SERVER), request(None, piv=1), True).error == "no context"
    harvested = OscoreContextConfig(CFG.master_secret, CFG.master_salt, None, CFG.client_id, CFG.server_id,
                                    source="harvested")
    assert tr.add_harvested(harvested)
    r = tr.unprotect(_dgram(CLIENT, SERVER, 2), request(None, piv=2, token=b"\x02"), True)
    assert r.decrypted
    [seen] = [d for d in r.documents if d["event"]["action"] == "context-seen"]
    assert seen["oscore"]["context"]["source"] == "harvested"
    # Contexts appended to the store directly (KeyStore.add_harvested_oscore) are found lazily too.
    store2 = KeyStore()
    tr2 = OscoreTracker(store2)
    store2.add_harvested_oscore(harvested)
    assert tr2.unprotect(_dgram(CLIENT, SERVER), request(None, piv=1), True).decrypted


def test_replay_retransmission_and_notifications():
    tr = OscoreTracker(KeyStore(oscore=[CFG]))
    obs = request(None, piv=3, client=False, token=b"\x33", observe=0, path=("3303", "0", "5700"))
    first = tr.unprotect(_dgram(SERVER, CLIENT, 1), obs, False)
    assert first.decrypted and first.inner.observe == 0
    again = tr.unprotect(_dgram(SERVER, CLIENT, 2), obs, False)            # same MID: retransmission
    assert again.decrypted and not again.replay and tr.stats["retransmissions"] == 1
    for n in range(1, 4):                                                  # notifications: own PIVs
        note = response(None, obs, client=True, piv=n, observe=n + 1, mid=100 + n)
        r = tr.unprotect(_dgram(CLIENT, SERVER, 2 + n), note, True)
        assert r.decrypted and r.inner.observe == n + 1 and r.piv == bytes([n])
    replayed = coap.Message(obs.type, obs.code, 999, obs.token, obs.options, obs.payload)
    r = tr.unprotect(_dgram(SERVER, CLIENT, 9), replayed, False)
    assert r.decrypted and r.replay
    [doc] = [d for d in r.documents if d["event"]["action"] == "replay"]
    assert doc["oscore"]["replay"] == {"kind": "replay", "count": 1} and doc["oscore"]["piv"] == 3
    # Same PIV, other plaintext: the sender restarted its sequence number.
    reuse = request(None, piv=3, client=False, token=b"\x34", mid=5, path=("1",))
    r = tr.unprotect(_dgram(SERVER, CLIENT, 10), reuse, False)
    assert r.decrypted and r.replay and tr.stats["nonce_reuses"] == 1


def test_response_without_request_and_group_flag_and_bad_option():
    tr = OscoreTracker(KeyStore(oscore=[CFG]))
    orphan = response(None, request(None, piv=1), piv=4)
    assert tr.unprotect(_dgram(SERVER, CLIENT), orphan, False).error == "request not seen"
    group = coap.Message(coap.CON, coap.POST, 1, b"", ((coap.OSCORE, h("2b4142432d2d")),), b"x" * 12)
    assert tr.unprotect(_dgram(CLIENT, SERVER), group, None).error == "group oscore not supported"
    bad = coap.Message(coap.CON, coap.POST, 1, b"", ((coap.OSCORE, h("06")),), b"x" * 12)
    assert tr.unprotect(_dgram(CLIENT, SERVER), bad, None).error == "malformed option"
    assert tr.stats["malformed"] == 1


def test_state_is_bounded_and_evictions_counted():
    tr = OscoreTracker(KeyStore(oscore=[CFG]), max_contexts=4)
    docs = []
    for i in range(12):
        src = ("192.0.2.1", 40000 + i)                   # one flow per request
        r = tr.unprotect(_dgram(src, SERVER, i + 1), request(None, piv=i, token=bytes([i])), True)
        assert r.decrypted
        docs += r.documents
    assert len(tr._pending) <= 4 and len(tr._flows) <= 4
    assert tr.stats["pending_evictions"] == 8 and tr.stats["flow_evictions"] == 8
    # Every evicted flow still produced its summary, and close() flushes the rest.
    docs += tr.close()
    assert sum(d["event"]["action"] == "context-summary" for d in docs) == 12


def test_reload_replaces_contexts():
    tr = OscoreTracker(KeyStore())
    assert tr.unprotect(_dgram(CLIENT, SERVER), request(None, piv=1), True).error == "no context"
    tr.reload(KeyStore(oscore=[CFG]))
    assert tr.unprotect(_dgram(CLIENT, SERVER, 2), request(None, piv=2, token=b"\x02"), True).decrypted
    tr.reload(KeyStore())
    assert tr.unprotect(_dgram(CLIENT, SERVER, 3), request(None, piv=3, token=b"\x03"), True).error == "no context"
