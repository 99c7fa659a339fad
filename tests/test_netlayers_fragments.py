"""IPv4/IPv6 fragment reassembly: scapy's fragment()/fragment6() cut, we reassemble."""
from __future__ import annotations

import importlib.util
import random
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (IP, UDP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, Raw, fragment,
                       fragment6, wrpcap)

from monitor.capture import CaptureStats, read_files
from monitor.ip_reassembly import Reassembler
from parsers.netlayers import NESTED_FRAGMENT, Fragment, Skip, Udp, decode, transport
from test_capture_corpus import ROOT, ours, tshark_udp

_spec = importlib.util.spec_from_file_location("variants", ROOT / "pcaps" /
                                               "make_capture_variants.py")
variants = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(variants)


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> Udp:
    return Udp(ip_address(src).packed, sport, ip_address(dst).packed, dport, payload)


def reassemble(frames: list[bytes], reasm: Reassembler | None = None) -> list[Udp]:
    if reasm is None:
        reasm = Reassembler()
    out = []
    for t, f in enumerate(frames):
        r = decode(101, f, len(f))
        if isinstance(r, Fragment):
            done = reasm.add(r, t)
            if done:
                out.append(transport(*done))
        else:
            out.append(r)
    return out


def test_variants_file_payloads_equal_originals():
    """The committed scapy capture: 4 fragmented datagrams and one whole one, all intact."""
    stats = CaptureStats()
    got = list(read_files([str(ROOT / "pcaps" / "variants-fragments.pcap")], stats))
    assert [d.payload for d in got] == [variants.payload(0, 3000), variants.payload(1, 4000),
                                        variants.payload(99, 24), variants.payload(2, 5000),
                                        variants.payload(3, 6000)]
    assert [d.frame for d in got] == [3, 6, 7, 12, 17]          # where tshark reassembles
    assert (stats.ip_fragments, stats.reassembled) == (16, 4)
    assert [(d.src_ip, d.dst_port) for d in got][3:] == [("2001:db8::1", 56840),
                                                         ("2001:db8::2", 56841)]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 9000), fragsize=st.sampled_from([8, 16, 64, 512, 576, 1480]),
       seed=st.integers(0, 2**32 - 1))
def test_ipv4_any_order(size, fragsize, seed):
    body = random.Random(seed).randbytes(size)
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", id=seed & 0xFFFF) / UDP(sport=1, dport=2) / Raw(body)
    frags = [bytes(f) for f in fragment(pkt, fragsize=fragsize)]
    random.Random(seed).shuffle(frags)
    assert reassemble(frags) == [udp("10.0.0.1", 1, "10.0.0.2", 2, body)]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1500, 9000), mtu=st.sampled_from([1280, 1500]),
       seed=st.integers(0, 2**32 - 1), dstopt=st.booleans())
def test_ipv6_any_order(size, mtu, seed, dstopt):
    body = random.Random(seed).randbytes(size)
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=seed)
    if dstopt:      # a header after the Fragment header is part of the fragmented payload
        pkt = pkt / IPv6ExtHdrDestOpt()
    pkt = pkt / UDP(sport=3, dport=4) / Raw(body)
    frags = [bytes(f) for f in fragment6(pkt, mtu)]
    assert len(frags) > 1
    random.Random(seed).shuffle(frags)
    assert reassemble(frags) == [udp("2001:db8::1", 3, "2001:db8::2", 4, body)]


def test_shuffled_fragments_in_a_file_match_tshark(tmp_path):
    """Interleaved fragments of three datagrams, out of order: tshark and we agree."""
    rnd = random.Random(7)
    frames = []
    for k in range(3):
        pkt = IP(src="10.0.0.1", dst="10.0.0.2", id=500 + k) / UDP(sport=1, dport=2) / Raw(
            variants.payload(k, 2000 + 700 * k))
        frames += fragment(pkt, fragsize=600)
    rnd.shuffle(frames)
    for i, f in enumerate(frames):
        f.time = 1700000000 + i / 1000
    path = tmp_path / "shuffled.pcap"
    wrpcap(str(path), frames, linktype=101)
    got = ours(path)
    assert len(got) == 3
    assert got == tshark_udp(path)


