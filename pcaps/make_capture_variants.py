#!/usr/bin/env python3
"""Regenerate pcaps/variants-*: link types, VLANs, IP fragments and timestamp formats.

Packets are built and written by scapy (an independent writer); the two-interface pcapng is
merged by Wireshark's `mergecap`. Nothing here uses lwm2m-monitor code. Deterministic: fixed
timestamps, IP ids and payloads, so a rerun gives the same bytes.

Usage: python3 pcaps/make_capture_variants.py        (needs scapy and mergecap)

Payloads: datagram number k of a file carries `payload(k, size)` below; the fragment file's
datagrams are `payload(k, 3000 + 1000 * k)`, so tests can rebuild the originals.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scapy.all import (CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, IP, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, Loopback, Raw, TCP, UDP, fragment, fragment6,
                       wrpcap)
from scapy.utils import EDecimal

HERE = Path(__file__).resolve().parent
T0 = EDecimal("1700000000.000000")


def payload(k: int, size: int) -> bytes:
    """Datagram k's payload: a CoAP-like first byte, then a counter pattern."""
    return bytes([0x40 + (k & 0x0F)]) + bytes((k * 7 + i) & 0xFF for i in range(size - 1))


def stamp(pkts, start: EDecimal, step: EDecimal):
    for i, p in enumerate(pkts):
        p.time = start + step * i
    return pkts


def v4(k: int, size: int = 24):
    return IP(src="192.0.2.1", dst="198.51.100.7", id=100 + k) / UDP(
        sport=56830, dport=5683) / Raw(payload(k, size))


def v6(k: int, size: int = 24):
    return IPv6(src="2001:db8::1", dst="2001:db8:0:1::20") / UDP(
        sport=5684, dport=56840) / Raw(payload(k, size))


def write_link_types() -> None:
    # Linux cooked v1 (113) and v2 (276): IPv4, IPv6 and one ARP-like non-IP frame.
    sll = [CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6, src=b"\0" * 8) / v4(1),
           CookedLinux(pkttype=4, lladdrtype=772, lladdrlen=6, src=b"\0" * 8) / v6(2),
           CookedLinux(pkttype=0, lladdrtype=1, proto=0x0806) / Raw(b"\0" * 28)]
    wrpcap(str(HERE / "variants-sll.pcap"), stamp(sll, T0, EDecimal("0.25")), linktype=113)
    sll2 = [CookedLinuxV2(ifindex=1, pkttype=0, lladdrtype=772, lladdrlen=6) / v4(3),
            CookedLinuxV2(ifindex=1, pkttype=4, lladdrtype=772, lladdrlen=6) / v6(4)]
    wrpcap(str(HERE / "variants-sll2.pcap"), stamp(sll2, T0 + 1, EDecimal("0.5")), linktype=276)
    # Raw IP (101), and the version-specific LINKTYPE_IPV4 (228) / LINKTYPE_IPV6 (229).
    raw = [v4(5), v6(6), IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=2)]
    wrpcap(str(HERE / "variants-rawip.pcap"), stamp(raw, T0 + 2, EDecimal("0.001")),
           linktype=101)
    wrpcap(str(HERE / "variants-rawip4.pcap"), stamp([v4(7)], T0 + 3, EDecimal(0)), linktype=228)
    wrpcap(str(HERE / "variants-rawip6.pcap"), stamp([v6(8)], T0 + 4, EDecimal(0)), linktype=229)
    # BSD NULL (0) with the AF value in the writer's byte order (little-endian here):
    # AF_INET 2 and the three BSD AF_INET6 values 24, 28, 30; and OpenBSD loop (108).
    null = [Loopback(type=2) / v4(9), Loopback(type=24) / v6(10), Loopback(type=28) / v6(11),
            Loopback(type=30) / v6(12)]
    wrpcap(str(HERE / "variants-null.pcap"), stamp(null, T0 + 5, EDecimal("0.01")), linktype=0)
    # Ethernet with 802.1Q, 802.1ad+802.1Q (QinQ) and no tag, nanosecond pcap.
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    vlan = [eth / Dot1Q(vlan=10) / v4(13),
            eth / Dot1AD(vlan=100) / Dot1Q(vlan=20) / v6(14),
            eth / v4(15)]
    wrpcap(str(HERE / "variants-vlan-nano.pcap"),
           stamp(vlan, EDecimal("1700000006.123456789"), EDecimal("0.000000001")), nano=True)


def write_fragments() -> None:
    """IPv4 fragments (one datagram sent in reverse order) and IPv6 fragments with ext headers."""
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pkts = []
    frags = fragment(v4(0, 3000), fragsize=1200)
    pkts += [eth / f for f in frags]
    pkts += [eth / f for f in reversed(fragment(v4(1, 4000), fragsize=1480))]
    pkts.append(eth / v4(99))                                  # unfragmented in between
    six = IPv6(src="2001:db8::1", dst="2001:db8:0:1::20") / IPv6ExtHdrHopByHop() / \
        IPv6ExtHdrFragment(id=0x1234) / UDP(sport=5684, dport=56840) / Raw(payload(2, 5000))
    pkts += [eth / f for f in fragment6(six, 1280)]
    six_dst = IPv6(src="2001:db8::2", dst="2001:db8:0:1::20") / IPv6ExtHdrRouting(
        addresses=[]) / IPv6ExtHdrFragment(id=0x5678) / IPv6ExtHdrDestOpt() / UDP(
        sport=5684, dport=56841) / Raw(payload(3, 6000))
    pkts += [eth / f for f in fragment6(six_dst, 1400)]
    wrpcap(str(HERE / "variants-fragments.pcap"), stamp(pkts, T0 + 7, EDecimal("0.002")))


def write_two_interfaces() -> None:
    """pcapng with two IDBs: Ethernet in microseconds and Linux cooked in nanoseconds."""
    a = HERE / "_if_a.pcap"
    b = HERE / "_if_b.pcap"
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    wrpcap(str(a), stamp([eth / v4(20), eth / v4(21)], T0 + 8, EDecimal("0.5")))
    sll = [CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6) / v6(22),
           CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6) / v6(23)]
    wrpcap(str(b), stamp(sll, EDecimal("1700000008.250000001"), EDecimal("0.5")), linktype=113,
           nano=True)
    try:
        subprocess.run(["mergecap", "-F", "pcapng", "-w",
                        str(HERE / "variants-two-interfaces.pcapng"), str(a), str(b)], check=True)
    finally:
        a.unlink()
        b.unlink()


if __name__ == "__main__":
    write_link_types()
    write_fragments()
    write_two_interfaces()
    sys.exit(0)
