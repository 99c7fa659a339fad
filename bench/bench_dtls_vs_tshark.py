"""Decrypted DTLS records/s: `lwm2m-monitor analyze --keys` vs `tshark -o dtls.psk:...` (issue #3).

The capture (≥100k packets, 2,000 DTLS 1.2 PSK sessions with TLS_PSK_WITH_AES_128_CCM_8, or
with `--suite cbc` TLS_PSK_WITH_AES_128_CBC_SHA256, the other suite LwM2M makes mandatory;
LwM2M inside) is generated once by bench/gen_dtls_traffic.py into bench/.cache/. Both tools run
in the same invocation on the same file:

- tshark: `-o dtls.psk:HEX -T fields -e coap.code`; its decrypted records are the lines with a
  CoAP code (one CoAP message per application-data record);
- lwm2m-monitor: complete events to NDJSON; its decrypted records are the CoAP messages of its
  summary (all of them come out of DTLS here). With 1 process and with --workers N.

The count each tool reached is checked against the generator's number of application records,
so a tool that fails to decrypt cannot look fast. Rate = application records / wall seconds.

Run: python bench/bench_dtls_vs_tshark.py [--packets 120000] [--clients 2000] [--workers 1,2] [--suite ccm8|cbc]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pipeline import _runs_note, monitor_argv  # noqa: E402
from measure import best, print_rows, row, run_interleaved  # noqa: E402

CACHE = HERE / ".cache"
NAME = "DTLS-PSK decryption"
NAMES = {"ccm8": NAME, "cbc": "DTLS-PSK CBC-SHA256"}


def capture(packets: int, clients: int, suite: str = "ccm8") -> tuple[Path, Path, dict]:
    stem = CACHE / (f"dtls-{packets}p-{clients}c" + ("" if suite == "ccm8" else f"-{suite}"))
    pcap, keys, meta = (Path(f"{stem}{ext}") for ext in (".pcap", ".keys.yaml", ".json"))
    if not meta.exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "gen_dtls_traffic.py"), str(pcap),
                        "--packets", str(packets), "--clients", str(clients), "--suite", suite], check=True,
                       stdout=subprocess.DEVNULL)
    with open(meta) as f:
        return pcap, keys, json.load(f)


def bench(packets: int, clients: int, workers: list[int], repeat: int = 1, out_dir: str = "/tmp",
          suite: str = "ccm8", label: str = "") -> list[dict]:
    pcap, keys, meta = capture(packets, clients, suite)
    name = NAMES[suite] + (f" {label}" if label else "")
    expected = meta["app_records"]
    with open(pcap, "rb") as f:
        while f.read(1 << 22):
            pass
    commands = [("tshark -o dtls.psk -T fields -e coap.code",
                 ["tshark", "-r", str(pcap), "-o", f"dtls.psk:{meta['psk_hex']}", "-T", "fields", "-e", "coap.code"],
                 True)]
    for w in workers:
        out = os.path.join(out_dir, f"bench-dtls-w{w}.ndjson")
        argv = monitor_argv() + ["analyze", str(pcap), "--keys", str(keys), "--out", out] + \
            (["--workers", str(w)] if w > 1 else [])
        commands.append(("lwm2m-monitor analyze --keys" + (f" --workers {w}" if w > 1 else ""), argv, True))
    runs = run_interleaved(commands, repeat)
    ts = best(runs[0])
    got = sum(1 for line in ts.stdout.splitlines() if line.strip())
    rows = [row(name, ts, got, "records", None, _note(got, expected, meta) + _runs_note(runs[0]))]
    for m in runs[1:]:
        fastest = best(m)
        summary = fastest.stdout.decode()
        found = re.search(r"coap messages ([\d,]+)", summary)
        got = int(found.group(1).replace(",", "")) if found else 0
        docs = re.search(r"documents ([\d,]+)", summary)
        # a tool that decrypted less gets no speed ratio: it did not do the same work
        rows.append(row(name, fastest, got, "records", ts if got == expected else None, _note(got, expected, meta)
                        + (f", {docs.group(1)} documents" if docs else "") + _runs_note(m, runs[0])))
    for w in workers:
        path = os.path.join(out_dir, f"bench-dtls-w{w}.ndjson")
        if os.path.exists(path):
            os.unlink(path)
    return rows


def _note(got: int, expected: int, meta: dict) -> str:
    status = "all decrypted" if got == expected else f"ONLY {got:,} of {expected:,} DECRYPTED"
    return f"{status} ({meta['packets']:,} packets, {meta['handshakes']:,} sessions)"



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=120_000)
    ap.add_argument("--clients", type=int, default=2_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command, interleaved; the fastest is shown")
    ap.add_argument("--suite", choices=sorted(NAMES), default="ccm8")
    args = ap.parse_args()
    print_rows(bench(args.packets, args.clients, [int(w) for w in args.workers.split(",")], args.repeat,
                     suite=args.suite))


if __name__ == "__main__":
    main()
