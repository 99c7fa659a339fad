"""Rule engine cost per document: every capture's documents (pipeline output, facts included)
replayed through a fresh engine many times; prints documents/s with and without alerts.

    python bench/bench_rules.py [ROUNDS]
"""
from __future__ import annotations

import copy
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from monitor import keys as keys_mod  # noqa: E402
from monitor.analyze import collect  # noqa: E402
from monitor.pipeline import PipelineConfig  # noqa: E402
from monitor.rule_engine import RuleEngine  # noqa: E402


def documents() -> list[dict]:
    docs: list[dict] = []
    for pcap in sorted(glob.glob(os.path.join(ROOT, "pcaps", "*.pcap"))):
        k = pcap[:-5] + ".keys.yaml"
        cfg = PipelineConfig(keys=keys_mod.load(k)) if os.path.exists(k) else PipelineConfig()
        out, _ = collect([pcap], cfg)
        docs.extend(out)
    return docs


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    base = documents()
    batches = [copy.deepcopy(base) for _ in range(rounds)]
    engine = RuleEngine.from_paths()
    alerts = 0
    t0 = time.perf_counter()
    for batch in batches:
        for d in batch:
            alerts += len(engine.process(d))
    alerts += len(engine.close())
    dt = time.perf_counter() - t0
    n = len(base) * rounds
    print(f"{n} documents x {len(engine.rules)} rules + {len(engine.correlations)} correlations: "
          f"{dt:.3f} s, {n / dt:,.0f} documents/s, {dt / n * 1e6:.1f} us/document, {alerts} alerts")


if __name__ == "__main__":
    main()
