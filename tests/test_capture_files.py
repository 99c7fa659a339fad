"""The file source: damage, gzip, several files merged in time, missing files, counters."""
from __future__ import annotations

import gzip
import random
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapNgReader, RawPcapReader

from monitor.capture import CaptureError, CaptureStats, read_files
from parsers.errors import ParseError, Truncated
from parsers.pcapfile import Interface, Numbered, Packet, Reader, Secrets
from test_capture_corpus import CORPUS, ROOT, ours
from test_capture_pcapfile import _handmade_pcapng

LESHAN = CORPUS / "microschc-leshan-thermostat" / "leshan-thermostat-readings.pcapng"
COAP_PCAP = CORPUS / "wireshark-wiki" / "coap-cbor.pcap"
JIM_GZ = CORPUS / "ericsson-oscore-interop" / "Interop6-jim-cs.pcapng.gz"


def tshark_lenient(path: Path) -> list[tuple]:
    """tshark's UDP frames of a possibly damaged file (it reads up to the damage, then fails)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "udp", "-T", "fields",
                          "-E", "separator=|", "-e", "frame.number", "-e", "frame.time_epoch",
                          "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length"],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        fn, t, sp, dp, ul = line.split("|")
        rows.append((int(fn), int(Decimal(t) * 10**9), int(sp), int(dp), int(ul) - 8))
    return rows


def short(path: Path, stats: CaptureStats) -> list[tuple]:
    return [(d.frame, d.ts_ns, d.src_port, d.dst_port, len(d.payload))
            for d in read_files([str(path)], stats)]


def record_starts(path: Path, reader_cls) -> list[int]:
    """File offsets where each packet record/block starts, as scapy's reader walks the file."""
    starts = []
    with reader_cls(str(path)) as r:
        while True:
            pos = r.f.tell()
            try:
                r._read_packet()
            except EOFError:
                return starts
            starts.append(pos)


@pytest.mark.parametrize("source, reader_cls, kind", [
    (COAP_PCAP, RawPcapReader, "record"), (LESHAN, RawPcapNgReader, "block")])
def test_cut_inside_a_packet_reads_up_to_the_damage(tmp_path, source, reader_cls, kind):
    data = source.read_bytes()
    starts = record_starts(source, reader_cls)
    rnd = random.Random(1)
    for k in sorted(rnd.sample(range(1, len(starts) - 1), 4)):
        cut_at = starts[k] + rnd.randrange(1, starts[k + 1] - starts[k])
        path = tmp_path / f"cut-{cut_at}{source.suffix}"
        path.write_bytes(data[:cut_at])
        stats = CaptureStats()
        got = short(path, stats)
        assert got == tshark_lenient(path)                # everything before the damage
        assert got[-1][0] == k                            # frames 1..k survive
        assert stats.errors == [f"{path}: truncated {kind} at byte {starts[k]} (frame {k + 1}); "
                                f"{k} frames read before"]


def test_damaged_file_does_not_stop_the_others(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(COAP_PCAP.read_bytes()[:5000])
    stats = CaptureStats()
    got = list(read_files([str(cut), str(JIM_GZ)], stats))
    assert len([d for d in got if d.source == str(JIM_GZ)]) == 222
    assert 0 < len([d for d in got if d.source == str(cut)]) < 164
    assert len(stats.errors) == 1 and stats.errors[0].startswith(f"{cut}: truncated record at")
    assert stats.files == 2


def test_corrupt_block_length_mid_file(tmp_path):
    data = bytearray(LESHAN.read_bytes())
    starts = record_starts(LESHAN, RawPcapNgReader)
    data[starts[100] + 4:starts[100] + 8] = b"\x03\x00\x00\x00"     # block length 3
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(data))
    stats = CaptureStats()
    assert len(list(read_files([str(path)], stats))) == 100
    assert stats.errors == [f"{path}: bad block length 3 at byte {starts[100]} (frame 101); "
                            f"100 frames read before"]


def test_gzip_read_transparently_by_content(tmp_path):
    """Python's gzip writes it; the name has no .gz; tshark and we read the same."""
    path = tmp_path / "leshan-compressed.pcapng"
    path.write_bytes(gzip.compress(LESHAN.read_bytes()))
    assert ours(path) == ours(LESHAN)
    assert len(ours(path)) == 10000


def test_concatenated_gzip_members(tmp_path):
    raw = COAP_PCAP.read_bytes()
    path = tmp_path / "two-members.pcap.gz"
    path.write_bytes(gzip.compress(raw[:3001]) + gzip.compress(raw[3001:]))
    assert ours(path) == ours(COAP_PCAP)


