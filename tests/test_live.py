"""The live sensor against real peers on loopback (run as root: libpcap on `lo`).

Two aiocoap endpoints (tests/test_live_peer.py) talk LwM2M over CoAP while
`lwm2m-monitor live -i lo` sniffs them as a subprocess and tcpdump writes the same traffic to
a file. The live events must equal `lwm2m-monitor analyze` of that file (event.id is built
from packet facts, so equal ids mean equal packets, times and decoding), and tshark must see
the same requests. SIGTERM in the middle of an exchange must lose nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "tests" / "test_live_peer.py"
PORTS = "45690,45691"
FILTER = "udp port 45690 or udp port 45691"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture on lo needs root"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed"),
]
pcapy = pytest.importorskip("pcapy")


@pytest.fixture(autouse=True)
def kernel_stamps_received_packets():
    """Two packet sockets read the clock each on their own unless the kernel stamps the packet
    once on receipt, which it does while any socket has asked for receive timestamps. Then the
    sensor and tcpdump see the very same time for each packet (and so the same event ids)."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
    yield
    s.close()


def wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {text!r}: "
                                 f"{path.read_text(errors='replace') if path.exists() else ''}")
        time.sleep(0.05)
    raise AssertionError(f"timeout waiting for {text!r} in {path}")


def start_sensor(tmp: Path, *extra: str, name: str = "sensor") -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp / f"{name}.ndjson", tmp / f"{name}.stderr"
    cmd = [sys.executable, "-m", "monitor.cli", "live", "-i", "lo", "--ports", PORTS,
           "--out", str(out), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    wait_for(err, "live on lo", proc)
    time.sleep(0.3)          # the capture threads are polling
    return proc, out, err


def start_tcpdump(tmp: Path) -> tuple[subprocess.Popen, Path]:
    pcap, err = tmp / "tcpdump.pcap", tmp / "tcpdump.stderr"
    proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", str(pcap), FILTER],
                            stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    wait_for(err, "listening on", proc)
    time.sleep(0.3)
    return proc, pcap


def run_peer(*args: str, until: str = "DONE", timeout: float = 30.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(PEER), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + timeout
    lines = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip() == until:
            return proc
    proc.kill()
    raise AssertionError(f"peer did not reach {until}: {''.join(lines)}")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout)


def read_docs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def get(doc: dict, dotted: str):
    cur = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


STABLE = ("@timestamp", "event.id", "event.kind", "event.dataset", "event.action", "event.outcome",
          "lwm2m.endpoint", "lwm2m.path", "coap.request.code", "coap.response.code", "coap.mid",
          "coap.token", "source.ip", "source.port", "destination.ip", "destination.port",
          "client.port", "server.port", "rule.name")


def stable(docs: list[dict]) -> list[tuple]:
    return sorted(tuple(str(get(d, f)) for f in STABLE) for d in docs
                  if get(d, "event.kind") != "metric")


def offline(tmp: Path, pcap: Path) -> list[dict]:
    out = tmp / "offline.ndjson"
    subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", str(pcap), "--out", str(out), "-q"],
                   cwd=ROOT, check=True)
    return read_docs(out)


