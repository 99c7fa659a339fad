"""LwM2M semantics the real-peer captures do not all exercise: NAT rebinding, alternate path,
unanswered requests, retransmissions, resets, lifetimes. Messages are encoded by aiocoap."""
from __future__ import annotations

import warnings

from aiocoap import message as M, numbers as N

from monitor.datagram import Datagram
from monitor.pipeline import Pipeline, PipelineConfig

SERVER = ("192.0.2.10", 5683)
CLIENT = ("198.51.100.7", 40001)
S = 1_000_000_000


def enc(mtype, code, mid, token=b"", **opts) -> bytes:
    payload = opts.pop("payload", b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = M.Message(mtype=mtype, code=code, mid=mid, token=token, payload=payload)
    for k, v in opts.items():
        setattr(m.opt, k, v)
    return m.encode()


class Run:
    def __init__(self):
        self.p = Pipeline(PipelineConfig())
        self.docs: list[dict] = []
        self.t = 1_700_000_000 * S
        self.frame = 0

    def send(self, src, dst, data, dt=0.01):
        self.t += int(dt * S)
        self.frame += 1
        self.docs += self.p.feed(Datagram(self.t, src[0], src[1], dst[0], dst[1], data, self.frame, "test"))

    def close(self):
        self.docs += self.p.close()
        return [d for d in self.docs if d["event"]["dataset"] == "lwm2m.operation"]

    def register(self, client=CLIENT, ep="ep-1", lt=300, payload=b"</1/0>,</3/0>", loc="abcd"):
        self.send(client, SERVER, enc(N.CON, N.POST, 1, b"r1", uri_path=("rd",),
                                      uri_query=(f"ep={ep}", f"lt={lt}", "lwm2m=1.1"), content_format=40,
                                      payload=payload))
        self.send(SERVER, client, enc(N.ACK, N.CREATED, 1, b"r1", location_path=("rd", loc)))


def test_operations_after_nat_rebinding_keep_the_endpoint():
    r = Run()
    r.register()
    moved = ("203.0.113.9", 61000)
    r.send(moved, SERVER, enc(N.CON, N.POST, 2, b"u1", uri_path=("rd", "abcd")))
    r.send(SERVER, moved, enc(N.ACK, N.CHANGED, 2, b"u1"))
    r.send(SERVER, moved, enc(N.CON, N.GET, 77, b"g1", uri_path=("3", "0", "0"), accept=0))
    r.send(moved, SERVER, enc(N.ACK, N.CONTENT, 77, b"g1", content_format=0, payload=b"ACME"))
    ops = r.close()
    assert [(d["event"]["action"], d["lwm2m"]["endpoint"]) for d in ops] == [
        ("register", "ep-1"), ("update", "ep-1"), ("read", "ep-1")]
    assert ops[2]["client"] == {"ip": moved[0], "port": moved[1]}
    assert r.p.registry.stats.rebinding == 1


def test_alternate_path_is_honoured():
    r = Run()
    r.register(payload=b'</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>')
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 5, b"g", uri_path=("lwm2m", "3", "0", "0"), accept=0))
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 5, b"g", content_format=0, payload=b"ACME"))
    ops = r.close()
    assert ops[1]["event"]["action"] == "read" and ops[1]["lwm2m"]["path"] == "/3/0/0"
    assert ops[1]["lwm2m"]["values"][0]["value"] == "ACME"


def test_unanswered_request_is_emitted_with_outcome_unknown():
    r = Run()
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.POST, 9, b"x", uri_path=("3", "0", "4")))
    ops = r.close()
    assert ops[-1]["event"]["action"] == "execute" and ops[-1]["event"]["outcome"] == "unknown"
    assert ops[-1]["lwm2m"]["endpoint"] == "ep-1"


