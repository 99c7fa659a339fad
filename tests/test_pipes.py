"""`lwm2m-monitor analyze` in pipes: a capture read from standard input (`tcpdump -w - | ...`,
`zcat big.pcap.gz | ...`) gives the documents the same capture gives as a file, named `stdin`;
a signal ends that input cleanly; `--out -` writes documents only to standard output.

Run through the real command line in a subprocess, with the capture on a pipe (no seeking, no
size), on captures made by real peers: a Leshan plain capture, an mbed TLS DTLS session decrypted
with its keys, and Golioth's compressed pcapng from the corpus.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from tests.captures import CORPUS, CORPUS_PSK, ROOT, keys_file

LESHAN = os.path.join(ROOT, "pcaps", "leshan-nosec-operations.pcap")
MBEDTLS = os.path.join(ROOT, "pcaps", "dtls-mbedtls-psk-aes128-ccm8.pcap")
GOLIOTH = os.path.join(CORPUS, "golioth-coap-pcap", "golioth_basics_psk.pcapng")


def run_cli(args: list[str], cwd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, timeout=120)


def analyze(args: list[str], cwd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return run_cli(["analyze", *args], cwd, stdin)


def run_on_a_terminal(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    """The command with a pseudo-terminal as standard input: a user who typed it, piping nothing."""
    import pty
    leader, follower = pty.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run([sys.executable, "-m", "monitor.cli", *args], cwd=cwd, env=env,
                              stdin=follower, capture_output=True, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)


def documents(path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


def without_file_path(docs: list[dict]) -> list[dict]:
    """The documents less what names the capture: `file.path`, and the ids that hash it in
    (a DTLS handshake's event.id, and the alerts' references to it)."""
    out = []
    for d in docs:
        d = {k: v for k, v in d.items() if k != "file"}
        d["event"] = {k: v for k, v in d["event"].items() if k != "id"}
        if "related" in d:
            d["related"] = {k: v for k, v in d["related"].items() if k != "id"}
        out.append(d)
    return out


def golioth_keys(tmp_path) -> str:
    """The PSK and identity ../shared/corpus/MANIFEST.md publishes for the Golioth capture."""
    path = tmp_path / "golioth.keys.yaml"
    path.write_text(f'psk:\n  - identity: "20230614151602-linux@blush-unexpected-fox"\n'
                    f'    key: "{CORPUS_PSK["golioth_basics_psk.pcapng"]}"\n')
    return str(path)


@pytest.mark.parametrize("capture", [LESHAN, MBEDTLS, GOLIOTH], ids=os.path.basename)
def test_a_capture_on_standard_input_gives_the_files_documents(capture, tmp_path):
    keys = golioth_keys(tmp_path) if capture == GOLIOTH else keys_file(capture)
    extra = ["--keys", keys] if keys else []
    with open(capture, "rb") as f:
        data = f.read()
    piped = analyze(["-", "--out", str(tmp_path / "piped.ndjson"), "-q", *extra], str(tmp_path), data)
    assert piped.returncode == 0, piped.stderr
    filed = analyze([capture, "--out", str(tmp_path / "file.ndjson"), "-q", *extra], str(tmp_path))
    assert filed.returncode == 0, filed.stderr
    from_pipe, from_file = documents(tmp_path / "piped.ndjson"), documents(tmp_path / "file.ndjson")
    assert len(from_file) > 5
    assert {d["file"]["path"] for d in from_pipe} == {"stdin"}
    assert without_file_path(from_pipe) == without_file_path(from_file)
    if capture != LESHAN:                  # the keys opened the session over the pipe too
        assert any(d.get("dtls", {}).get("decrypted") for d in from_pipe)


def test_compressed_capture_on_standard_input(tmp_path):
    with open(LESHAN, "rb") as f:
        data = f.read()
    plain = analyze(["-", "--out", str(tmp_path / "a.ndjson"), "-q"], str(tmp_path), data)
    packed = analyze(["-", "--out", str(tmp_path / "b.ndjson"), "-q"], str(tmp_path), gzip.compress(data))
    assert plain.returncode == packed.returncode == 0
    assert (tmp_path / "a.ndjson").read_bytes() == (tmp_path / "b.ndjson").read_bytes()


def test_standard_input_with_capture_files_is_one_stream_of_time(tmp_path):
    with open(MBEDTLS, "rb") as f:
        data = f.read()
    keys = keys_file(MBEDTLS)
    both = analyze([LESHAN, "-", "--keys", keys, "--out", str(tmp_path / "both.ndjson"), "-q"],
                   str(tmp_path), data)
    assert both.returncode == 0, both.stderr
    paths = {d["file"]["path"] for d in documents(tmp_path / "both.ndjson")}
    assert paths == {LESHAN, "stdin"}


def test_a_cut_stream_keeps_what_came_before_and_says_where_it_stopped(tmp_path):
    with open(LESHAN, "rb") as f:
        data = f.read()
    whole = analyze(["-", "--out", str(tmp_path / "whole.ndjson"), "-q"], str(tmp_path), data)
    cut = analyze(["-", "--out", str(tmp_path / "cut.ndjson"), "-q"], str(tmp_path), data[:len(data) * 2 // 3])
    assert whole.returncode == 0
    assert cut.returncode == 1
    assert b"stdin: truncated record at byte" in cut.stderr
    assert b"Traceback" not in cut.stderr
    assert 0 < len(documents(tmp_path / "cut.ndjson")) < len(documents(tmp_path / "whole.ndjson"))


def test_empty_standard_input_is_reported(tmp_path):
    run = analyze(["-", "--out", str(tmp_path / "e.ndjson"), "-q"], str(tmp_path), b"")
    assert run.returncode == 1
    assert b"stdin: empty file" in run.stderr


def test_default_output_is_named_after_stdin(tmp_path):
    with open(LESHAN, "rb") as f:
        run = analyze(["-", "-q"], str(tmp_path), f.read())
    assert run.returncode == 0, run.stderr
    assert len(documents(tmp_path / "stdin.events.ndjson")) > 5


@pytest.mark.parametrize("args, message", [
    (["-", "-"], b"standard input (-) can be read only once"),
    (["-", "--workers", "2"], b"--workers needs capture files"),
])
def test_standard_input_usage_errors(args, message, tmp_path):
    run = analyze([*args, "--out", str(tmp_path / "x.ndjson")], str(tmp_path), b"")
    assert run.returncode == 2
    assert message in run.stderr


def test_workers_auto_reads_standard_input_in_one_process(tmp_path):
    with open(LESHAN, "rb") as f:
        data = f.read()
    auto = analyze(["-", "--workers", "auto", "--out", str(tmp_path / "auto.ndjson"), "-q"], str(tmp_path), data)
    one = analyze(["-", "--out", str(tmp_path / "one.ndjson"), "-q"], str(tmp_path), data)
    assert auto.returncode == one.returncode == 0
    assert (tmp_path / "auto.ndjson").read_bytes() == (tmp_path / "one.ndjson").read_bytes()


# --- Ctrl-C / SIGTERM end the input; what was read is analysed and written ---------------

def _interrupted_pipe_run(tmp_path, data: bytes, sig: int, name: str) -> subprocess.CompletedProcess:
    """The capture's bytes on a pipe kept open (a tcpdump still running), then `sig`."""
    import signal
    import time
    out = tmp_path / f"{name}.ndjson"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "analyze", "-", "--out", str(out)],
                            cwd=str(tmp_path), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(data)
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _unread(proc.stdin) > 0:   # until it took every byte
        time.sleep(0.05)
    time.sleep(0.5)                      # and is waiting for more
    proc.send_signal(sig)
    proc.wait(timeout=60)                # with the pipe still open: no end of input but the signal
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.stdin.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _unread(pipe) -> int:
    """Bytes written to the pipe that its reader has not taken yet (FIONREAD)."""
    import array
    import fcntl
    import termios
    n = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, n, True)
    return n[0]


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_ends_piped_input_and_everything_read_is_written(signame, tmp_path):
    """`tcpdump -w - | lwm2m-monitor analyze -` is ended by Ctrl-C: the output is exactly what
    the same bytes give when the pipe closes (what the pipeline's close emits included),
    the summary is printed, and the exit code says it was interrupted."""
    import signal
    with open(LESHAN, "rb") as f:
        data = f.read()
    closed = analyze(["-", "--out", str(tmp_path / "closed.ndjson"), "-q"], str(tmp_path), data)
    assert closed.returncode == 0
    run = _interrupted_pipe_run(tmp_path, data, getattr(signal, signame), "stopped")
    assert run.returncode == 130, run.stderr
    assert b"interrupted: the input ended after 100 packets" in run.stderr
    assert b"Traceback" not in run.stderr
    assert b"documents 47" in run.stdout
    assert (tmp_path / "stopped.ndjson").read_bytes() == (tmp_path / "closed.ndjson").read_bytes()
    assert any(json.loads(line).get("rule", {}).get("folded")
               for line in (tmp_path / "stopped.ndjson").read_bytes().splitlines()), \
        "the folded alert the rule engine held (nosec-transport, 42 repeats) was written at the stop"


