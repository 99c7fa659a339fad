"""Multi-core offline analysis: N forked workers, each analysing the traffic of its share of clients.

Every worker reads the whole capture itself (`monitor.capture.read_files`) and keeps only the
datagrams whose shard key hashes to its index (decided on the raw addresses, before a datagram
is built), runs its own `Pipeline` over them and writes its documents to a part file. The
parent then hands the parts, in worker order, to the sinks: the output is deterministic for a
given N (byte-identical across runs), and its documents are the same set as a single-process
run's, in a different order. When the only sink is an NDJSON file, worker 0 appends to that
file itself and only the other parts are copied after it, each while its worker is still
writing it (once the workers before it are done): only the tail of the last part is copied
after the last worker ends.

Shard key (`monitor/shard_key.py`): the LwM2M client's IP address, so that one client's
bootstrap flow, registration flow, DTLS sessions and OSCORE contexts (and keys harvested from
its cleartext bootstrap) all meet in one worker.

Limitations (a single process has none of them):
- a client that changes IP address between flows (NAT rebinding seen through an update, a
  DTLS Connection ID session that moves) may have its flows split across workers; the later
  flow then lacks the registration (endpoint name) or the session keys of the earlier one;
- rules that aggregate across clients (counts per server, per identity over many addresses)
  see only their worker's share of the traffic;
- flow/exchange sweeps run on each worker's own packet clock, so an exchange answered right at
  its expiry limit may be matched in one mode and expired in the other;
- the per-pipeline tables (`max_flows`, ...) are per worker, N times larger in total.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .analyze import AnalysisResult, WorkerError, drive, share_evidence_lines
from .capture import STDIN, CaptureError, CaptureStats, read_files
from .pipeline import Pipeline, PipelineConfig, PipelineStats
from .reclaim import remove_tree_later
from .shard_key import LWM2M_SERVER_PORTS, ShardFilter, shard_address, shard_of  # noqa: F401  (re-exported)
from .sinks import NdjsonSink

@dataclass
class WorkerResult:
    """What a worker sends back: counts only, documents stay in its part file."""

    index: int
    documents: int = 0
    capture: CaptureStats = field(default_factory=CaptureStats)
    stats: PipelineStats = field(default_factory=PipelineStats)
    endpoint_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    dtls_stats: dict[str, int] = field(default_factory=dict)
    oscore_stats: dict[str, int] = field(default_factory=dict)
    max_rss_kb: int = 0
    error: str | None = None
    capture_error: bool = False


@dataclass
class TrackerTotals:
    """Stand-in for a tracker in the merged result: only its `stats` are summed."""

    stats: dict[str, int]


@dataclass
class ShardedPipeline:
    """What `print_summary` reads from `AnalysisResult.pipeline`, summed over the workers."""

    stats: PipelineStats
    endpoint_stats: dict[str, Counter]
    dtls: TrackerTotals
    oscore: TrackerTotals
    workers: int
    worker_max_rss_kb: list[int]


def analyze_sharded(paths: list[str], config: PipelineConfig, workers: int, sinks: Iterable = (),
                    progress: Callable[[int, int], None] | None = None) -> AnalysisResult:
    """Like `analyze.analyze_files`, on `workers` forked processes sharded by client address.

    Raises `CaptureError` when a capture cannot be opened (as the single-process path does).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if STDIN in paths:
        raise ValueError("sharded analysis reads each capture once per worker: not standard input")
    sinks = list(sinks)
    started = time.perf_counter()
    for p in paths:                      # fail before forking, with the single-process message
        read_files([p], CaptureStats())
    ctx = multiprocessing.get_context("fork")
    tmp = tempfile.mkdtemp(prefix="lwm2m-shards-")
    # one NDJSON file: worker 0 writes into it directly (its part would be copied first anyway)
    direct = sinks[0].shared_file() if len(sinks) == 1 and type(sinks[0]) is NdjsonSink else None
    try:
        parts = [os.path.join(tmp, f"part-{i:03d}.ndjson") for i in range(workers)]
        if direct is not None:
            parts[0] = direct
        pipes, procs = [], []
        for i in range(workers):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_main, name=f"lwm2m-shard-{i}",
                               args=(i, workers, paths, config, parts[i], i == 0 and direct is not None,
                                     send, progress if i == 0 else None))
            proc.start()
            send.close()
            pipes.append(recv)
            procs.append(proc)
        if direct is not None:
            results = _follow_parts(pipes, procs, parts, sinks[0])
        else:
            results = [_receive(i, r, p) for i, (r, p) in enumerate(zip(pipes, procs))]
            _raise_first_error(results)
            for r, part in zip(results, parts):
                _copy_part(part, r.documents, sinks)
    finally:
        remove_tree_later(tmp)           # the parts' blocks are freed while the summary prints
    return _merge(results, time.perf_counter() - started)


FOLLOW_S = 0.05


