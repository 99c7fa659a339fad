"""The pcap ring: rotation by size, the oldest files deleted, every file readable by tshark."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bench.bench_live import _ipv4_udp
from monitor.pcap_ring import Ring


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_ring_rotates_keeps_n_files_and_tshark_reads_them(tmp_path):
    lo = bytes([127, 0, 0, 1])
    frames = [_ipv4_udp(lo, 40000 + i, lo, 5683, bytes([0x40, 1, 0, i]) + b"x" * 100) for i in range(50)]
    size = 24 + 3 * (16 + len(frames[0]))             # exactly three records per file
    ring = Ring(str(tmp_path), "eth0", 1, 65535, size, 4)
    for i, fr in enumerate(frames):
        ring.write(1_700_000_000_123_456_789 + i * 1000, fr, len(fr))
    ring.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"eth0-{n:06d}.pcap" for n in range(13, 17)]     # 17 files made, 4 kept
    assert ring.stats.files_opened == 17 and ring.stats.files_deleted == 13
    out = subprocess.run(["tshark", "-r", str(tmp_path / names[0]), "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "udp.srcport"], capture_output=True, text=True, check=True).stdout.split("\n")
    # records 39..41 went to file 13; nanosecond timestamps survive
    assert out[0].split("\t") == ["1700000000.123495789", "40039"]
    assert len([line for line in out if line]) == 3
    last = subprocess.run(["tshark", "-r", str(tmp_path / names[-1]), "-T", "fields", "-e", "udp.srcport"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert last == ["40048", "40049"]


def test_a_new_ring_continues_after_files_of_an_earlier_run(tmp_path):
    (tmp_path / "lo-000007.pcap").write_bytes(b"")
    ring = Ring(str(tmp_path), "lo", 1, 65535, 1 << 20, 2)
    ring.write(0, b"\x00" * 60, 60)
    ring.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lo-000007.pcap", "lo-000008.pcap"]