@pytest.mark.parametrize("fraction", [0.3, 0.77])
def test_cut_gzip_reads_up_to_the_damage(tmp_path, fraction):
    comp = gzip.compress(LESHAN.read_bytes())
    path = tmp_path / "cut.pcapng.gz"
    path.write_bytes(comp[:int(len(comp) * fraction)])
    stats = CaptureStats()
    got = short(path, stats)
    want = tshark_lenient(path)
    assert len(want) > 1000 and got == want
    assert len(stats.errors) == 1
    assert stats.errors[0].startswith(f"{path}: compressed data ends early at byte ")
    assert stats.errors[0].endswith(f"(frame {len(got) + 1}); {len(got)} frames read before")


def test_corrupt_gzip_reports_once(tmp_path):
    comp = bytearray(gzip.compress(LESHAN.read_bytes()))
    comp[len(comp) // 2:len(comp) // 2 + 64] = b"\xff" * 64
    path = tmp_path / "corrupt.pcapng.gz"
    path.write_bytes(bytes(comp))
    stats = CaptureStats()
    got = list(read_files([str(path)], stats))
    assert 0 < len(got) < 10000
    # Deflate may emit garbage before zlib notices: either layer may report it, once.
    assert len(stats.errors) == 1 and stats.errors[0].startswith(f"{path}: ")
    assert stats.errors[0].endswith(f"{len(got)} frames read before")


def test_merge_two_files_in_time_order(tmp_path):
    """tshark splits the Leshan capture by direction; merged, time order is restored."""
    client, server = tmp_path / "client.pcapng", tmp_path / "server.pcapng"
    for out, flt in ((client, "ipv6.src == 2001:db8:a::3"), (server, "ipv6.src == 2001:db8:a::20")):
        subprocess.run(["tshark", "-r", str(LESHAN), "-Y", flt, "-w", str(out)], check=True,
                       capture_output=True)
    stats = CaptureStats()
    merged = list(read_files([str(server), str(client)], stats))
    whole = list(read_files([str(LESHAN)], CaptureStats()))
    assert len(merged) == len(whole) == 10000
    assert [d.ts_ns for d in merged] == sorted(d.ts_ns for d in whole)
    assert sorted((d.ts_ns, d.payload) for d in merged) == sorted((d.ts_ns, d.payload)
                                                                    for d in whole)
    # frame numbers are per file, and each file's own order is kept
    for path in (client, server):
        assert [d.frame for d in merged if d.source == str(path)] == list(
            range(1, 1 + sum(d.source == str(path) for d in merged)))
    assert stats.files == 2 and stats.frames == 10000


def test_merge_is_stable_for_equal_timestamps(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    shutil.copy(COAP_PCAP, a)
    shutil.copy(COAP_PCAP, b)
    got = list(read_files([str(b), str(a)], CaptureStats()))
    assert len(got) == 328
    assert [d.source for d in got] == [str(b), str(a)] * 164     # first-listed file first
    assert [d.frame for d in got] == [f for f in range(1, 165) for _ in (0, 1)]


@pytest.mark.parametrize("make, text", [
    (lambda p: p / "missing.pcap", "cannot open: No such file or directory"),
    (lambda p: p, "cannot open: Is a directory"),
])
def test_unreadable_file_raises_before_reading(tmp_path, make, text):
    path = make(tmp_path)
    with pytest.raises(CaptureError) as e:
        read_files([str(COAP_PCAP), str(path)], CaptureStats())
    assert str(e.value) == f"{path}: {text}"
    assert "\n" not in str(e.value)


def test_counters():
    stats = CaptureStats()
    list(read_files([str(ROOT / "pcaps" / p) for p in
                     ("variants-sll.pcap", "variants-rawip.pcap", "variants-fragments.pcap")],
                    stats))
    assert (stats.files, stats.frames, stats.non_ip, stats.non_udp) == (3, 23, 1, 1)
    assert (stats.ip_fragments, stats.reassembled, stats.truncated_frames) == (16, 4, 0)
    assert stats.bytes == sum(p.stat().st_size - 24 - 16 * n for p, n in (
        (ROOT / "pcaps" / "variants-sll.pcap", 3), (ROOT / "pcaps" / "variants-rawip.pcap", 3),
        (ROOT / "pcaps" / "variants-fragments.pcap", 17)))


def test_empty_and_non_capture_files(tmp_path):
    empty, text = tmp_path / "empty.pcap", tmp_path / "notes.txt"
    empty.write_bytes(b"")
    text.write_bytes(b"hello, this is not a capture\n")
    stats = CaptureStats()
    assert list(read_files([str(empty), str(text)], stats)) == []
    assert stats.errors == [f"{empty}: empty file; no frames read",
                            f"{text}: not a pcap or pcapng file (magic 68656c6c) at byte 0; "
                            f"no frames read"]


# -- sans-IO reader: any prefix, any junk, any chunking --------------------------------------

VALID = [COAP_PCAP.read_bytes(), (CORPUS / "wireshark" /
                                         "dtls12-aes128ccm8-dsb.pcapng").read_bytes(),
         _handmade_pcapng()[0]]


def _all_records(data: bytes, chunk: int) -> list:
    r = Reader()
    out = []
    for i in range(0, len(data), chunk):
        out += r.feed(data[i:i + chunk])
    r.close()
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(VALID) - 1), cut=st.integers(0, 12000),
       junk=st.binary(max_size=64), chunk=st.integers(1, 5000))
