"""pcap/pcapng file formats: byte orders, resolutions, block kinds, secrets, chunked feeding.

Files come from independent writers (editcap, mergecap, scapy) or are built here byte by
byte from the pcapng spec; either way tshark reads the same file and is the reference.
"""
from __future__ import annotations

import gzip
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether, Raw

from monitor.capture import CaptureStats, read_files
from parsers.errors import Malformed, Truncated
from parsers.pcapfile import (SECRETS_TLS_KEYLOG, Interface, Packet, Reader, Secrets)
from test_capture_corpus import CORPUS, ROOT, ours, tshark_udp

LESHAN = CORPUS / "microschc-leshan-thermostat" / "leshan-thermostat-readings.pcapng"
DSB = CORPUS / "wireshark" / "dtls12-aes128ccm8-dsb.pcapng"
COAP_PCAP = CORPUS / "wireshark-wiki" / "coap-cbor.pcap"


def editcap(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["editcap", *args, str(src), str(dst)], check=True, capture_output=True)
    return dst


def records(data: bytes, chunk: int | None = None) -> list:
    r = Reader()
    out = []
    if chunk is None:
        out += r.feed(data)
    else:
        for i in range(0, len(data), chunk):
            out += r.feed(data[i:i + chunk])
    r.close()
    return out


@pytest.mark.parametrize("fmt", ["pcap", "nsecpcap", "modpcap", "pcapng"])
def test_editcap_formats_equal_tshark(tmp_path, fmt):
    """editcap rewrites a real capture in each format; every one reads as tshark reads it."""
    out = editcap(COAP_PCAP, tmp_path / f"x.{fmt}", "-F", fmt)
    got = ours(out)
    assert len(got) == 164
    assert got == tshark_udp(out)


def _byteswap_pcap(data: bytes) -> bytes:
    """The same pcap written by a big-endian host: every header field swapped."""
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", data, 0)))
    pos = 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        out += struct.pack(">IIII", sec, frac, incl, orig) + data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
    return bytes(out)


@pytest.mark.parametrize("fmt", ["pcap", "nsecpcap"])
def test_big_endian_pcap(tmp_path, fmt):
    little = editcap(COAP_PCAP, tmp_path / "le.pcap", "-F", fmt)
    big = tmp_path / "be.pcap"
    big.write_bytes(_byteswap_pcap(little.read_bytes()))
    assert big.read_bytes()[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    got = ours(big)
    assert got == tshark_udp(big) == ours(little)


def test_nanosecond_timestamps_kept(tmp_path):
    """Nanosecond digits survive: scapy's nano pcap in pcaps/ (…006.123456789 + k ns)."""
    got = ours(ROOT / "pcaps" / "variants-vlan-nano.pcap")
    assert [t for _, t, *_ in got] == [1700000006_123456789, 1700000006_123456790,
                                       1700000006_123456791]


def test_two_interfaces_link_types_and_resolutions():
    """mergecap's pcapng: IDB 0 Ethernet/µs, IDB 1 Linux cooked/ns, interleaved in time."""
    path = ROOT / "pcaps" / "variants-two-interfaces.pcapng"
    recs = records(path.read_bytes())
    ifaces = [r for r in recs if isinstance(r, Interface)]
    assert [(i.index, i.linktype) for i in ifaces] == [(0, 1), (1, 113)]
    pkts = [r for r in recs if isinstance(r, Packet)]
    assert [(p.interface, p.ts_ns) for p in pkts] == [
        (0, 1700000008_000000000), (1, 1700000008_250000001),
        (0, 1700000008_500000000), (1, 1700000008_750000001)]
    assert ours(path) == tshark_udp(path)


# -- pcapng built from the spec: both byte orders, tsresol 2^-20, tsoffset, EPB/SPB/OPB --------

def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I",
                                                                             12 + len(body))


