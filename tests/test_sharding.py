"""`--workers N` (monitor/sharding.py) gives the same documents as one process.

Every capture in pcaps/ (with its keys) and a generated many-client capture (aiocoap-encoded by
bench/gen_lwm2m_traffic.py) are analysed once in one process and once on two forked workers,
each with a fresh `PipelineConfig` from `monitor.cli.build_config` (keys, objects, rules: the
rule engine and the key store carry state). The documents, sorted by event.id, must be equal.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import zlib

import pytest

from monitor import sharding
from monitor.analyze import ListSink, analyze_files
from monitor.capture import CaptureError, CaptureStats
from monitor.cli import build_config, main
from monitor.sinks import append_file
from tests.captures import ROOT, keys_file, project_captures


def config_for(capture: str | None):
    args = argparse.Namespace(keys=keys_file(capture) if capture else None, objects=None, rules=[],
                              config=None, no_rules=False, psk_wordlist=None)
    return build_config(args)


def canonical(docs: list[dict]) -> list[str]:
    return sorted((json.dumps(d, sort_keys=True) for d in docs),
                  key=lambda s: (json.loads(s)["event"]["id"], s))


def run_both(paths: list[str], keys_of: str | None, workers: int = 2):
    single = ListSink()
    res1 = analyze_files(paths, config_for(keys_of), [single])
    sharded = ListSink()
    res2 = sharding.analyze_sharded(paths, config_for(keys_of), workers, [sharded])
    return single.docs, res1, sharded.docs, res2


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("gen") / "lwm2m-20k.pcap")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_lwm2m_traffic.py"), path,
                    "--packets", "20000", "--clients", "400"], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("capture", project_captures(), ids=os.path.basename)
def test_two_workers_same_documents_as_one_process(capture):
    docs1, res1, docs2, res2 = run_both([capture], capture)
    assert res1.pipeline.stats.datagrams, "every capture in pcaps/ has UDP traffic"
    assert len(docs2) == len(docs1) == res1.documents == res2.documents
    assert canonical(docs2) == canonical(docs1)
    for name in ("datagrams", "coap_messages", "dtls_datagrams", "operations", "oscore_messages",
                 "harvested_psks", "harvested_oscore", "alerts"):
        assert getattr(res2.pipeline.stats, name) == getattr(res1.pipeline.stats, name), name
    assert res2.capture.frames == res1.capture.frames
    assert {ep: dict(c) for ep, c in res2.pipeline.endpoint_stats.items()} == \
           {ep: dict(c) for ep, c in res1.pipeline.endpoint_stats.items()}


def test_generated_capture_is_split_across_workers_and_matches(generated):
    docs1, res1, docs2, res2 = run_both([generated], None, workers=3)
    assert res1.pipeline.stats.operations > 10_000
    assert canonical(docs2) == canonical(docs1)
    # The work was really shared: every worker produced a good part of the endpoints.
    per_shard = [0, 0, 0]
    for ep in res1.pipeline.endpoint_stats:
        assert ep.startswith("bench-ep-")
    for d in docs1:
        ip = d.get("client", {}).get("ip")
        if ip:
            per_shard[sharding.shard_of(ip, 3)] += 1
    assert min(per_shard) > len(docs1) / 6
    assert res2.pipeline.stats.decode_errors == res1.pipeline.stats.decode_errors


def test_cli_output_deterministic_and_same_set(generated, tmp_path):
    outs = []
    for name, workers in (("a", "2"), ("b", "2"), ("single", "1")):
        out = str(tmp_path / f"{name}.ndjson")
        assert main(["analyze", generated, "--out", out, "-q", "--workers", workers]) == 0
        with open(out, "rb") as f:
            outs.append(f.read())
    assert outs[0] == outs[1], "two sharded runs give byte-identical NDJSON"
    assert outs[0] != outs[2], "the sharded order differs (worker order), so this compares something"
    assert sorted(outs[0].splitlines()) == sorted(outs[2].splitlines())


def test_worker_writing_into_the_output_file_gives_the_copied_parts_bytes(generated, tmp_path):
    """With one NDJSON sink, worker 0 appends to the output file itself; the file must hold
    exactly what copying every part gives (the path taken with any other sink set)."""
    from monitor.sinks import NdjsonSink, dumps_line
    direct = NdjsonSink(str(tmp_path / "direct.ndjson"))
    listed = ListSink()
    res = sharding.analyze_sharded([generated], config_for(None), 3, [direct])
    report = direct.close()
    sharding.analyze_sharded([generated], config_for(None), 3, [listed])
    data = (tmp_path / "direct.ndjson").read_bytes()
    assert data == b"".join(dumps_line(d) for d in listed.docs)
    assert report.sent == res.documents == len(listed.docs) > 10_000


def test_ndjson_file_with_shared_evidence_lines_is_the_documents_encoded(generated, tmp_path):
    """One process: the NDJSON sink writes the lines the rule engine encoded for folded
    evidence (every repeat of nosec-transport here); the file must be each document encoded."""
    from monitor.sinks import NdjsonSink, dumps_line
    config = config_for(None)
    sink = NdjsonSink(str(tmp_path / "shared.ndjson"))
    res = analyze_files([generated], config, [sink])
    sink.close()
    assert config.rules.lines == {}, "the engine shared its lines and the sink took every one"
    assert config.rules.hits["nosec-transport"] > res.pipeline.stats.alerts // 2
    listed = ListSink()
    analyze_files([generated], config_for(None), [listed])
    assert (tmp_path / "shared.ndjson").read_bytes() == b"".join(dumps_line(d) for d in listed.docs)
    assert sum(d["event"]["kind"] == "alert" and d["rule"].get("folded", False) for d in listed.docs) > 100


def test_workers_auto_is_one_per_usable_cpu(generated, tmp_path, monkeypatch):
    """`--workers auto` counts the CPUs this process may run on (its affinity mask), and runs
    exactly as that explicit count does."""
    from monitor.cli import usable_cpus
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert usable_cpus() == 3
    outs = []
    for workers in ("auto", "3"):
        out = tmp_path / f"w{workers}.ndjson"
        assert main(["analyze", generated, "--out", str(out), "-q", "--workers", workers]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("bad", ["0", "-2", "two", ""])
def test_workers_must_be_a_positive_count_or_auto(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "pcaps/leshan-nosec-operations.pcap", "--workers", bad])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_cli_summary_with_workers(generated, capsys, tmp_path):
    out = str(tmp_path / "s.ndjson")
    assert main(["analyze", generated, "--out", out, "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "packets 20,000" in text or "packets 20,001" in text
    assert "bench-ep-" in text and f"events written to {out}" in text


def test_missing_capture_raises_before_forking(tmp_path):
    with pytest.raises(CaptureError):
        sharding.analyze_sharded([str(tmp_path / "nope.pcap")], config_for(None), 2, [])


@pytest.mark.parametrize("src,sport,dst,dport,expected", [
    ("10.0.0.9", 40000, "10.0.0.1", 5683, "10.0.0.9"),      # client → server
    ("10.0.0.1", 5684, "10.0.0.9", 40000, "10.0.0.9"),      # server → client (DTLS)
    ("10.0.0.1", 5685, "10.0.0.9", 56830, "10.0.0.9"),      # bootstrap server
    ("fe80::2", 5783, "fe80::1", 33333, "fe80::1"),         # CoAP-over-DTLS alt port
    ("10.0.0.9", 5683, "10.0.0.1", 5683, "10.0.0.1"),       # both server ports: smaller
    ("10.0.0.9", 40000, "10.0.0.1", 41000, "10.0.0.1"),     # neither: smaller
])
def test_shard_address(src, sport, dst, dport, expected):
    assert sharding.shard_address(src, sport, dst, dport) == expected
    assert sharding.shard_address(dst, dport, src, sport) == expected   # both directions agree


def test_shard_of_is_stable_crc32():
    assert sharding.shard_of("10.1.0.7", 4) == zlib.crc32(bytes([10, 1, 0, 7])) % 4
    assert sharding.shard_of(bytes([10, 1, 0, 7]), 4) == sharding.shard_of("10.1.0.7", 4)
    assert {sharding.shard_of(f"10.1.0.{i}", 2) for i in range(20)} == {0, 1}


@pytest.mark.parametrize("src,sport,dst,dport,expected", [
    ("10.0.0.9", 40000, "10.0.0.1", 5683, "10.0.0.9"),
    ("10.0.0.1", 5684, "10.0.0.9", 40000, "10.0.0.9"),
    ("10.0.0.9", 40000, "10.0.0.1", 41000, "10.0.0.1"),
    ("fe80::2", 5783, "fe80::1", 33333, "fe80::1"),
])
def test_worker_filter_keeps_exactly_its_clients(src, sport, dst, dport, expected):
    """The filter a worker applies to raw addresses agrees with shard_of(shard_address())."""
    raw = [ipaddress.ip_address(a).packed for a in (src, dst)]
    for workers in (2, 3):
        owners = [i for i in range(workers)
                  if sharding.ShardFilter(i, workers).keep(raw[0], sport, raw[1], dport)]
        assert owners == [sharding.shard_of(expected, workers)]
        back = [i for i in range(workers)
                if sharding.ShardFilter(i, workers).keep(raw[1], dport, raw[0], sport)]
        assert back == owners


def test_cli_csv_format_with_workers(generated, tmp_path):
    """Sinks other than plain NDJSON get the parts' documents decoded (the generic path)."""
    import pandas as pd
    tables = []
    for workers in ("1", "2"):
        out = str(tmp_path / f"w{workers}.csv")
        assert main(["analyze", generated, "--out", out, "-q", "--format", "csv", "--workers", workers]) == 0
        tables.append(pd.read_csv(out, low_memory=False).sort_values("event.id").reset_index(drop=True))
    assert len(tables[0]) > 10_000
    assert list(tables[0].columns) == list(tables[1].columns)
    assert tables[0].equals(tables[1])