def tshark_requests(pcap: Path) -> list[tuple[int, str]]:
    """(MID, token hex) of every CoAP request Wireshark decodes in the capture."""
    res = subprocess.run(["tshark", "-r", str(pcap), "-d", "udp.port==45690,coap", "-d", "udp.port==45691,coap",
                          "-Y", "coap.code >= 1 && coap.code <= 31", "-T", "fields", "-e", "coap.mid",
                          "-e", "coap.token"], capture_output=True, text=True, check=True)
    rows = []
    for line in res.stdout.splitlines():
        mid, token = line.split("\t")
        rows.append((int(mid), token.replace(":", "").lower()))
    return sorted(rows)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_live_events_equal_offline_analysis_of_the_same_traffic(tmp_path):
    tcpdump, pcap = start_tcpdump(tmp_path)
    sensor, out, err = start_sensor(tmp_path, "--stats-interval", "1")
    try:
        peer = run_peer()
        peer.wait(10)
        time.sleep(1.5)                  # let a periodic stats document go out
    finally:
        rc = stop(sensor, signal.SIGINT)
        stop(tcpdump, signal.SIGINT)
    assert rc == 0, err.read_text()
    live = read_docs(out)
    ops = [d for d in live if get(d, "event.dataset") == "lwm2m.operation"]
    # what the peers did, as the sensor saw it
    assert [(get(d, "event.action"), get(d, "lwm2m.path"), get(d, "coap.response.code"),
             get(d, "event.outcome")) for d in ops] == [
        ("register", "/", "2.01", "success"), ("read", "/3/0/0", "2.05", "success"),
        ("write", "/1/0/1", "2.04", "success"), ("read", "/3/0/9", "4.04", "failure"),
        ("execute", "/3/0/4", "2.04", "success"), ("update", "/", "2.04", "success"),
        ("deregister", "/", "2.02", "success")]
    assert {get(d, "lwm2m.endpoint") for d in ops} == {"live-ep-01"}
    assert {get(d, "observer.ingress.interface.name") for d in ops} == {"lo"}
    # Wireshark sees the same requests in tcpdump's copy of the traffic
    assert sorted((get(d, "coap.mid"), get(d, "coap.token")) for d in ops) == tshark_requests(pcap)
    # the offline analysis of tcpdump's capture gives the same documents, ids included
    off = offline(tmp_path, pcap)
    assert {get(d, "file.path") for d in off if get(d, "event.dataset") == "lwm2m.operation"} == {str(pcap)}
    assert stable(live) == stable(off)
    # stats: periodic and final, with libpcap's drop counters
    stats = [d for d in live if get(d, "event.dataset") == "monitor.stats"]
    assert len(stats) >= 2 and get(stats[-1], "monitor.final") is True
    assert any(get(d, "monitor.final") is False for d in stats)
    final = stats[-1]["monitor"]
    assert final["packets"]["dropped_kernel"] == 0 and final["packets"]["dropped_interface"] == 0
    assert final["interfaces"][0]["name"] == "lo"
    assert final["packets"]["datagrams"] == len(tshark_requests(pcap)) * 2   # every request was answered
    assert final["events"] == len([d for d in live if get(d, "event.kind") == "event"])
    assert "kernel_dropped=0" in err.read_text()


def test_sigterm_mid_exchange_loses_nothing(tmp_path):
    sensor, out, err = start_sensor(tmp_path, "--stats-interval", "0")
    peer = run_peer("--slow", until="SLOW-SENT")
    try:
        time.sleep(0.2)
        rc = stop(sensor, signal.SIGTERM)
    finally:
        peer.kill()
        peer.wait()
    assert rc == 0, err.read_text()
    live = read_docs(out)
    ops = [(get(d, "event.action"), get(d, "lwm2m.path"), get(d, "event.outcome"))
           for d in live if get(d, "event.dataset") == "lwm2m.operation"]
    # every request sent before the signal is there; the unanswered one with outcome unknown
    assert ops == [("register", "/", "success"), ("read", "/3/0/0", "success"),
                   ("write", "/1/0/1", "success"), ("read", "/3/0/9", "failure"),
                   ("execute", "/3/0/4", "success"), ("update", "/", "success"),
                   ("execute", "/3/0/5", "unknown")]
    stats = [d for d in live if get(d, "event.dataset") == "monitor.stats"]
    assert len(stats) == 1 and get(stats[0], "monitor.final") is True


