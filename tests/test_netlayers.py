"""Link layers, IPv4/IPv6 and UDP: frames built by scapy, decoded by us, checked against
scapy's own dissection of the same bytes and against tshark reading them from a file."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import (IP, LLC, SNAP, TCP, UDP, CookedLinux, Dot1Q, Dot3, Ether, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, Raw, wrpcap)

from monitor.capture import CaptureStats, read_files
from parsers import netlayers
from parsers.netlayers import Fragment, Skip, Udp, decode
from test_capture_corpus import ROOT, ours, tshark_udp

# Explicit MACs: a bare Ether() makes scapy resolve the destination (slow, host-dependent).
def eth(**fields) -> Ether:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


ETH = eth()
V4 = IP(src="192.0.2.1", dst="198.51.100.7") / UDP(sport=56830, dport=5683) / Raw(b"\x40\x01ab")
V6 = IPv6(src="2001:db8::1", dst="2001:db8:0:0:1::20") / UDP(sport=5684, dport=56840) / Raw(
    b"\x16\xfe\xfd" + b"x" * 20)


def expect(pkt) -> Udp:
    """What scapy's dissector says about the same bytes."""
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    return Udp(ipaddress.ip_address(ip.src).packed, pkt[UDP].sport,
               ipaddress.ip_address(ip.dst).packed, pkt[UDP].dport, bytes(pkt[UDP].payload))


@pytest.mark.parametrize("ip", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("linktype, frame", [
    (1, lambda ip: ETH.copy() / ip),
    (1, lambda ip: ETH.copy() / Dot1Q(vlan=5) / ip),
    (1, lambda ip: eth(type=0x88A8) / Dot1Q(vlan=5, type=0x8100) / Dot1Q(vlan=6) / ip),
    (1, lambda ip: Dot3(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / LLC(
        dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800 if IP in ip else 0x86DD) / ip),
    (113, lambda ip: CookedLinux() / ip),
    (101, lambda ip: ip), (12, lambda ip: ip), (14, lambda ip: ip),
], ids=["eth", "vlan", "qinq", "snap", "sll", "raw101", "raw12", "raw14"])
def test_link_types_match_scapy(linktype, frame, ip):
    pkt = frame(ip.copy())
    data = bytes(pkt)
    assert decode(linktype, data, len(data)) == expect(Ether(data) if linktype == 1 else
                                                       CookedLinux(data) if linktype == 113 else
                                                       (IP if ip is V4 else IPv6)(data))


def test_ethernet_padding_is_not_payload():
    """A short frame padded to 60 bytes: the IP length, not the frame, bounds the datagram."""
    data = bytes(ETH.copy() / V4) + b"\0" * 20
    assert decode(1, data, len(data)).payload == b"\x40\x01ab"


@pytest.mark.parametrize("linktype, af_bytes", [
    (0, struct.pack("<I", 2)), (0, struct.pack(">I", 2)),
    (0, struct.pack("<I", 24)), (0, struct.pack(">I", 24)),
    (0, struct.pack("<I", 28)), (0, struct.pack(">I", 28)),
    (0, struct.pack("<I", 30)), (0, struct.pack(">I", 30)),
    (108, struct.pack(">I", 2)), (108, struct.pack(">I", 24)),
])
def test_bsd_loopback_families_both_byte_orders(tmp_path, linktype, af_bytes):
    """NULL/loop headers as little- and big-endian hosts write them; tshark agrees."""
    ip = V4 if af_bytes in (struct.pack("<I", 2), struct.pack(">I", 2)) else V6
    data = af_bytes + bytes(ip)
    path = tmp_path / "loop.pcap"
    wrpcap(str(path), [Raw(data)], linktype=linktype)
    assert decode(linktype, data, len(data)) == expect(ip)
    assert ours(path) == tshark_udp(path)


def test_linux_cooked_v2():
    path = ROOT / "pcaps" / "variants-sll2.pcap"
    got = list(read_files([str(path)], CaptureStats()))
    assert [(d.src_ip, d.dst_port) for d in got] == [("192.0.2.1", 5683),
                                                     ("2001:db8::1", 56840)]


def test_ipv4_options():
    pkt = IP(src="10.1.1.1", dst="10.2.2.2", options=b"\x94\x04\x00\x00") / UDP(
        sport=1, dport=2) / Raw(b"opt")
    data = bytes(pkt)
    assert data[0] & 15 == 6
    assert decode(101, data, len(data)) == expect(IP(data))


def test_ipv6_extension_headers_walked():
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / \
        IPv6ExtHdrRouting(addresses=["2001:db8::3"]) / IPv6ExtHdrDestOpt() / UDP(
            sport=7, dport=8) / Raw(b"ext")
    data = bytes(pkt)
    assert decode(101, data, len(data)) == expect(IPv6(data))


def test_ipv6_atomic_fragment_is_a_datagram():
    """RFC 6946: a Fragment header with offset 0 and M=0 is no fragment."""
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=1) / UDP(
        sport=7, dport=8) / Raw(b"atomic")
    data = bytes(pkt)
    assert decode(101, data, len(data)) == expect(IPv6(data))


def test_fragment_result():
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", id=7, flags="MF") / UDP(sport=1, dport=2) / Raw(
        b"x" * 16)
    data = bytes(pkt)
    r = decode(101, data, len(data))
    assert isinstance(r, Fragment)
    assert (r.offset, r.more, r.proto, r.key[1], r.ipv6) == (0, True, 17, bytes([10, 0, 0, 1]),
                                                              False)
    assert r.data == bytes(pkt[UDP])


