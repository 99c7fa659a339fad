"""Capture loopback UDP on one port with tcpdump for the duration of a `with` block."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time


@contextlib.contextmanager
def capture(path: str, port: int, ready_timeout: float = 10.0):
    """tcpdump -i lo -U -w PATH udp and port PORT; yields once tcpdump is listening."""
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-w", path, f"udp and port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(proc, ready_timeout)
        yield
        # without --immediate-mode libpcap hands packets over per ring-buffer block, at the
        # latest after its 1 s timeout; SIGINT before that loses the last block
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen, timeout: float) -> None:
    # tcpdump prints "listening on lo, ..." on stderr once the capture is armed
    deadline = time.monotonic() + timeout
    seen = b""
    fd = proc.stderr.fileno()
    while b"listening on" not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise RuntimeError(f"tcpdump not ready: {seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            seen += os.read(fd, 4096)
