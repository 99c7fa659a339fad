"""The flow and DTLS-session tables evict the least recently used entry, also when a datagram
follows one of the same flow (the tables then skip their reordering: the entry is already the
newest). Datagrams carry shared `ends`, as the capture reader makes them."""
from __future__ import annotations

import warnings

from aiocoap import message as M, numbers as N

from monitor.datagram import datagram_of, flow_key
from monitor.dtls_tracker import DtlsTracker
from monitor.keys import KeyStore
from monitor.pipeline import FLOW_IDLE_NS, Pipeline, PipelineConfig

SERVER = ("192.0.2.10", 5684)
S = 1_000_000_000


def _ends(port: int) -> tuple[tuple, tuple]:
    client = ("198.51.100.7", port)
    key = flow_key(client, SERVER)
    return (client, SERVER, key), (SERVER, client, key)      # both directions share the key


def _coap(mid: int, code=N.codes.GET, mtype=N.types.CON) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = M.Message(mtype=mtype, code=code, mid=mid, token=b"t")
    m.opt.uri_path = ("3", "0")
    return m.encode()


def _dtls_app_record(seq: int) -> bytes:
    return bytes([23, 0xFE, 0xFD, 0, 1]) + seq.to_bytes(6, "big") + (4).to_bytes(2, "big") + b"\x00" * 4


def test_pipeline_evicts_the_least_recent_flow_after_a_same_flow_reply():
    p = Pipeline(PipelineConfig(max_flows=2))
    a, b, c = _ends(40001), _ends(40002), _ends(40003)
    t = 1_700_000_000 * S
    p.feed(datagram_of(t, a[0], _coap(1), 1, "t"))
    p.feed(datagram_of(t + 1, b[0], _coap(2), 2, "t"))
    p.feed(datagram_of(t + 2, a[0], _coap(3), 3, "t"))        # a again: now the newest
    p.feed(datagram_of(t + 3, a[1], _coap(3, N.codes.CONTENT, N.types.ACK), 4, "t"))   # same flow
    p.feed(datagram_of(t + 4, c[0], _coap(5), 5, "t"))        # one flow too many: b goes
    assert list(p.flows) == [a[0][2], c[0][2]]
    assert p.stats.flows_evicted == 1


def test_a_flow_swept_as_idle_comes_back_as_a_new_entry():
    p = Pipeline(PipelineConfig())
    a = _ends(40001)
    t = 1_700_000_000 * S
    p.feed(datagram_of(t, a[0], _coap(1), 1, "t"))
    # long after, the same flow: the sweep this datagram runs first drops `a` as idle; the
    # datagram must then make a new entry, not find the dropped one as "the newest"
    later = t + 2 * FLOW_IDLE_NS
    p.feed(datagram_of(later, a[0], _coap(2), 2, "t"))
    assert a[0][2] in p.flows and p.flows[a[0][2]].last_ts == later


def test_dtls_sessions_are_evicted_least_recent_first_after_a_same_session_record():
    t = DtlsTracker(KeyStore(), max_sessions=2)
    a, b, c = _ends(40001), _ends(40002), _ends(40003)
    ts = 1_700_000_000 * S
    t.feed(datagram_of(ts, a[0], _dtls_app_record(1), 1, "t"))
    t.feed(datagram_of(ts + 1, b[0], _dtls_app_record(1), 2, "t"))
    t.feed(datagram_of(ts + 2, a[0], _dtls_app_record(2), 3, "t"))
    t.feed(datagram_of(ts + 3, a[1], _dtls_app_record(1), 4, "t"))   # the same session, reply
    res = t.feed(datagram_of(ts + 4, c[0], _dtls_app_record(1), 5, "t"))
    (evicted,) = res.documents
    assert evicted["client"]["port"] == 40002
    assert [d["client"]["port"] for d in t.close()] == [40001, 40003]
