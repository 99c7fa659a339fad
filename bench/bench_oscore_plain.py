"""OSCORE messages decrypted per second next to plain CoAP messages per second, same traffic (#4).

For each OSCORE capture that bench/bench_oscore.py uses (the IETF interop captures, the aiocoap
LwM2M capture), on the very same messages, in one process:

- plain CoAP: `coap.parse` of every message (what a message costs when it is not protected);
- OSCORE: `OscoreTracker.unprotect` of every message (OSCORE option, context, AEAD, inner
  message parse and merge), fresh tracker per loop so key derivation is included;
- pipeline: `Pipeline.feed` of the capture's datagrams with the keys (everything a message costs
  end to end: CoAP, OSCORE, exchanges, events, rules) against the same run without keys.

Run: python bench/bench_oscore_plain.py [LOOPS]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import bench_oscore  # noqa: E402
from monitor import keys as keysfile  # noqa: E402
from monitor.capture import CaptureStats, read_files  # noqa: E402
from monitor.keys import KeyStore  # noqa: E402
from monitor.objects import ObjectModel  # noqa: E402
from monitor.oscore_tracker import OscoreTracker  # noqa: E402
from monitor.pipeline import Pipeline, PipelineConfig  # noqa: E402
from parsers import coap  # noqa: E402


def rates(name: str, capture: Path, keys: KeyStore, loops: int, client_port: int | None = None) -> dict:
    msgs = bench_oscore.messages(capture)
    payloads = [d.payload for d, _ in msgs]
    parse = coap.parse
    t0 = time.perf_counter()
    for _ in range(loops):
        for p in payloads:
            parse(p)
    plain = len(payloads) * loops / (time.perf_counter() - t0)
    decrypted = 0
    t0 = time.perf_counter()
    for _ in range(loops):
        tr = OscoreTracker(keys)
        for d, m in msgs:
            decrypted += tr.unprotect(d, m, None if client_port is None else d.src_port == client_port).decrypted
        tr.close()
    dt = time.perf_counter() - t0
    dgrams = list(read_files([str(capture)], CaptureStats()))
    pipe = {}
    model = ObjectModel.load()                      # loaded once, as a run does; not per loop
    for label, ks in (("keys", keys), ("no keys", KeyStore())):
        config = PipelineConfig(keys=ks, objects=model)
        t0 = time.perf_counter()
        for _ in range(loops):
            p = Pipeline(config)
            for d in dgrams:
                p.feed(d)
            p.close()
        pipe[label] = len(dgrams) * loops / (time.perf_counter() - t0)
    return {"name": name, "messages": len(msgs), "decrypted_share": decrypted / max(1, len(msgs) * loops),
            "plain_parse_per_s": plain, "oscore_per_s": len(msgs) * loops / dt, "decrypted_per_s": decrypted / dt,
            "pipeline_keys_per_s": pipe["keys"], "pipeline_nokeys_per_s": pipe["no keys"]}


def bench(loops: int = 20) -> list[dict]:
    out = [rates(f.name.split(".")[0], f, bench_oscore.SPEC5, loops)
           for f in sorted(bench_oscore.INTEROP.glob("*.pcapng.gz"))]
    out.append(rates("oscore-lwm2m", ROOT / "pcaps/oscore-lwm2m.pcap",
                     keysfile.load(str(ROOT / "pcaps/oscore-lwm2m.keys.yaml")), loops, client_port=56930))
    return out


def print_rates(rows: list[dict]) -> None:
    print(f"{'capture':<26} {'OSCORE msgs':>11} {'decrypted':>9} {'plain CoAP parse/s':>18} "
          f"{'OSCORE unprotect/s':>18} {'decrypted/s':>11} {'pipeline pkts/s keys':>20} {'no keys':>9}")
    for r in rows:
        print(f"{r['name']:<26} {r['messages']:>11,} {r['decrypted_share']:>9.0%} {r['plain_parse_per_s']:>18,.0f} "
              f"{r['oscore_per_s']:>18,.0f} {r['decrypted_per_s']:>11,.0f} {r['pipeline_keys_per_s']:>20,.0f} "
              f"{r['pipeline_nokeys_per_s']:>9,.0f}")


if __name__ == "__main__":
    print_rates(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