@pytest.mark.parametrize("target", ["file", "memory"])
def test_append_part_after_what_the_sink_wrote(tmp_path, target):
    """The parent appends a worker's part to the output in the kernel (copy_file_range) when it
    can and by a buffered copy otherwise (here: an in-memory target without a descriptor)."""
    import io
    part = tmp_path / "part.ndjson"
    body = b"".join(b'{"n":%d}\n' % i for i in range(50_000))     # several copy rounds' worth
    part.write_bytes(body)
    if target == "file":
        dst = open(tmp_path / "out.ndjson", "wb")
    else:
        dst = io.BytesIO()
    dst.write(b'{"first":true}\n')
    dst.flush()
    with open(part, "rb") as src:
        append_file(src, dst)
    dst.write(b'{"last":true}\n')
    if target == "file":
        dst.close()
        got = (tmp_path / "out.ndjson").read_bytes()
    else:
        got = dst.getvalue()
    assert got == b'{"first":true}\n' + body + b'{"last":true}\n'


@pytest.mark.parametrize("target", ["file", "buffer"])
def test_following_a_part_that_is_still_being_written(tmp_path, target):
    """`--workers`: the parent copies a worker's part while the worker still writes it, in
    pieces that cut lines anywhere; the output must be the part's bytes."""
    import io
    body = b"".join(b'{"n":%d}\n' % i for i in range(30_000))
    part_path = tmp_path / "part.ndjson"
    dst = open(tmp_path / "out.ndjson", "wb") if target == "file" else io.BytesIO()
    dst.write(b'{"first":true}\n')
    dst.flush()
    written = copied = 0
    with open(part_path, "wb") as writer, open(part_path, "rb") as reader:
        for cut in (0, 1, 7, 4096, 100_001, 100_002, 250_000, len(body)):
            writer.write(body[written:cut])
            writer.flush()
            written = cut
            copied = append_file(reader, dst, copied)
            assert copied == written
    if target == "file":
        dst.close()
        got = (tmp_path / "out.ndjson").read_bytes()
    else:
        got = dst.getvalue()
    assert got == b'{"first":true}\n' + body


