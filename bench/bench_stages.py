"""Where one process spends its CPU, stage by stage, on the cached 100,000-packet capture.

The capture is read and decoded into datagrams first (timed alone), then run through a fresh
`Pipeline` four ways: documents only; + NDJSON encoding (orjson); + rules; + both. Each is the
best of `--repeat` runs of `time.process_time`. With the compiled build in place the figures
are those of the compiled modules (`LWM2M_MONITOR_PURE=1` for the pure-Python ones).

Run: python bench/bench_stages.py [--packets 100000] [--clients 2000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_pipeline import capture  # noqa: E402

import orjson  # noqa: E402

from monitor.capture import CaptureStats, read_files  # noqa: E402
from monitor.gc_tuning import favour_throughput  # noqa: E402
from monitor.pipeline import Pipeline, PipelineConfig  # noqa: E402
from monitor.rule_engine import RuleEngine  # noqa: E402
from parsers._accel import compiled_modules  # noqa: E402


def run(datagrams, rules: bool, encode: bool) -> float:
    pipeline = Pipeline(PipelineConfig(rules=RuleEngine.from_cli() if rules else None))
    started = time.process_time()
    size = 0
    for d in datagrams:
        docs = pipeline.feed(d)
        if encode:
            for doc in docs:
                size += len(orjson.dumps(doc))
    pipeline.close()
    return time.process_time() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    favour_throughput()
    pcap = capture(args.packets, args.clients)
    started = time.process_time()
    datagrams = list(read_files([str(pcap)], CaptureStats()))
    read_s = time.process_time() - started
    print(f"{pcap.name}: {len(datagrams):,} datagrams; {len(compiled_modules())} compiled modules in use")
    print(f"{'stage':<40} {'cpu s':>7} {'µs/packet':>10}")
    print(f"{'read + link/IP/UDP decode':<40} {read_s:7.3f} {read_s / len(datagrams) * 1e6:10.1f}")
    for label, rules, encode in [("pipeline (documents)", False, False), ("pipeline + orjson", False, True),
                                 ("pipeline + rules", True, False), ("pipeline + rules + orjson", True, True)]:
        s = min(run(datagrams, rules, encode) for _ in range(args.repeat))
        print(f"{label:<40} {s:7.3f} {s / len(datagrams) * 1e6:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
