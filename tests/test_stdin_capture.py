"""`lwm2m-monitor analyze -`: a capture read from standard input (`tcpdump -w - | ...`,
`zcat big.pcap.gz | ...`) gives the documents the same capture gives as a file, named `stdin`.

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


def analyze(args: list[str], cwd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, timeout=120)


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
