"""The summary's endpoint table: every endpoint for a small capture, the ones that most need a
look for a fleet, and a line that accounts for the rest."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from monitor.summary import endpoint_table
from tests.captures import ROOT


def _stats(n: int) -> dict[str, Counter]:
    out = {}
    for i in range(n):
        c = Counter({"read": i % 7, "notify": (i * 5) % 11, "_security:dtls": 1})
        if i % 10 == 3:
            c["_errors"] = i // 10 + 1
        out[f"ep-{i:03d}"] = c
    return out


def _ops(c: Counter) -> int:
    return sum(v for k, v in c.items() if not k.startswith("_"))


def test_a_small_capture_lists_every_endpoint_by_name():
    stats = _stats(6)
    lines = endpoint_table(stats, 25)
    assert [ln.split()[0] for ln in lines[1:]] == sorted(stats)
    assert endpoint_table(stats, 0) == lines == endpoint_table(stats, 6)


def test_a_fleet_shows_the_most_errors_then_operations_and_accounts_for_the_rest():
    stats = _stats(200)
    lines = endpoint_table(stats, 10)
    assert lines[0] == "10 of 200 endpoints: the most errors, then the most operations"
    shown = [ln.split()[0] for ln in lines[2:-1]]
    want = sorted(stats, key=lambda ep: (-stats[ep].get("_errors", 0), -_ops(stats[ep]), ep))[:10]
    assert shown == want
    rest = [ep for ep in stats if ep not in shown]
    assert lines[-1].startswith(f"... 190 more endpoints: {sum(_ops(stats[ep]) for ep in rest):,} operations, "
                                f"{sum(stats[ep].get('_errors', 0) for ep in rest):,} errors")
    assert len(endpoint_table(stats, 0)) == 201            # 0: all of them


def test_the_option_on_the_command_line(tmp_path):
    pcap = tmp_path / "fleet.pcap"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_lwm2m_traffic.py"), str(pcap),
                    "--packets", "3000", "--clients", "60"], check=True, capture_output=True)
    run = [sys.executable, "-m", "monitor.cli", "analyze", str(pcap), "--out", str(tmp_path / "o.ndjson")]
    default = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    everything = subprocess.run(run + ["--endpoints", "0"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "25 of 60 endpoints" in default and "... 35 more endpoints" in default
    rows = [ln.split()[0] for ln in everything.splitlines() if ln.startswith("bench-ep-")]
    assert "more endpoints" not in everything and rows == sorted(rows) and len(rows) == 60
    assert len([ln for ln in default.splitlines() if ln.startswith("bench-ep-")]) == 25
    bad = subprocess.run(run + ["--endpoints", "x"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--endpoints" in bad.stderr