def test_retransmission_counted_once():
    r = Run()
    r.register()
    req = enc(N.CON, N.PUT, 11, b"w", uri_path=("1", "0", "1"), content_format=0, payload=b"60")
    r.send(SERVER, CLIENT, req)
    r.send(SERVER, CLIENT, req, dt=2)           # retransmitted after ACK_TIMEOUT
    r.send(CLIENT, SERVER, enc(N.ACK, N.CHANGED, 11, b"w"))
    ops = r.close()
    writes = [d for d in ops if d["event"]["action"] == "write"]
    assert len(writes) == 1 and writes[0]["coap"]["retransmissions"] == 1


def test_reset_answer_is_a_failure():
    r = Run()
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 12, b"q", uri_path=("3", "0"), accept=11542))
    r.send(CLIENT, SERVER, enc(N.RST, N.EMPTY, 12))
    ops = r.close()
    assert ops[-1]["event"]["action"] == "read" and ops[-1]["event"]["outcome"] == "failure"


def test_registration_expires_by_lifetime():
    r = Run()
    r.register(lt=60)
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 13, b"a", uri_path=("3", "0", "0")), dt=600)
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 13, b"a", content_format=0, payload=b"x"))
    ops = r.close()
    assert "endpoint" not in ops[-1]["lwm2m"]
    assert r.p.registry.stats.expired == 1


def test_same_endpoint_from_two_addresses_is_a_fact():
    r = Run()
    r.register()
    r.register(client=("198.51.100.99", 40002), loc="ef01")
    ops = r.close()
    assert ops[1]["lwm2m"]["registration"]["duplicate_from"] == "198.51.100.7:40001"
    assert "duplicate_from" not in ops[0]["lwm2m"]["registration"]


def test_reactive_cancel_by_reset_to_a_notification():
    r = Run()
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 20, b"ob", uri_path=("3", "0", "9"), observe=0))
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 20, b"ob", observe=1, content_format=0, payload=b"80"))
    r.send(CLIENT, SERVER, enc(N.CON, N.CONTENT, 500, b"ob", observe=2, content_format=0, payload=b"79"))
    r.send(SERVER, CLIENT, enc(N.RST, N.EMPTY, 500))
    ops = r.close()
    assert [d["event"]["action"] for d in ops] == ["register", "observe", "notify", "cancel-observation"]
    assert ops[2]["lwm2m"]["values"][0]["value"] == 79


def test_an_observation_keeps_only_the_request_side():
    """A fleet holds one observation per observed resource for hours: it must not keep the first
    response's message and datagram alive (notifications repeat the request, not the response)."""
    r = Run()
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 20, b"ob", uri_path=("3303", "0", "5700"), observe=0))
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 20, b"ob", observe=1, content_format=0, payload=b"21.5"))
    flow = next(iter(r.p.flows.values()))
    (obs,) = flow.observations.values()
    assert obs.response is None and obs.resp_dgram is None and obs.resp_carrier is None
    assert obs.request.uri_path == ("3303", "0", "5700") and obs.req_dgram.src == SERVER
    r.send(CLIENT, SERVER, enc(N.NON, N.CONTENT, 501, b"ob", observe=2, content_format=0, payload=b"22.5"))
    r.send(SERVER, CLIENT, enc(N.RST, N.EMPTY, 501))
    ops = r.close()
    assert [(d["event"]["action"], d["lwm2m"]["path"], d["coap"]["mid"]) for d in ops[1:]] == [
        ("observe", "/3303/0/5700", 20), ("notify", "/3303/0/5700", 20),
        ("cancel-observation", "/3303/0/5700", 20)]
    assert ops[2]["lwm2m"]["values"][0]["value"] == 22.5
    assert ops[2]["coap"]["response"]["mid"] == 501 and ops[2]["lwm2m"]["endpoint"] == "ep-1"


def test_coap_found_by_content_on_any_port_and_garbage_ignored():
    r = Run()
    odd_server = ("192.0.2.10", 7777)
    r.send(CLIENT, odd_server, enc(N.CON, N.POST, 1, b"b", uri_path=("bs",), uri_query=("ep=ep-9",)))
    r.send(odd_server, CLIENT, enc(N.ACK, N.CHANGED, 1, b"b"))
    r.send(CLIENT, ("192.0.2.53", 53), bytes.fromhex("abcd01000001000000000000"))   # DNS, not CoAP
    ops = r.close()
    assert [(d["event"]["action"], d["lwm2m"]["endpoint"]) for d in ops] == [("bootstrap-request", "ep-9")]
    assert r.p.stats.other_udp == 1 and not r.p.stats.decode_errors