def _opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _packet(k: int) -> bytes:
    return bytes(Ether() / IP(src=f"10.0.0.{k}", dst="10.0.1.1") / UDP(sport=5683 + k, dport=5683)
                 / Raw(bytes([0x40, 1, 0, k]) + b"x" * k))


def _handmade_pcapng() -> tuple[bytes, list[int]]:
    """Two sections (little-, then big-endian); returns the file and the EPB/OPB tick values."""
    out = b""
    ticks = []
    k = 0
    for e in "<>":
        out += _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        # if0: Ethernet, ticks of 2^-20 s, offset 100 s; if1: Ethernet, ticks of 10^-3 s
        out += _block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + _opt(e, 9, b"\x94")
                      + _opt(e, 14, struct.pack(e + "q", 100)) + _opt(e, 0, b""))
        out += _block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + _opt(e, 9, b"\x03")
                      + _opt(e, 2, b"eth1") + _opt(e, 0, b""))
        out += _block(e, 4, struct.pack(e + "HH", 0, 0))                      # NRB, empty
        for ifid, tick in ((0, (1700000000 << 20) + 12345 + k), (1, 1700000000_001 + k)):
            k += 1
            p = _packet(k)
            ticks.append(tick)
            out += _block(e, 6, struct.pack(e + "IIIII", ifid, tick >> 32, tick & 0xFFFFFFFF,
                                             len(p), len(p)) + p)
        k += 1
        p = _packet(k)
        out += _block(e, 3, struct.pack(e + "I", len(p)) + p)                   # SPB
        k += 1
        p = _packet(k)
        tick = (1700000000 << 20) + 99999
        ticks.append(tick)
        out += _block(e, 2, struct.pack(e + "HHIIII", 0, 0, tick >> 32, tick & 0xFFFFFFFF,
                                        len(p), len(p)) + p)                    # OPB
        out += _block(e, 5, struct.pack(e + "III", 0, 0, 0))                   # ISB
        out += _block(e, 0x0BAD, b"\x00\x00\x7e\x8f" + b"custom")               # custom block
        out += _block(e, 0x12345678, b"unknown")                               # unknown block
    return out, ticks


def test_handmade_pcapng_equals_tshark(tmp_path):
    data, _ = _handmade_pcapng()
    path = tmp_path / "hand.pcapng"
    path.write_bytes(data)
    got, want = ours(path), tshark_udp_with_spb(path)
    assert len(got) == 8
    # tshark shows no time for an SPB; we give it its predecessor's time, to stay monotonic.
    for g, w in zip(got, want):
        if w[1] is None:
            assert g[1] == got[got.index(g) - 1][1]
            g, w = g[:1] + g[2:], w[:1] + w[2:]
        assert g == w


def tshark_udp_with_spb(path: Path) -> list[tuple]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "udp", "-T", "fields",
                          "-E", "separator=|",
                          "-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.src",
                          "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
                          "-e", "udp.length"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        fn, t, s, sp, d, dp, ul = line.split("|")
        rows.append((int(fn), int(Decimal(t) * 10**9) if t else None, s, int(sp), d, int(dp),
                     int(ul) - 8))
    return rows


def test_handmade_pcapng_timestamps_exact():
    """2^-20 ticks convert exactly (truncated to ns) and if_tsoffset adds whole seconds."""
    data, ticks = _handmade_pcapng()
    pkts = [r for r in records(data) if isinstance(r, Packet)]
    t_if0 = lambda t: (t * 10**9 >> 20) + 100 * 10**9
    t_if1 = lambda t: t * 10**6
    expect = []
    for a, b, c in (ticks[0:3], ticks[3:6]):             # per section: EPB, EPB, SPB, OPB
        expect += [t_if0(a), t_if1(b), t_if1(b), t_if0(c)]
    assert [p.ts_ns for p in pkts] == expect
    assert [p.interface for p in pkts] == [0, 1, 0, 0] * 2


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_chunked_feed_equals_whole(chunk):
    data, _ = _handmade_pcapng()
    assert records(data, chunk) == records(data)


