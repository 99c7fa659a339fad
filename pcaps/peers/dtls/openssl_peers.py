"""OpenSSL CLI `s_server` / `s_client` (DTLS 1.2) on 127.0.0.1 carrying raw CoAP datagrams.

s_client and s_server send whatever one read() of their stdin returns as one record, so
writing one CoAP datagram at a time to stdin, and waiting until the peer printed it,
yields one CoAP message per DTLS record. Each side's stdout is searched for the bytes the
other side sent.
"""
from __future__ import annotations

import os
import select
import subprocess
import time
from dataclasses import dataclass

from lwm2m_script import CLIENT, Step

HOST = "127.0.0.1"
HANDSHAKE_DONE = b", Cipher is "  # s_client prints "New|Reused, TLSv1.2, Cipher is ..." then


@dataclass(frozen=True)
class Connection:
    steps: list[Step]
    client_identity: str
    client_psk_hex: str
    extra_client_args: tuple[str, ...] = ()  # e.g. -sess_out FILE / -sess_in FILE


@dataclass(frozen=True)
class Outcome:
    handshake_ok: bool
    steps_done: int
    resumed: bool  # s_client reported "Reused, ..."


class _Reader:
    """Accumulates a process's stdout without blocking."""

    def __init__(self, proc: subprocess.Popen):
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.data = b""

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return needle in self.data
                self.data += chunk
        return True


def start_server(port: int, cipher: str, identity: str, psk_hex: str, naccept: int,
                 keylog: str | None = None, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    # -listen: answer the first ClientHello with a HelloVerifyRequest (cookie exchange);
    # -quiet: otherwise stdin bytes such as 'Q' or 'r' are commands, not data
    args = ["openssl", "s_server", "-dtls1_2", "-accept", f"{HOST}:{port}", "-listen",
            "-nocert", "-psk", psk_hex, "-psk_identity", identity, "-cipher", cipher,
            "-naccept", str(naccept), "-quiet", "-no_ticket", *extra]
    if keylog:
        args += ["-keylogfile", keylog]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    time.sleep(0.5)  # s_server binds before printing anything; give it the time to do so
    return proc


def connect(port: int, cipher: str, server: subprocess.Popen, server_out: _Reader,
            connection: Connection, keylog: str | None = None,
            extra_env: dict[str, str] | None = None) -> Outcome:
    # -nocommands: stdin is data; stdin EOF makes s_client send close_notify and exit
    args = ["openssl", "s_client", "-dtls1_2", "-connect", f"{HOST}:{port}",
            "-psk", connection.client_psk_hex, "-psk_identity", connection.client_identity,
            "-cipher", cipher, "-nocommands", *connection.extra_client_args]
    if keylog:
        args += ["-keylogfile", keylog]
    env = dict(os.environ, **(extra_env or {}))
    client = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    client_out = _Reader(client)
    handshake_ok = client_out.wait_for(HANDSHAKE_DONE, 10)
    resumed = b"Reused, " in client_out.data
    done = 0
    if handshake_ok:
        for step in connection.steps:
            writer, reader = (client, server_out) if step.sender == CLIENT else (server, client_out)
            writer.stdin.write(step.datagram)
            writer.stdin.flush()
            if not reader.wait_for(step.datagram, 5):
                break
            # consume what was matched so a repeated datagram is waited for again
            reader.data = reader.data.split(step.datagram, 1)[1]
            done += 1
            time.sleep(0.05)  # one stdin read per datagram
    client.stdin.close()
    try:
        client.wait(timeout=10)
    except subprocess.TimeoutExpired:
        client.terminate()
        client.wait()
    return Outcome(handshake_ok, done, resumed)


def stop_server(server: subprocess.Popen) -> None:
    try:
        server.wait(timeout=10)  # -naccept: exits after its last connection
    except subprocess.TimeoutExpired:
        server.terminate()
        server.wait()
