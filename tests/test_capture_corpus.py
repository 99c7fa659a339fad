"""Every capture of the external corpus and of pcaps/: our datagrams equal what tshark shows.

tshark (Wireshark's own pcap/pcapng/link/IP/UDP dissectors, with its default IP reassembly)
is the independent reference: same frames, same nanosecond timestamps, addresses, ports and
payload lengths, for every UDP frame.
"""
from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.capture import CaptureStats, read_files

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "corpus"
CAPTURES = sorted(p for p in list(CORPUS.rglob("*")) + list((ROOT / "pcaps").rglob("*"))
                  if p.name.endswith((".pcap", ".pcapng", ".pcapng.gz", ".pcap.gz")))


def tshark_udp(path: Path | str) -> list[tuple]:
    """(frame, ts_ns, src, sport, dst, dport, payload length) of every UDP frame, by tshark."""
    fields = ["frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport",
              "ip.dst", "ipv6.dst", "udp.dstport", "udp.length"]
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "udp", "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=l"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        fn, t, s4, s6, sp, d4, d6, dp, ulen = line.split("|")
        rows.append((int(fn), int(Decimal(t) * 10**9), s4 or s6, int(sp), d4 or d6, int(dp),
                     int(ulen) - 8))
    return rows


def ours(path: Path | str, stats: CaptureStats | None = None) -> list[tuple]:
    stats = stats if stats is not None else CaptureStats()
    return [(d.frame, d.ts_ns, d.src_ip, d.src_port, d.dst_ip, d.dst_port, len(d.payload))
            for d in read_files([str(path)], stats)]


def test_corpus_is_present():
    names = {p.name for p in CAPTURES}
    assert "leshan-thermostat-readings.pcapng" in names       # Ethernet / IPv6, pcapng
    assert "TD_COAP_CORE_01_v01.pcap" in names                 # NULL/loopback, pcap
    assert "Interop6-jim-cs.pcapng.gz" in names                # gzip, IPv6


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_datagrams_equal_tshark(path):
    stats = CaptureStats()
    got = ours(path, stats)
    want = tshark_udp(path)
    assert want, "tshark sees UDP in every corpus capture"
    assert got == want
    assert stats.errors == []
    assert stats.files == 1


def test_payload_bytes_equal_tshark():
    """Payload bytes too, not only lengths, on a capture with IPv6 and one with linux-sll."""
    for path in (CORPUS / "microschc-leshan-thermostat" / "leshan-thermostat-readings.pcapng",
                 CORPUS / "golioth-coap-pcap" / "golioth_basics_psk.pcapng"):
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "udp", "-T", "fields",
                              "-e", "udp.payload"], capture_output=True, text=True,
                             check=True).stdout.split()
        got = [d.payload.hex() for d in read_files([str(path)], CaptureStats())]
        assert got == out