def test_sink_follows_a_part_and_counts_it_once(tmp_path):
    from monitor.sinks import NdjsonSink
    body = b"".join(b'{"n":%d}\n' % i for i in range(1000))
    part_path = tmp_path / "part.ndjson"
    out = NdjsonSink(str(tmp_path / "out.ndjson"))
    out.write([{"first": True}])
    offset = 0
    with open(part_path, "wb") as writer, open(part_path, "rb") as reader:
        for cut in (5, 5000, len(body)):
            writer.write(body[offset:cut])
            writer.flush()
            offset = out.follow_encoded(reader, offset)
    out.adopt_appended(1000)
    out.write([{"last": True}])
    assert out.close().sent == 1002
    assert (tmp_path / "out.ndjson").read_bytes() == b'{"first":true}\n' + body + b'{"last":true}\n'


def test_a_killed_worker_is_one_clear_error_with_its_exit_code(generated, tmp_path):
    """A worker that dies (OOM killer, kill -9) ends the run with exit code 6 and one line,
    not a traceback, even while the parent is copying the parts."""
    import signal
    import time
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "analyze", generated, "--out",
                             str(tmp_path / "o.ndjson"), "-q", "--workers", "2"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                workers = [int(c) for c in f.read().split()]
        except OSError:
            pass
    assert len(workers) == 2, "both workers started"
    os.kill(workers[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 6
    assert err.strip().splitlines() == ["lwm2m-monitor: analysis worker 1 exited unexpectedly; the output is incomplete"]


def test_pipeline_close_in_batches_gives_what_close_gives(generated):
    """`drive` ends a run with `Pipeline.close_batches` (the end of a capture holds a pending
    exchange or folded alert per client); it must give `close()`'s documents in its order."""
    from monitor.capture import read_files
    from monitor.pipeline import Pipeline

    def fed():
        pipeline = Pipeline(config_for(None))
        for dgram in read_files([generated], CaptureStats()):
            pipeline.feed(dgram)
        return pipeline

    whole = fed().close()
    batches = list(fed().close_batches(size=64))
    assert len(batches) > 3 and len(whole) > 400
    assert [d for b in batches for d in b] == whole