def _follow_parts(pipes, procs, parts: list[str], sink: NdjsonSink) -> list[WorkerResult]:
    """Worker 0 has appended to the output file itself. Once it is done, the next worker's part
    is copied after it while that worker is still writing it (then the rest when it is done),
    and so on: only the tail of the last part is copied after the last worker ends."""
    first = _receive(0, pipes[0], procs[0])
    results = [first]
    if first.error is None:
        sink.adopt_appended(first.documents)
    for i in range(1, len(pipes)):
        copying = all(r.error is None for r in results)   # after a failure: only collect the rest
        offset = 0
        part = None
        try:
            while not pipes[i].poll(FOLLOW_S):
                if copying and part is None and os.path.exists(parts[i]):
                    part = open(parts[i], "rb")
                if part is not None:
                    offset = sink.follow_encoded(part, offset)
            result = _receive(i, pipes[i], procs[i])
            results.append(result)
            if copying and result.error is None:
                if part is None:
                    part = open(parts[i], "rb")
                sink.follow_encoded(part, offset)
                sink.adopt_appended(result.documents)
        finally:
            if part is not None:
                part.close()
    _raise_first_error(results)
    return results


def _raise_first_error(results: list[WorkerResult]) -> None:
    for r in results:
        if r.error is not None:
            raise (CaptureError if r.capture_error else WorkerError)(r.error)


def _receive(index: int, conn, proc) -> WorkerResult:
    try:
        result = conn.recv()
    except EOFError:                     # the worker died without a word (killed, OOM)
        result = WorkerResult(index, error=f"analysis worker {index} exited unexpectedly")
    proc.join()
    if result.error is None and proc.exitcode != 0:
        result.error = f"analysis worker {index} exited with code {proc.exitcode}"
    return result


def _worker_main(index: int, workers: int, paths: list[str], config: PipelineConfig, part: str,
                 append: bool, conn, progress) -> None:
    result = WorkerResult(index)
    try:
        _work(result, workers, paths, config, part, append, progress)
    except CaptureError as exc:
        result.error, result.capture_error = str(exc), True
    except KeyboardInterrupt:            # Ctrl-C reaches the whole group: the parent reports it
        os._exit(130)
    except Exception as exc:             # reported by the parent as one line; no traceback
        result.error = f"analysis worker {index}: {type(exc).__name__}: {exc}"
    result.max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(result)
    conn.close()


def _work(result: WorkerResult, workers: int, paths: list[str], config: PipelineConfig, part: str,
          append: bool, progress) -> None:
    sink = NdjsonSink(part, append=append)
    pipeline = Pipeline(config)
    share_evidence_lines(config, [sink])
    cstats = result.capture
    mine = read_files(paths, cstats, shard=(result.index, workers))
    result.documents = drive(mine, pipeline, sink.write, cstats, progress)
    sink.close()
    result.stats = pipeline.stats
    result.endpoint_stats = pipeline.endpoint_stats
    result.dtls_stats = dict(getattr(pipeline.dtls, "stats", {}))
    result.oscore_stats = dict(getattr(pipeline.oscore, "stats", {}))


def _copy_part(part: str, count: int, sinks: list) -> None:
    """Append a worker's documents to every sink, in the worker's order."""
    with open(part, "rb") as f:
        for sink in sinks:
            f.seek(0)
            if type(sink) is NdjsonSink and sink.append_encoded(f, count):
                continue                                 # already the sink's exact encoding
            import json
            batch: list[dict] = []
            for line in f:
                batch.append(json.loads(line))
                if len(batch) >= 512:           # no cache to keep warm here: parsed lines
                    sink.write(batch)
                    batch = []
            if batch:
                sink.write(batch)


def _merge(results: list[WorkerResult], seconds: float) -> AnalysisResult:
    stats = PipelineStats()
    endpoints: dict[str, Counter] = {}
    dtls: Counter = Counter()
    oscore: Counter = Counter()
    for r in results:
        for name in (f.name for f in dataclasses.fields(r.stats)):    # compiled: no __dict__
            value = getattr(r.stats, name)
            if isinstance(value, Counter):
                getattr(stats, name).update(value)
            else:
                setattr(stats, name, getattr(stats, name) + value)
        for ep, counts in r.endpoint_stats.items():
            endpoints.setdefault(ep, Counter()).update(counts)
        dtls.update(r.dtls_stats)
        oscore.update(r.oscore_stats)
    # Every worker read every frame: the capture counts are those of any one of them.
    pipeline = ShardedPipeline(stats, endpoints, TrackerTotals(dict(dtls)), TrackerTotals(dict(oscore)),
                               len(results), [r.max_rss_kb for r in results])
    result = AnalysisResult(results[0].capture, pipeline, documents=sum(r.documents for r in results),
                            seconds=seconds)
    result.errors = list(results[0].capture.errors)
    return result