def test_registry_cap_evicts_every_index():
    from monitor.registrations import Registration, Registry
    reg = Registry(max_registrations=3)
    for i in range(10):
        reg.register(Registration(endpoint=f"ep-{i}", client=("10.0.0.1", 1000 + i), server=SERVER,
                                  location=f"/rd/{i}", registered_ns=i, updated_ns=i))
    assert len(reg.by_client) == 3 and len(reg.by_location) == 3 and len(reg.by_endpoint) == 3
    assert reg.stats.evicted == 7


def test_deduplication_table_is_bounded_across_flows_and_forgets_oldest_first():
    r = Run()
    r.p.matcher.max_dedup = 16
    clients = [("198.51.100.%d" % i, 40000 + i) for i in range(1, 41)]
    for i, client in enumerate(clients):          # 40 flows, 2 messages each: 80 > 16 entries
        r.register(client=client, ep=f"ep-{i}", loc=f"l{i}")
    assert r.p.matcher.dedup_entries == 16
    last = clients[-1]
    req = enc(N.CON, N.GET, 30, b"n", uri_path=("3", "0", "0"))
    r.send(SERVER, last, req)
    r.send(SERVER, last, req, dt=2)               # recent: still a retransmission
    r.send(last, SERVER, enc(N.ACK, N.CONTENT, 30, b"n", content_format=0, payload=b"x"))
    first = clients[0]                            # its register was forgotten: a retransmission
    r.send(first, SERVER, enc(N.CON, N.POST, 1, b"r1", uri_path=("rd",),   # now counts as new
                              uri_query=("ep=ep-0", "lt=300", "lwm2m=1.1"), content_format=40,
                              payload=b"</1/0>"))
    ops = r.close()
    reads = [d for d in ops if d["event"]["action"] == "read"]
    assert len(reads) == 1 and reads[0]["coap"]["retransmissions"] == 1
    assert [d["lwm2m"]["endpoint"] for d in ops if d["event"]["action"] == "register"].count("ep-0") == 2
    assert r.p.matcher.dedup_entries <= 16 and r.p.state_sizes()["coap_dedup_entries"] <= 16


def test_reset_cancels_only_notifications_still_remembered():
    r = Run()
    r.p.matcher.max_notification_mids = 2
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 20, b"ob", uri_path=("3", "0", "9"), observe=0))
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 20, b"ob", observe=1, content_format=0, payload=b"80"))
    for i, mid in enumerate((500, 501, 502)):     # NON notifications; only the newest 2 MIDs kept
        r.send(CLIENT, SERVER, enc(N.NON, N.CONTENT, mid, b"ob", observe=2 + i, content_format=0, payload=b"79"))
    r.send(SERVER, CLIENT, enc(N.RST, N.EMPTY, 500))   # forgotten: nothing to cancel
    actions = [d["event"]["action"] for d in r.p.close() + r.docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert "cancel-observation" not in actions
    r = Run()
    r.p.matcher.max_notification_mids = 2
    r.register()
    r.send(SERVER, CLIENT, enc(N.CON, N.GET, 20, b"ob", uri_path=("3", "0", "9"), observe=0))
    r.send(CLIENT, SERVER, enc(N.ACK, N.CONTENT, 20, b"ob", observe=1, content_format=0, payload=b"80"))
    for i, mid in enumerate((500, 501, 502)):
        r.send(CLIENT, SERVER, enc(N.NON, N.CONTENT, mid, b"ob", observe=2 + i, content_format=0, payload=b"79"))
    r.send(SERVER, CLIENT, enc(N.RST, N.EMPTY, 501))   # still remembered: cancels
    ops = r.close()
    assert [d["event"]["action"] for d in ops][-1] == "cancel-observation"
