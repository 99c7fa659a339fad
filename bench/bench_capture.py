"""Packets/s of `monitor.capture.read_files` alone on the Leshan thermostat capture (10k frames).

Run: python bench/bench_capture.py [PCAP] [LOOPS]
The file is given LOOPS times to one call, so the merge path is measured too when LOOPS > 1;
`--single` runs the LOOPS one at a time (no merge).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.capture import CaptureStats, read_files  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--")]
pcap = args[0] if args else str(Path(__file__).resolve().parent.parent.parent / "shared/corpus/"
                                 "microschc-leshan-thermostat/leshan-thermostat-readings.pcapng")
loops = int(args[1]) if len(args) > 1 else 10
single = "--single" in sys.argv
stats = CaptureStats()
n = 0
t0 = time.perf_counter()
if single:
    for _ in range(loops):
        for _d in read_files([pcap], stats):
            n += 1
else:
    for _d in read_files([pcap] * loops, stats):
        n += 1
dt = time.perf_counter() - t0
print(f"{n} datagrams, {stats.frames} frames in {dt:.3f} s: {stats.frames / dt:,.0f} packets/s"
      f" ({'single files' if single else f'{loops} files merged'})")