def test_ring_holds_what_was_captured(tmp_path):
    ring = tmp_path / "ring"
    sensor, out, err = start_sensor(tmp_path, "--stats-interval", "0", "--ring", str(ring))
    try:
        run_peer().wait(10)
        time.sleep(0.3)
    finally:
        rc = stop(sensor, signal.SIGTERM)
    assert rc == 0, err.read_text()
    files = sorted(ring.iterdir())
    assert [f.name for f in files] == ["lo-000000.pcap"]
    # Wireshark reads the ring file, and analysing it gives the live events again
    assert len(tshark_requests(files[0])) == 7
    assert stable(read_docs(out)) == stable(offline(tmp_path, files[0]))


def test_sighup_reloads_keys_and_a_bad_file_keeps_the_old_ones(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text('psk:\n  - identity: "live-a"\n    key: "00112233445566778899aabbccddeeff"\n')
    sensor, out, err = start_sensor(tmp_path, "--stats-interval", "0", "--keys", str(keys))
    try:
        sensor.send_signal(signal.SIGHUP)
        wait_for(err, "reloaded keys", sensor)
        keys.write_text('psk:\n  - identity: "live-b"\n    key: "not-hex-deadbeefcafe"\n')
        sensor.send_signal(signal.SIGHUP)
        wait_for(err, "reload failed", sensor)
        run_peer().wait(10)               # still capturing after a failed reload
        time.sleep(0.3)
    finally:
        rc = stop(sensor, signal.SIGTERM)
    assert rc == 0
    text = err.read_text()
    assert "not-hex-deadbeefcafe" not in text and "00112233445566778899aabbccddeeff" not in text
    ops = [d for d in read_docs(out) if get(d, "event.dataset") == "lwm2m.operation"]
    assert len(ops) == 7


def test_several_interfaces_and_count(tmp_path):
    """Two interfaces at once (lo and one end of a fresh veth pair), --count stops it."""
    dummy = "lwm2mlive0"
    if subprocess.run(["ip", "link", "add", dummy, "type", "veth", "peer", "name", "lwm2mlive1"],
                      capture_output=True).returncode:
        pytest.skip("cannot create a veth pair")
    try:
        subprocess.run(["ip", "link", "set", dummy, "up"], check=True)
        sensor, out, err = start_sensor(tmp_path, "-i", dummy, "--stats-interval", "0", "--count", "4")
        run_peer().wait(10)
        assert sensor.wait(20) == 0, err.read_text()
    finally:
        subprocess.run(["ip", "link", "del", dummy], capture_output=True)
    docs = read_docs(out)
    final = [d for d in docs if get(d, "event.dataset") == "monitor.stats"][-1]["monitor"]
    assert [i["name"] for i in final["interfaces"]] == ["lo", dummy]
    assert final["packets"]["datagrams"] >= 4
    ops = [d for d in docs if get(d, "event.dataset") == "lwm2m.operation"]
    assert [get(d, "event.action") for d in ops] == ["register", "read"]


def test_unknown_interface_and_bad_filter_fail_with_exit_3(tmp_path):
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "live", "-i", "no-such-if0", "--out",
                        str(tmp_path / "x.ndjson")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "no-such-if0" in r.stderr
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "live", "-i", "lo", "--bpf", "udp prt 1",
                        "--out", str(tmp_path / "x.ndjson")], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3 and "invalid capture filter" in r.stderr


def test_sensor_config_file(tmp_path):
    cfg = tmp_path / "sensor.yaml"
    cfg.write_text(f"interface: lo\nports: [45690, 45691]\nstats-interval: 0\nduration: 2\n"
                   f"out: {tmp_path / 'cfg.ndjson'}\n")
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "live", "--sensor-config", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "udp port 45690 or udp port 45691" in r.stderr
    docs = read_docs(tmp_path / "cfg.ndjson")
    assert [get(d, "event.dataset") for d in docs] == ["monitor.stats"]
    cfg.write_text("interfaces: lo\n")
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "live", "--sensor-config", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 4 and "unknown option 'interfaces'" in r.stderr
