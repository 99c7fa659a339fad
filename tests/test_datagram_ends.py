"""The capture reader hands every datagram of a flow the same address and flow-key tuples
(`Datagram.flow`), both directions alike, so the flow tables find them by identity. These
tests pin what that sharing must keep: equal values to a freshly built key, the same objects
within a flow, and a bounded cache that still gives equal keys once emptied."""
from __future__ import annotations

import pytest

from captures import project_captures
from monitor.capture import AddressText, CaptureStats, read_files
from monitor.datagram import Datagram, flow_key
from parsers.pcapfile import split_ends, udp_ends

PCAPS = {p.rsplit("/", 1)[-1]: p for p in project_captures()}


def _datagrams(name: str) -> list[Datagram]:
    return list(read_files([PCAPS[name]], CaptureStats()))


@pytest.mark.parametrize("name", ["aiocoap-lwm2m12.pcap", "dtls-mbedtls-psk-aes128-ccm8.pcap"])
def test_flow_key_is_shared_by_both_directions_and_equals_a_fresh_one(name):
    dgrams = _datagrams(name)
    assert dgrams
    by_flow: dict[tuple, Datagram] = {}
    for d in dgrams:
        assert d.src == (d.src_ip, d.src_port) and d.dst == (d.dst_ip, d.dst_port)
        assert d.flow == flow_key((d.src_ip, d.src_port), (d.dst_ip, d.dst_port))
        first = by_flow.setdefault(d.flow, d)
        assert d.flow is first.flow                       # one object per flow, either way
        assert d.src in (first.src, first.dst)
        assert d.src is (first.src if d.src == first.src else first.dst)
    both_ways = [k for k in by_flow if any(d.flow == k and d.src == k[0] for d in dgrams)
                 and any(d.flow == k and d.src == k[1] for d in dgrams)]
    assert both_ways, "the capture should hold replies"


def test_a_datagram_built_by_hand_gets_the_same_key_as_one_read_from_a_capture():
    d = _datagrams("aiocoap-lwm2m12.pcap")[0]
    again = Datagram(d.ts_ns, d.src_ip, d.src_port, d.dst_ip, d.dst_port, d.payload, d.frame, d.source)
    assert again.flow == d.flow and again == d
    assert again._replace(src_port=1).flow == flow_key((d.src_ip, 1), d.dst)


@pytest.mark.parametrize("src,sport,dst,dport", [
    (bytes([10, 0, 0, 2]), 56830, bytes([10, 0, 0, 1]), 5683),
    (bytes(range(16)), 5684, bytes(range(16, 32)), 0),
])
def test_ends_bytes_round_trip(src, sport, dst, dport):
    raw = udp_ends(src, sport, dst, dport)
    assert len(raw) == 2 * len(src) + 4
    assert split_ends(raw) == (src, sport, dst, dport)


def test_the_ends_cache_is_bounded_and_keeps_giving_equal_keys():
    names = AddressText()
    names.MAX_ENDS = 8
    a = bytes([192, 0, 2, 1])
    keys = []
    for port in range(40000, 40020):
        raw = udp_ends(a, port, bytes([192, 0, 2, 9]), 5683)
        e = names.ends(raw)
        assert len(names.ends_cache) <= 8
        keys.append(e[2])
        back = names.ends(udp_ends(bytes([192, 0, 2, 9]), 5683, a, port))
        assert back[2] is e[2] or len(names.ends_cache) == 1   # the reply shares the flow key
        assert back[0] == e[1] and back[1] == e[0]
    assert keys[0] == flow_key(("192.0.2.1", 40000), ("192.0.2.9", 5683))
    assert names.ends(udp_ends(a, 40000, bytes([192, 0, 2, 9]), 5683))[2] == keys[0]
