"""Offline analysis: capture files → pipeline → sinks. The CLI and `rules test` call this."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable

from .capture import STDIN, CaptureStats, InputStop, read_files
from .datagram import Datagram
from .keys import parse_keylog
from .pipeline import Pipeline, PipelineConfig
from .sinks import NdjsonSink

# Documents go to the sinks a few at a time, while they are still in the CPU cache: encoding
# and freeing a document built 500 documents earlier cost a sharded worker 9 % more CPU
# (1M-packet bench, batch 512 against 8, measured side by side; 64 was 3 % worse than 8).
BATCH = 8
TLS_KEY_LOG = 0x544C534B


@dataclass
class AnalysisResult:
    capture: CaptureStats
    pipeline: Any                   # the Pipeline, or with --workers a sharding.ShardedPipeline (same read view)
    documents: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def analyze_files(paths: list[str], config: PipelineConfig, sinks: Iterable = (),
                  progress: Callable[[int, int], None] | None = None,
                  stop: InputStop | None = None, stdin: BinaryIO | None = None) -> AnalysisResult:
    """Run every capture through one pipeline; documents go to every sink in batches. With
    `stop`, a request ends the input early; the run then finishes as at the captures' end."""
    sinks = list(sinks)
    cstats = CaptureStats()
    pipeline = Pipeline(config)
    result = AnalysisResult(cstats, pipeline)
    started = time.perf_counter()
    keylog = config.keys.keylog

    def on_secrets(path: str, secrets_type: int, data: bytes) -> None:
        # pcapng Decryption Secrets Blocks carry TLS/DTLS key logs ('TLSK'); the file's own
        # entries never replace the user's.
        if secrets_type == TLS_KEY_LOG:
            for random, secret in parse_keylog(data.decode("ascii", "replace")).items():
                keylog.setdefault(random, secret)

    datagrams = read_files(paths, cstats, on_secrets, stop=stop, stdin=stdin)   # raises CaptureError for a missing file
    share_evidence_lines(config, sinks)
    result.documents = drive(datagrams, pipeline, lambda batch: _write(sinks, batch), cstats, progress)
    result.errors = list(cstats.errors)
    result.seconds = time.perf_counter() - started
    return result


def drive(datagrams: Iterable[Datagram], pipeline: Pipeline, write: Callable[[list[dict]], None],
          cstats: CaptureStats, progress: Callable[[int, int], None] | None = None) -> int:
    """Every datagram through the pipeline, then its close(); the documents go to `write` in
    batches of BATCH. Returns how many were written. `progress(datagrams, file bytes read)`."""
    batch: list[dict] = []
    feed = pipeline.feed
    written = n = 0
    for dgram in datagrams:
        docs = feed(dgram)
        if docs:
            batch.extend(docs)
            if len(batch) >= BATCH:
                write(batch)
                written += len(batch)
                batch = []
        n += 1
        if progress is not None and not n & 0x3FFF:
            progress(n, cstats.file_bytes)
    for docs in pipeline.close_batches():
        batch.extend(docs)
        if len(batch) >= BATCH:
            write(batch)
            written += len(batch)
            batch = []
    write(batch)
    return written + len(batch)


def collect(paths: list[str], config: PipelineConfig | None = None,
            stdin: BinaryIO | None = None) -> tuple[list[dict], AnalysisResult]:
    """All documents of a run, in output order (tests, reports, `rules test`); the path `-`
    reads `stdin` (default: the process's standard input)."""
    sink = ListSink()
    res = analyze_files(paths, config or PipelineConfig(), [sink], stdin=stdin)
    return sink.docs, res


class ListSink:
    def __init__(self) -> None:
        self.docs: list[dict] = []

    def write(self, docs: list[dict]) -> None:
        self.docs.extend(docs)

    def close(self):
        return None


class WorkerError(Exception):
    """A `--workers` analysis process failed (killed, out of memory, an unexpected error)."""


def share_evidence_lines(config: PipelineConfig, sinks: list) -> None:
    """Let the first NDJSON file sink write the lines the rule engine encodes for its folded
    alerts' evidence, instead of encoding those documents a second time."""
    rules = config.rules
    if rules is None:
        return
    for sink in sinks:
        if type(sink) is NdjsonSink and not sink.to_stdout:
            sink.reuse_lines(rules.share_lines())
            return


def _write(sinks, docs: list[dict]) -> None:
    if docs:
        for sink in sinks:
            sink.write(docs)


class TerminalProgress:
    """A one-line progress bar on stderr, only when it is a terminal."""

    def __init__(self, paths: list[str]):
        # standard input has no size to measure against: packets are counted without a bar
        self.total: int | None = (None if STDIN in paths
                                  else sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) or 1)
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, packets: int, nbytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        if self.total is None:
            sys.stderr.write(f"\r{packets:,} packets, {nbytes / 1e6:,.1f} MB read")
            sys.stderr.flush()
            return
        frac = min(1.0, nbytes / self.total)
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r[{bar:<30}] {frac * 100:5.1f}%  {packets:,} packets")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()