def test_a_stop_during_a_file_run_ends_the_input_at_a_chunk_and_closes_the_pipeline(tmp_path):
    """In a file run the reader sees the stop before its next chunk: the documents are those of
    the capture cut after the first chunk's whole records, pipeline close included."""
    from monitor.analyze import ListSink, analyze_files
    from monitor.capture import CHUNK, InputStop
    from monitor.cli import build_config
    from parsers.pcapfile import Packet, Reader
    import argparse
    capture = tmp_path / "gen.pcap"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_lwm2m_traffic.py"), str(capture),
                    "--packets", "30000", "--clients", "300"], check=True, capture_output=True)
    data = capture.read_bytes()
    assert len(data) > 2 * CHUNK

    def config():
        return build_config(argparse.Namespace(keys=None, objects=None, rules=[], config=None,
                                               no_rules=False, psk_wordlist=None))
    stop = InputStop()

    class StopAtFirstWrite:
        def __init__(self):
            self.docs = []

        def write(self, docs):
            stop.request()               # not reading now: must not raise here
            self.docs.extend(docs)

        def close(self):
            return None
    stopped = StopAtFirstWrite()
    res = analyze_files([str(capture)], config(), [stopped], stop=stop)
    assert res.capture.interrupted and not res.errors
    # the same capture cut after the last whole record of the first chunk
    reader = Reader()
    whole = sum(1 for r in reader.feed(data[:CHUNK]) if type(r) is Packet)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:reader.offset])
    expected = ListSink()
    ref = analyze_files([str(cut)], config(), [expected])
    assert res.capture.frames == ref.capture.frames == whole
    assert 0 < len(stopped.docs) == len(expected.docs)
    assert without_file_path(stopped.docs) == without_file_path(expected.docs)


