"""Every benchmark, one table (what `make bench` runs). See bench/README.md for what each figure means.

    python bench/run.py [--quick] [--repeat N] [--workers 1,2] [--only pipeline,dtls,dtls-cbc,dtls-wake,dtls-long,oscore]

--quick: 100,000 plain packets instead of 1,000,000 and 20,000 DTLS packets instead of 120,000
(the figures of the README come from the full run). Generated captures are cached in
bench/.cache/ (gitignored); the first run spends a minute or two generating them.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_dtls_vs_tshark  # noqa: E402
import bench_oscore_plain  # noqa: E402
import bench_pipeline  # noqa: E402
from measure import print_rows  # noqa: E402


def machine() -> str:
    tshark = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, {tshark}, "
            f"load average at start {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller captures (a few minutes less)")
    ap.add_argument("--workers", default="1,2", help="worker counts for lwm2m-monitor (default 1,2)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each command, interleaved round-robin; the fastest is shown (default 1)")
    ap.add_argument("--only", default="pipeline,dtls,dtls-cbc,dtls-wake,oscore",
                    help="subset of benchmarks to run (also: dtls-long, 1,000,000 DTLS packets)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    workers = [int(w) for w in args.workers.split(",")]
    print(f"# lwm2m-monitor benchmarks, {time.strftime('%Y-%m-%d %H:%M')}: {machine()}")
    rows: list[dict] = []
    if "pipeline" in only:
        packets, clients = (100_000, 2_000) if args.quick else (1_000_000, 10_000)
        rows += bench_pipeline.bench(packets, clients, workers, args.repeat)
    if "dtls" in only:
        packets, clients = (20_000, 400) if args.quick else (120_000, 2_000)
        rows += bench_dtls_vs_tshark.bench(packets, clients, workers, args.repeat)
    if "dtls-cbc" in only:           # the other suite LwM2M makes mandatory: a MAC and CBC per record
        packets, clients = (20_000, 400) if args.quick else (120_000, 2_000)
        rows += bench_dtls_vs_tshark.bench(packets, clients, workers, args.repeat, suite="cbc")
    if "dtls-wake" in only:          # devices that wake, handshake, register, sleep: ~10 datagrams a session
        packets, clients = (20_000, 2_000) if args.quick else (100_000, 10_000)
        rows += bench_dtls_vs_tshark.bench(packets, clients, workers, args.repeat, label="wake-ups")
    if "dtls-long" in only:          # steady state: 1,000,000 packets, ~100 per session (not in the default set)
        packets, clients = (200_000, 2_000) if args.quick else (1_000_000, 10_000)
        rows += bench_dtls_vs_tshark.bench(packets, clients, workers, args.repeat, label="long")
    if rows:
        print()
        print_rows(rows)
    if "oscore" in only:
        print("\n# OSCORE (issue #4): bench/bench_oscore.py")
        sys.stdout.flush()
        subprocess.run([sys.executable, str(HERE / "bench_oscore.py"), "10" if args.quick else "50"], check=True)
        print("\n# OSCORE decrypted/s next to plain CoAP messages/s on the same messages: bench/bench_oscore_plain.py")
        bench_oscore_plain.print_rates(bench_oscore_plain.bench(5 if args.quick else 20))


if __name__ == "__main__":
    main()