@pytest.mark.parametrize("pkt, kind", [
    (ETH.copy() / IP() / TCP(), "non_udp"),
    (ETH.copy() / IPv6() / TCP(), "non_udp"),
    (eth(type=0x0806) / Raw(b"\0" * 28), "non_ip"),
    (eth(type=0x88CC) / Raw(b"\0" * 28), "non_ip"),
])
def test_not_udp_is_a_result(pkt, kind):
    data = bytes(pkt)
    r = decode(1, data, len(data))
    assert isinstance(r, Skip) and r.kind == kind


def test_unknown_link_type_is_non_ip():
    assert decode(147, b"\0" * 40, 40).kind == "non_ip"


def test_cut_frame_is_truncated_not_malformed():
    data = bytes(ETH.copy() / V6)
    for cut in (10, 20, 54, 61):
        assert decode(1, data[:cut], len(data)) == netlayers.TRUNCATED


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b[:14] + bytes([0x45]) + b[15:16] + struct.pack("!H", 10) + b[18:],
     "IPv4 header length invalid"),
    (lambda b: b[:14] + bytes([0x65]) + b[15:], "IP version mismatch"),
    (lambda b: b[:14] + bytes([0x43]) + b[15:], "IPv4 header length invalid"),
    (lambda b: b[:38] + struct.pack("!H", 4) + b[40:], "UDP length below header size"),
    (lambda b: b[:38] + struct.pack("!H", 400) + b[40:], "UDP length exceeds IP payload"),
])
def test_malformed_reasons(mutate, reason):
    data = mutate(bytes(ETH.copy() / V4))
    assert decode(1, data, len(data)) == Skip("malformed", reason)


def test_snaplen_cut_capture_counts_truncated_frames(tmp_path):
    """editcap -s 50 cuts IPv6 frames inside the UDP header: counted, not decoded."""
    import subprocess
    src = ROOT / ".." / "shared" / "corpus" / "microschc-leshan-thermostat" / \
        "leshan-thermostat-readings.pcapng"
    cut = tmp_path / "cut.pcapng"
    subprocess.run(["editcap", "-r", "-s", "60", str(src), str(cut), "1-50"], check=True,
                   capture_output=True)
    stats = CaptureStats()
    assert list(read_files([str(cut)], stats)) == []
    assert stats.frames == 50 and stats.truncated_frames == 50


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]),
       data=st.binary(max_size=120), cut=st.booleans())
def test_arbitrary_bytes_never_raise(linktype, data, cut):
    r = decode(linktype, data, len(data) + cut)
    assert isinstance(r, (Udp, Fragment, Skip))


REAL_FRAMES = (bytes(ETH / Dot1Q() / V4), bytes(ETH / Dot1Q() / V6))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.binary(min_size=1, max_size=8), st.booleans())
def test_cut_and_corrupted_real_frames_never_raise(at, junk, v6):
    data = bytearray(REAL_FRAMES[v6])
    at = at % len(data)
    data[at:at + len(junk)] = junk
    r = decode(1, bytes(data), len(data))
    assert isinstance(r, (Udp, Fragment, Skip))
    r = decode(1, bytes(data[:at]), len(data))
    assert isinstance(r, (Udp, Fragment, Skip))