def test_documents_to_standard_output_and_the_summary_beside_them(tmp_path):
    """`--out - | jq`: standard output carries the documents only, the summary goes to stderr."""
    run = analyze([LESHAN, "--out", "-"], str(tmp_path))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 47 and all("event" in d for d in docs)
    assert b"documents 47" in run.stderr and b"events written to standard output" in run.stderr
    assert b"packets" not in run.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_formats_to_standard_output_read_back_as_the_file_does(fmt, tmp_path):
    import io

    import pandas as pd
    piped = analyze([LESHAN, "--format", fmt, "--out", "-"], str(tmp_path))
    assert piped.returncode == 0, piped.stderr
    assert b"events written to standard output" in piped.stderr
    filed = analyze([LESHAN, "--format", fmt, "--out", str(tmp_path / f"t.{fmt}"), "-q"], str(tmp_path))
    assert filed.returncode == 0
    assert not (tmp_path / "-").exists()
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    from_pipe, from_file = read(io.BytesIO(piped.stdout)), read(str(tmp_path / f"t.{fmt}"))
    assert len(from_pipe) == 47
    pd.testing.assert_frame_equal(from_pipe, from_file)


def test_standard_input_on_a_terminal_is_a_usage_error(tmp_path):
    """`analyze -` typed with nothing piped in says so instead of waiting for the keyboard."""
    run = run_on_a_terminal(["analyze", "-", "--out", str(tmp_path / "x.ndjson")], str(tmp_path))
    assert run.returncode == 2
    assert b"none is piped in" in run.stderr


