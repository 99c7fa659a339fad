"""Run one command and measure it: wall time, peak RSS of its largest process, peak memory of the
whole process tree (forked workers included), and its standard output if asked for.

- `max_rss_mb`: `ru_maxrss` from `os.wait4` on the child: the peak RSS of the largest process
  of the tree (Linux reports the maximum over the child and the descendants it waited for).
- `cpu_seconds`: user + system CPU time of the tree (from the same `wait4`); on a machine shared
  with other work, items per CPU-second is steadier than items per wall-clock second.
- `tree_pss_mb`: the peak, over samples every `SAMPLE_S` seconds, of the summed PSS
  (proportional set size, /proc/PID/smaps_rollup) of the child and all its descendants. PSS
  splits pages shared after fork() between the processes, so the sum is the tree's real
  footprint, not N times the shared pages. Sampled: a peak shorter than SAMPLE_S can be missed.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

SAMPLE_S = 0.05


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    max_rss_mb: float
    tree_pss_mb: float
    cpu_seconds: float          # user + system of the child and its waited-for descendants
    load: float                 # 1-minute load average when it started (other work on the machine)
    returncode: int
    stdout: bytes = b""
    sampled: bool = True        # tree PSS sampled during this run (then its time is not used)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(name: str, argv: list[str], stdout=subprocess.DEVNULL, capture: bool = False,
        env: dict | None = None, sample: bool = True) -> Measurement:
    """Run `argv`; stdout to /dev/null unless `capture` (then returned) or a file object is given.
    With `sample`, the tree's PSS is read every SAMPLE_S: each read of a 250 MB process's
    smaps_rollup costs about 3 ms of CPU and takes its mmap lock, so a sampled run of a command
    that keeps both cores busy (`--workers 2`) is slowed; timing runs are not sampled."""
    peak = [0]
    done = threading.Event()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE if capture else stdout, stderr=errf, env=env)

    sample_pss = sample

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            total = sum(_pss_kb(p) for p in _descendants(proc.pid))
            peak[0] = max(peak[0], total)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_pss:
        sampler.start()
    chunks = []
    if capture:
        for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):
            chunks.append(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    if sample_pss:
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read()
    errf.close()
    if proc.returncode != 0:         # a failed run is no measurement (a traceback exits 1 in 0.04 s)
        raise RuntimeError(f"{name}: exit {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    return Measurement(name, seconds, usage.ru_maxrss / 1024, peak[0] / 1024, usage.ru_utime + usage.ru_stime,
                       load, proc.returncode, b"".join(chunks), sample_pss)


def row(benchmark: str, m: Measurement, items: int, unit: str, ref: Measurement | None = None,
        note: str = "") -> dict:
    """One line of the table; `ref` (tshark) gives the ratios: speed = ref time / our time
    (>1 means faster than tshark), memory = our tree PSS / ref tree PSS (<1 means less)."""
    r = {"benchmark": benchmark, "tool": m.name, "items": items, "unit": unit, "seconds": m.seconds,
         "rate": items / m.seconds, "cpu_rate": items / m.cpu_seconds if m.cpu_seconds else 0.0,
         "max_rss_mb": m.max_rss_mb, "tree_pss_mb": m.tree_pss_mb, "load": m.load, "note": note}
    if ref is not None:
        r["speed_x"] = ref.seconds / m.seconds
        r["memory_x"] = m.tree_pss_mb / ref.tree_pss_mb if ref.tree_pss_mb else None
    return r


def print_rows(rows: list[dict]) -> None:
    print(f"{'benchmark':<24} {'tool':<40} {'items':>9} {'unit':<8} {'wall s':>7} {'per s':>8} "
          f"{'per cpu-s':>9} {'maxRSS MB':>9} {'treePSS MB':>10} {'speed':>6} {'memory':>6} {'load':>4}  note")
    for r in rows:
        sx = f"{r['speed_x']:.2f}x" if r.get("speed_x") else "-"
        mx = f"{r['memory_x']:.2f}x" if r.get("memory_x") else "-"
        print(f"{r['benchmark']:<24} {r['tool']:<40} {r['items']:>9,} {r['unit']:<8} {r['seconds']:>7.2f} "
              f"{r['rate']:>8,.0f} {r['cpu_rate']:>9,.0f} {r['max_rss_mb']:>9.1f} {r['tree_pss_mb']:>10.1f} "
              f"{sx:>6} {mx:>6} {r['load']:>4.1f}  {r['note']}")


def best(runs: list[Measurement]) -> Measurement:
    """Of repeated runs of one command: the fastest timing run's times (the one least disturbed
    by other work on the machine) with the highest memory peaks seen in any run (conservative)."""
    from dataclasses import replace
    timed = [m for m in runs if not m.sampled] or runs
    fastest = min(timed, key=lambda m: m.seconds)
    return replace(fastest, max_rss_mb=max(m.max_rss_mb for m in runs),
                   tree_pss_mb=max(m.tree_pss_mb for m in runs))


def run_interleaved(commands: list[tuple[str, list[str], bool]], repeat: int) -> list[list[Measurement]]:
    """Each (name, argv, capture_stdout) `repeat` times, round-robin, so that a burst of other
    load on the machine hits all the tools alike, without memory sampling; then once more each,
    sampling the tree's PSS (the memory figures). The runs of each command, in order."""
    runs: list[list[Measurement]] = [[] for _ in commands]
    for _ in range(repeat):
        for i, (name, argv, capture) in enumerate(commands):
            runs[i].append(run(name, argv, capture=capture, sample=False))
    for i, (name, argv, capture) in enumerate(commands):
        runs[i].append(run(name, argv, capture=capture, sample=True))
    return runs
