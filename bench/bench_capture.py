"""Packets/s of the capture path on the Leshan thermostat capture (10k frames), by stage.

Run: python bench/bench_capture.py [PCAP] [LOOPS]
Stages: the pcapng Reader alone; Reader + netlayers.decode; `read_files` (everything up to
the Datagram objects). CPU time (process_time) is reported, so other load on the machine
matters less than with wall time.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.capture import CaptureStats, read_files  # noqa: E402
from parsers.netlayers import decode  # noqa: E402
from parsers.pcapfile import Packet, Reader  # noqa: E402

args = sys.argv[1:]
pcap = args[0] if args else str(Path(__file__).resolve().parent.parent.parent / "shared/corpus/"
                                 "microschc-leshan-thermostat/leshan-thermostat-readings.pcapng")
loops = int(args[1]) if len(args) > 1 else 10
data = Path(pcap).read_bytes()


def reader_only() -> int:
    n = 0
    for _ in range(loops):
        r = Reader()
        for i in range(0, len(data), 1 << 20):
            n += sum(1 for x in r.feed(data[i:i + (1 << 20)]) if x.__class__ is Packet)
    return n


def reader_decode() -> int:
    n = 0
    for _ in range(loops):
        r = Reader()
        for i in range(0, len(data), 1 << 20):
            for x in r.feed(data[i:i + (1 << 20)]):
                if x.__class__ is Packet:
                    decode(x.linktype, x.data, x.origlen)
                    n += 1
    return n


def files_single() -> int:
    stats = CaptureStats()
    for _ in range(loops):
        for _d in read_files([pcap], stats):
            pass
    return stats.frames


def files_merged() -> int:
    stats = CaptureStats()
    for _d in read_files([pcap] * loops, stats):
        pass
    return stats.frames


for name, fn in (("Reader.feed", reader_only), ("Reader + decode", reader_decode),
                 ("read_files, one file at a time", files_single),
                 (f"read_files, {loops} files merged", files_merged)):
    best = None
    for _ in range(3):
        t0 = time.process_time()
        n = fn()
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    print(f"{name:34s} {n} packets, best of 3: {best:.3f} s CPU = {n / best:10,.0f} packets/s")