# --- inventory and report read `-` too: documents or a capture, told apart by content --------

@pytest.mark.parametrize("piped", ["ndjson", "ndjson.gz", "capture", "capture.gz"])
def test_inventory_of_standard_input_is_the_inventory_of_the_file(piped, tmp_path):
    keys = keys_file(MBEDTLS)
    ndjson = run_cli(["analyze", MBEDTLS, "--keys", keys, "--out", "-", "-q"], str(tmp_path)).stdout
    with open(MBEDTLS, "rb") as f:
        capture = f.read()
    data = {"ndjson": ndjson, "capture": capture}[piped.split(".")[0]]
    if piped.endswith(".gz"):
        data = gzip.compress(data)
    from_pipe = run_cli(["inventory", "-", "--keys", keys, "-o", "pipe.csv", "-q"], str(tmp_path), data)
    from_file = run_cli(["inventory", MBEDTLS, "--keys", keys, "-o", "file.csv", "-q"], str(tmp_path))
    assert from_pipe.returncode == from_file.returncode == 0, from_pipe.stderr
    table = (tmp_path / "pipe.csv").read_bytes()
    assert table == (tmp_path / "file.csv").read_bytes()
    assert b"mbedtls" in table


def test_report_of_analyze_through_a_pipe(tmp_path):
    ndjson = run_cli(["analyze", LESHAN, "--out", "-", "-q"], str(tmp_path)).stdout
    run = run_cli(["report", "-"], str(tmp_path), ndjson)
    assert run.returncode == 0, run.stderr
    assert b"report: stdin.report.html (47 documents)" in run.stdout
    page = (tmp_path / "stdin.report.html").read_text()
    assert "leshan-client-01" in page and "stdin" in page


def test_a_cut_compressed_document_stream_is_one_clear_error(tmp_path):
    ndjson = run_cli(["analyze", LESHAN, "--out", "-", "-q"], str(tmp_path)).stdout
    cut = gzip.compress(ndjson)[:400]
    (tmp_path / "cut.ndjson.gz").write_bytes(cut)
    for args, data, name in ((["inventory", "-"], cut, b"stdin"),
                             (["inventory", str(tmp_path / "cut.ndjson.gz")], None, b"cut.ndjson.gz")):
        run = run_cli(args, str(tmp_path), data)
        assert run.returncode == 3
        assert name + b": cannot read" in run.stderr and b"Traceback" not in run.stderr


def test_views_reading_a_terminal_say_what_to_pipe_in(tmp_path):
    for command in ("inventory", "report"):
        run = run_on_a_terminal([command, "-"], str(tmp_path))
        assert run.returncode == 2 and b"none is piped in" in run.stderr


def test_one_signal_ends_a_pipe_that_has_given_nothing_yet(tmp_path):
    """Ctrl-C before the first byte (an ssh or tcpdump still starting): the first signal ends the
    run, with nothing to write; it is not swallowed by the wait for the capture's first bytes."""
    import signal
    import time
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "analyze", "-", "--out",
                             str(tmp_path / "none.ndjson")], cwd=str(tmp_path), env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)                      # started, and waiting on the empty pipe
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode == 130
        err = proc.stderr.read()
        assert b"interrupted: the input ended after 0 packets" in err and b"Traceback" not in err
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()


def test_an_abort_says_the_output_is_incomplete(monkeypatch, capsys):
    """A second Ctrl-C, or one during a --workers run, aborts: exit 130 and one line saying so."""
    from monitor import cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_analyze", interrupted)
    assert cli.main(["analyze", LESHAN]) == 130
    assert "interrupted; what was written so far is incomplete" in capsys.readouterr().err