def test_prefix_plus_junk_gives_records_or_the_documented_error(which, cut, junk, chunk):
    data = VALID[which][:cut] + junk
    try:
        recs = _all_records(data, chunk)
    except ParseError:
        return
    assert all(isinstance(r, (Packet, Interface, Secrets, Numbered)) for r in recs)


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, len(VALID) - 1), cut=st.integers(0, 12000),
       chunk=st.integers(1, 700))
def test_prefix_records_are_a_prefix_of_the_whole(which, cut, chunk):
    whole = _all_records(VALID[which], 4096)
    r = Reader()
    got = []
    data = VALID[which][:cut]
    try:
        for i in range(0, len(data), chunk):
            got += r.feed(data[i:i + chunk])
    except ParseError:
        pytest.fail("a clean prefix is never malformed")
    assert got == whole[:len(got)]
    try:
        r.close()
    except Truncated:
        assert cut < len(VALID[which])
    else:                                   # the cut fell on a record boundary
        assert r.offset == len(data)


SOURCES = [COAP_PCAP.read_bytes(), (ROOT / "pcaps" / "variants-fragments.pcap").read_bytes(),
           (ROOT / "pcaps" / "variants-two-interfaces.pcapng").read_bytes(),
           gzip.compress(COAP_PCAP.read_bytes())]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SOURCES) - 1), at=st.integers(0, 20000),
       junk=st.binary(max_size=48), flip=st.booleans())
def test_any_damaged_file_gives_datagrams_and_at_most_one_error(which, at, junk, flip):
    """End to end (reader, link/IP/UDP, reassembly, gzip): damage in place or at the end."""
    import tempfile
    data = bytearray(SOURCES[which])
    at %= len(data) + 1
    if flip:
        data[at:at + len(junk)] = junk              # corrupt in the middle
    else:
        data = data[:at] + junk                     # cut, then trailing junk
    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(bytes(data))
        f.flush()
        stats = CaptureStats()
        got = list(read_files([f.name], stats))
    assert len(stats.errors) <= 1
    assert all(e.startswith(f.name + ": ") and "\n" not in e for e in stats.errors)
    assert all(0 <= d.src_port < 65536 and d.frame >= 1 for d in got)


def test_the_console_script_flushes_everything_before_its_fast_exit(tmp_path):
    """`lwm2m-monitor analyze` leaves through os._exit (monitor.cli.run): with stdout a pipe
    (block-buffered, PYTHONUNBUFFERED unset), the summary, the warning about a damaged capture,
    the whole output file and the exit code 1 must all still be there."""
    import os
    import sys
    src = ROOT / "pcaps" / "aiocoap-lwm2m12.pcap"
    starts = record_starts(src, RawPcapReader)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src.read_bytes()[:starts[-3] + 5])
    out = tmp_path / "events.ndjson"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}      # as a user's shell
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", str(cut), "--out", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 1, r.stderr
    assert "truncated record" in r.stderr and f"events written to {out}" in r.stdout
    lines = out.read_text().splitlines()
    assert lines and all(line.endswith("}") for line in lines)
    whole = tmp_path / "whole.ndjson"
    assert subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", str(src), "--out", str(whole), "-q"],
                          cwd=ROOT, timeout=120).returncode == 0
    assert len(whole.read_text().splitlines()) > len(lines) > 0