def _frags(ident: int, parts: list[tuple[int, bytes, bool]]) -> list[bytes]:
    """Hand-placed IPv4 fragments (offset bytes, data, more) of UDP datagram `ident`."""
    out = []
    for off, data, more in parts:
        out.append(bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=ident, proto=17,
                            flags="MF" if more else 0, frag=off // 8) / Raw(data)))
    return out


UDP_HDR = bytes(UDP(sport=1, dport=2, len=8 + 24))


def test_overlap_first_copy_wins_and_is_counted():
    """Bytes 8-16 arrive as A then B, bytes 16-24 as B then C: the first copy stays."""
    r = Reassembler()
    frames = _frags(9, [(0, UDP_HDR + b"A" * 8, True), (8, b"B" * 16, True),
                        (16, b"C" * 16, False)])
    got = reassemble(frames, r)
    assert got == [udp("10.0.0.1", 1, "10.0.0.2", 2, b"A" * 8 + b"B" * 8 + b"C" * 8)]
    assert r.stats.overlaps == 2 and r.stats.reassembled == 1


def test_duplicate_fragment_counted_not_overlap():
    r = Reassembler()
    frames = _frags(10, [(0, UDP_HDR + b"A" * 8, True), (0, UDP_HDR + b"A" * 8, True),
                         (16, b"C" * 16, False)])
    assert reassemble(frames, r) == [udp("10.0.0.1", 1, "10.0.0.2", 2, b"A" * 8 + b"C" * 16)]
    assert (r.stats.duplicates, r.stats.overlaps) == (1, 0)


def test_table_is_bounded_and_evicts_oldest():
    r = Reassembler(max_pending=2)
    for ident in (1, 2, 3):
        reassemble(_frags(ident, [(0, UDP_HDR + b"A" * 8, True)]), r)
    assert len(r) == 2 and r.stats.evictions == 1
    # datagram 1 was evicted: its last fragment completes nothing; 3 still completes
    assert reassemble(_frags(1, [(16, b"C" * 16, False)]), r) == []
    assert len(reassemble(_frags(3, [(16, b"C" * 16, False)]), r)) == 1


def test_timeout_in_packet_time():
    r = Reassembler(timeout_ns=1000)
    first = decode(101, _frags(4, [(0, UDP_HDR + b"A" * 8, True)])[0], 100)
    last = decode(101, _frags(4, [(16, b"C" * 16, False)])[0], 100)
    assert r.add(first, 0) is None
    assert r.add(last, 5000) is None            # 5 µs later in packet time: expired
    assert r.stats.timeouts == 1


def test_beyond_64k_is_refused():
    r = Reassembler()
    frag = decode(101, _frags(5, [(65528, b"x" * 16, False)])[0], 100)
    assert r.add(frag, 0) is None and r.stats.oversized == 1 and len(r) == 0


def test_crumbs_then_a_covering_fragment():
    """Hundreds of 8-byte pieces with holes, then one fragment over all: bounded work, no
    recursion, the first copies kept where they were."""
    r = Reassembler()
    frames = _frags(11, [(16 * i, bytes([i & 0xFF]) * 8, True) for i in range(1, 300)])
    frames += _frags(11, [(0, UDP_HDR.replace(b"\x00\x20", b"\x12\xc8", 1) + b"z" * 4792,
                           True), (4800, b"end-mark", False)])
    got = reassemble(frames, r)
    assert len(got) == 1 and len(got[0].payload) == 4800 and got[0].payload[-8:] == b"end-mark"
    assert got[0].payload[8:16] == b"\x01" * 8 and got[0].payload[16:24] == b"z" * 8
    assert (r.stats.overlaps, r.stats.duplicates) == (298, 1)    # crumb 122 is b"z" * 8


def test_too_many_parts_gives_the_datagram_up():
    r = Reassembler(max_parts=100)
    reassemble(_frags(12, [(16 * i, b"x" * 8, True) for i in range(150)]), r)
    assert r.stats.too_many_parts == 1 and len(r) == 1       # refused, then restarted


def test_byte_budget_evicts_oldest():
    r = Reassembler(max_bytes=10_000)
    for ident in range(5):
        reassemble(_frags(ident, [(0, b"x" * 4000, True)]), r)
    assert len(r) == 2 and r.stats.evictions == 3


def test_nested_ipv6_fragment_is_malformed():
    """A Fragment header inside reassembled data is an anomaly, not a second reassembly."""
    inner = bytes(IPv6ExtHdrFragment(id=2, m=1, nh=17) / UDP(sport=1, dport=2) / Raw(b"q" * 64))
    outer = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(
        id=1, nh=44, m=1) / Raw(inner[:32]))
    first = decode(101, outer, len(outer))
    assert isinstance(first, Fragment) and first.proto == 44
    assert transport(first, inner) == NESTED_FRAGMENT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 70), st.integers(0, 40), st.booleans(),
                          st.booleans()), min_size=1, max_size=30), st.booleans())
def test_random_fragments_never_raise(parts, v6):
    """Arbitrary offsets, sizes, flags and contents: payload or nothing, counted."""
    r = Reassembler(max_pending=4)
    for off8, size, more, junk in parts:
        data = (b"\xff" if junk else b"\x00") * size
        if v6:
            hdr = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(
                id=1, offset=off8, m=int(more), nh=17)
        else:
            hdr = IP(src="10.0.0.1", dst="10.0.0.2", id=1, proto=17,
                     flags="MF" if more else 0, frag=off8)
        f = bytes(hdr / Raw(data))
        frag = decode(101, f, len(f))
        if isinstance(frag, Fragment):
            done = r.add(frag, 0)
            if done:
                assert isinstance(transport(*done), (Udp, Skip))
        else:
            assert isinstance(frag, (Udp, Skip))
