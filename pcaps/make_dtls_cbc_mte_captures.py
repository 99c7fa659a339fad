"""Regenerate `pcaps/dtls-openssl-dtls10-psk-aes128-cbc-sha.pcap` and
`pcaps/dtls-openssl-psk-aes256-cbc-sha384-mte.pcap`: OpenSSL CLI peers with encrypt-then-MAC
off (`s_client -no_etm`), i.e. the classic MAC-then-encrypt CBC record, once in DTLS 1.0
(TLS 1.0/1.1 MD5+SHA-1 PRF) and once in DTLS 1.2 with SHA-384; and
`pcaps/dtls-openssl-ticket-resumption.pcap`: two connections, the second resuming the first
by RFC 5077 session ticket (`s_client -sess_out` then `-sess_in`).

    python pcaps/make_dtls_cbc_mte_captures.py      # needs root (tcpdump on lo) and openssl

Plain text lines are exchanged (not CoAP): 2 from the client, 1 from the server, then the
client closes (close_notify). Port 5685, so tshark shows the payload as `data`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 5685
IDENTITY = "openssl-mte-01"
PSK_HEX = "5e6f7a8b9c0d1e2f30415263748596a7"     # test-only secret, published with the capture
CLIENT_LINES = (b"client line one: MAC-then-encrypt\n", b"client line two\n")
SERVER_LINE = b"server says hello\n"

RESUMPTION = "dtls-openssl-ticket-resumption"
CAPTURES = {
    RESUMPTION: ("-dtls1_2", "PSK-AES128-GCM-SHA256"),
    "dtls-openssl-dtls10-psk-aes128-cbc-sha": ("-dtls1", "PSK-AES128-CBC-SHA:@SECLEVEL=0"),
    "dtls-openssl-psk-aes256-cbc-sha384-mte": ("-dtls1_2", "PSK-AES256-CBC-SHA384"),
}


def produce(name: str, version: str, cipher: str) -> None:
    pcap = os.path.join(HERE, name + ".pcap")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", pcap, f"udp and port {PORT}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    server = subprocess.Popen(["openssl", "s_server", version, "-accept", str(PORT), "-nocert",
                               "-psk", PSK_HEX, "-psk_identity", IDENTITY, "-cipher", cipher,
                               "-quiet"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    if name == RESUMPTION:
        session = os.path.join(HERE, ".ticket-session.pem")
        for extra in (("-sess_out", session), ("-sess_in", session)):
            converse(server, version, cipher, extra)
            time.sleep(0.5)
        os.unlink(session)
    else:
        converse(server, version, cipher, ("-no_etm",))
    server.terminate()
    server.wait(timeout=10)
    time.sleep(0.5)
    dump.terminate()
    dump.wait(timeout=10)
    with open(os.path.join(HERE, name + ".keys.yaml"), "w") as fh:
        fh.write(f"# Keys for {name}.pcap (KEYS.md format). Test-only secrets.\n"
                 f"psk:\n  - identity: \"{IDENTITY}\"\n    key: \"{PSK_HEX}\"\n")


def converse(server: subprocess.Popen, version: str, cipher: str, extra: tuple[str, ...]) -> None:
    client = subprocess.Popen(["openssl", "s_client", version, "-connect", f"127.0.0.1:{PORT}",
                               "-psk", PSK_HEX, "-psk_identity", IDENTITY, "-cipher", cipher,
                               *extra], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    for line in CLIENT_LINES:
        client.stdin.write(line)
        client.stdin.flush()
        time.sleep(0.4)
    server.stdin.write(SERVER_LINE)
    server.stdin.flush()
    time.sleep(0.4)
    client.stdin.close()               # EOF: s_client sends close_notify and exits
    try:
        client.wait(timeout=10)
    finally:
        client.kill()


if __name__ == "__main__":
    for name in (sys.argv[1:] or CAPTURES):
        produce(name, *CAPTURES[name])
        print(name, "written")
