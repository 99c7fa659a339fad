"""`lwm2m-monitor analyze` vs `tshark -T fields` on 1,000,000 packets of plain LwM2M (issue #2).

The capture (10,000 clients: register, update, read, write, execute, observe, notify; CoAP
encoded by aiocoap) is generated once by bench/gen_lwm2m_traffic.py into bench/.cache/. Both
tools run in the same invocation, one after the other, on the same (page-cached) file:

- tshark: the 5-tuple, CoAP type, code, MID, token, URI path, content format and observe of
  every packet, to /dev/null;
- lwm2m-monitor: complete events (ECS documents with endpoint, decoded payload values, rules)
  to an NDJSON file, with 1 process and with --workers N.

Run: python bench/bench_pipeline.py [--packets 1000000] [--clients 10000] [--workers 1,2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import best, print_rows, row, run_interleaved  # noqa: E402

CACHE = HERE / ".cache"
NAME = "plain LwM2M"
TSHARK_FIELDS = ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "coap.type", "coap.code", "coap.mid",
                 "coap.token", "coap.opt.uri_path_recon", "coap.opt.ctype", "coap.opt.observe"]


def capture(packets: int, clients: int) -> Path:
    path = CACHE / f"lwm2m-{packets}p-{clients}c.pcap"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, "-W", "ignore", str(HERE / "gen_lwm2m_traffic.py"), str(tmp),
                        "--packets", str(packets), "--clients", str(clients)], check=True,
                       stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def monitor_argv() -> list[str]:
    """The console script pip installed for this interpreter. Found on PATH it may be a version
    manager's shim (pyenv's: a bash script and `pyenv exec`, 60 ms more per run), which is not
    part of the tool and would not be there for tshark either."""
    beside = os.path.join(os.path.dirname(sys.executable), "lwm2m-monitor")
    if os.access(beside, os.X_OK):
        return [beside]
    exe = shutil.which("lwm2m-monitor")
    return [exe] if exe else [sys.executable, "-m", "monitor.cli"]


def count_packets(pcap: Path) -> int:
    """Records in a classic pcap file (the generator writes no other kind)."""
    n, pos, size = 0, 24, pcap.stat().st_size
    with open(pcap, "rb") as f:
        while pos < size:
            f.seek(pos + 8)
            caplen = int.from_bytes(f.read(4), "little")
            pos += 16 + caplen
            n += 1
    return n


def bench(packets: int, clients: int, workers: list[int], repeat: int = 1, out_dir: str = "/tmp") -> list[dict]:
    pcap = capture(packets, clients)
    n = count_packets(pcap)
    with open(pcap, "rb") as f:                       # warm the page cache for both tools alike
        while f.read(1 << 22):
            pass
    fields = [a for f in TSHARK_FIELDS for a in ("-e", f)]
    commands = [("tshark -T fields", ["tshark", "-r", str(pcap), "-T", "fields", *fields], False)]
    outs = []
    for w in workers:
        out = os.path.join(out_dir, f"bench-pipeline-w{w}.ndjson")
        outs.append(out)
        argv = monitor_argv() + ["analyze", str(pcap), "--out", out, "-q"] + (["--workers", str(w)] if w > 1 else [])
        commands.append(("lwm2m-monitor analyze" + (f" --workers {w}" if w > 1 else ""), argv, False))
    runs = run_interleaved(commands, repeat)
    ts = best(runs[0])
    rows = [row(NAME, ts, n, "packets", note=_runs_note(runs[0]).lstrip("; "))]
    for out, m in zip(outs, runs[1:]):
        with open(out, "rb") as f:
            docs = sum(1 for _ in f)
        os.unlink(out)
        rows.append(row(NAME, best(m), n, "packets", ts, f"{docs:,} documents" + _runs_note(m, runs[0])))
    return rows


def _runs_note(runs, ref=None) -> str:
    """"best of 3: a/b/c s"; with `ref`, tshark's runs (interleaved with these round by round,
    so each pair met the same machine): each round's speed ratio and their median, steadier on a
    machine whose speed drifts than a ratio of two best-ofs."""
    timed = [m for m in runs if not m.sampled]
    if len(timed) <= 1:
        return ""
    note = f"; best of {len(timed)}: " + "/".join(f"{m.seconds:.1f}" for m in timed) + " s"
    ref_timed = [m for m in ref if not m.sampled] if ref is not None else []
    if len(ref_timed) == len(timed):
        ratios = [r.seconds / m.seconds for r, m in zip(ref_timed, timed)]
        note += ("; speed per round " + "/".join(f"{x:.2f}" for x in ratios)
                 + f"x, median {statistics.median(ratios):.2f}x")
    return note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts to run (default 1,2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command, interleaved; the fastest is shown")
    args = ap.parse_args()
    print_rows(bench(args.packets, args.clients, [int(w) for w in args.workers.split(",")], args.repeat))


if __name__ == "__main__":
    main()