def test_chunked_feed_real_capture():
    data = COAP_PCAP.read_bytes()
    assert records(data, 17) == records(data)
    data = LESHAN.read_bytes()[:200_000]
    r1, r2 = Reader(), Reader()
    whole = r1.feed(data)
    parts = []
    for i in range(0, len(data), 4093):
        parts += r2.feed(data[i:i + 4093])
    assert parts == whole
    assert r1.offset == r2.offset < len(data)       # both stopped at the same cut block


def test_decryption_secrets_block_exposed():
    """The DSB's TLS key log equals the corpus' independently extracted key log text."""
    secrets = [r for r in records(DSB.read_bytes()) if isinstance(r, Secrets)]
    assert len(secrets) == 1
    assert secrets[0].secrets_type == SECRETS_TLS_KEYLOG
    keylog = (CORPUS / "wireshark" / "dtls12-aes128ccm8.keylog.EXTRACTED-from-dsb.txt").read_bytes()
    assert secrets[0].data == keylog
    assert keylog.hex() not in repr(secrets[0]) and b"CLIENT_RANDOM" not in repr(
        secrets[0]).encode()


def test_secrets_reach_the_file_source_callback():
    seen = []
    got = list(read_files([str(DSB)], CaptureStats(),
                          on_secrets=lambda p, t, d: seen.append((p, t, len(d)))))
    assert len(got) == 13
    assert seen == [(str(DSB), SECRETS_TLS_KEYLOG, len(
        (CORPUS / "wireshark" / "dtls12-aes128ccm8.keylog.EXTRACTED-from-dsb.txt").read_bytes()))]


@pytest.mark.parametrize("data, error", [
    (b"", Truncated),
    (b"\xd4\xc3\xb2", Truncated),
    (b"GIF89a" + b"\0" * 40, Malformed),
    (b"\xd4\xc3\xb2\xa1" + b"\0" * 20, Malformed),                    # pcap version 0
    (b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x11\x22\x33\x44" + b"\0" * 16, Malformed),  # bad BOM
    (b"\x0a\x0d\x0d\x0a\x1d\0\0\0\x4d\x3c\x2b\x1a" + b"\0" * 17, Malformed),  # length % 4
])
def test_not_a_capture(data, error):
    r = Reader()
    with pytest.raises(error):
        r.feed(data)
        r.close()


def test_packet_before_interface_is_malformed():
    e = "<"
    data = _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    data += _block(e, 6, struct.pack(e + "IIIII", 0, 0, 0, 4, 4) + b"abcd")
    with pytest.raises(Malformed, match="unknown interface 0 at byte 28"):
        records(data)


def test_block_trailer_mismatch_is_malformed():
    data = bytearray(_handmade_pcapng()[0])
    data[28 - 4] ^= 1                       # the SHB's trailing length
    with pytest.raises(Malformed, match="at byte 0"):
        records(bytes(data))


def test_absurd_record_length_is_malformed_not_waited_for():
    """A corrupt length is refused at once instead of buffering up to gigabytes."""
    data = bytearray(COAP_PCAP.read_bytes()[:200])
    data[24 + 8:24 + 12] = struct.pack("<I", 0x7FFFFFF0)        # incl_len of record 1
    r = Reader()
    assert [type(x) for x in r.feed(bytes(data))] == [Interface]   # what came before it
    with pytest.raises(Malformed, match="record length 2147483632 exceeds limit at byte 24"):
        r.close()


def test_file_bytes_counts_what_was_read_from_disk(tmp_path):
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(COAP_PCAP.read_bytes()))
    stats = CaptureStats()
    list(read_files([str(COAP_PCAP), str(gz)], stats))
    assert stats.file_bytes == COAP_PCAP.stat().st_size + gz.stat().st_size
    assert stats.frames == 2 * 164
