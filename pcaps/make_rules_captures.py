#!/usr/bin/env python3
"""Captures that fire the security rules no other capture fires (issue #5). Run as root.

    python3 pcaps/make_rules_captures.py [NAME...]

- rules-lwm2m-scan:     aiocoap (pcaps/peers/rules/lwm2m_scan_peer.py): one endpoint registered
                        from two ports at once, then 12 reads answered 4.04 (scanning).
- rules-psk-guessing:   python-mbedtls, 4 DTLS-PSK handshakes with wrong keys from one client
                        address (server ports 5704-5707: a fresh listener per attempt).
- rules-weak-cert:      OpenSSL 3 s_server/s_client, ECDHE-RSA with an RSA-1024 certificate signed
                        with SHA-1 and expired (`cryptography` + `openssl x509 -sha1 -preserve_dates`).
- rules-oscore-replay:  aiocoap OSCORE (pcaps/peers/rules/oscore_replay_peer.py): a Register, then
                        the same protected datagram re-sent from the client's address.
Each run has new randoms/ports; the counts in pcaps/README.md stay.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers", "dtls"))

from tcpdump_capture import _wait_listening  # noqa: E402  (the DTLS captures' tcpdump helper)

SERVER_PSK = bytes.fromhex("3c9e1f2a7b4d6e8f0a1b2c3d4e5f6071")      # as the dtls-* captures
WRONG_PSKS = [bytes([i]) * 16 for i in (0x11, 0x22, 0x33, 0x44)]


class tcpdump:
    def __init__(self, path: str, bpf: str):
        self.args = ["tcpdump", "-i", "lo", "-U", "-w", path, bpf]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_listening(self.proc, 10)
        return self

    def __exit__(self, *exc):
        time.sleep(1.5)
        self.proc.send_signal(2)
        self.proc.wait(timeout=10)


def lwm2m_scan(out: str) -> None:
    with tcpdump(out, "udp and (port 5703 or port 57030 or port 57031)"):
        subprocess.run([sys.executable, os.path.join(HERE, "peers", "rules", "lwm2m_scan_peer.py")], check=True)


def psk_guessing(out: str) -> None:
    import mbedtls_peers
    with tcpdump(out, "udp and portrange 5704-5707"):
        for i, wrong in enumerate(WRONG_PSKS):
            o = mbedtls_peers.run(mbedtls_peers.Session(
                port=5704 + i, cipher="TLS-PSK-WITH-AES-128-CCM-8", steps=[],
                client_identity="mbedtls-ep-01", client_psk=wrong,
                server_psks={"mbedtls-ep-01": SERVER_PSK}))
            print("attempt", i, "handshake_ok" if o.handshake_ok else f"failed ({o.error})")
    with open(out.replace(".pcap", ".keys.yaml"), "w") as f:
        f.write("# The server's PSK; the client tried four wrong keys (11.., 22.., 33.., 44..).\n"
                "psk:\n  - identity: mbedtls-ep-01\n    key: 3c9e1f2a7b4d6e8f0a1b2c3d4e5f6071\n")


def _weak_cert(directory: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak-lwm2m-server.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x5EA1).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now - dt.timedelta(days=35)).sign(key, hashes.SHA256()))
    kp, cp = os.path.join(directory, "weak.key"), os.path.join(directory, "weak.crt")
    c0 = os.path.join(directory, "weak-sha256.crt")
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(c0, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    # cryptography refuses to sign with SHA-1; OpenSSL re-signs it, keeping the (expired) dates
    subprocess.run(["openssl", "x509", "-in", c0, "-signkey", kp, "-sha1", "-preserve_dates", "-out", cp],
                   check=True, capture_output=True)
    return cp, kp


def weak_cert(out: str) -> None:
    cipher = "ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0"
    with tempfile.TemporaryDirectory() as d, tcpdump(out, "udp and port 5708"):
        cp, kp = _weak_cert(d)
        server = subprocess.Popen(["openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:5708", "-listen",
                                   "-cert", cp, "-key", kp, "-cipher", cipher, "-naccept", "1", "-quiet"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.7)
        client = subprocess.run(["openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:5708",
                                 "-cipher", cipher, "-nocommands"], input=b"", capture_output=True, timeout=20)
        print("s_client:", b"Cipher is" in client.stdout and "handshake done" or client.stderr[-300:])
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait()


def oscore_replay(out: str) -> None:
    sys.path.insert(0, HERE)
    from make_oscore_captures import context_dir, keys_file   # the oscore-lwm2m.pcap context
    with tempfile.TemporaryDirectory() as d:
        sdir = context_dir(d, "server", "53", "43")
        cdir = context_dir(d, "client", "43", "53")
        with tcpdump(out, "udp and (port 5713 or port 57130)"):
            subprocess.run([sys.executable, os.path.join(HERE, "peers", "rules", "oscore_replay_peer.py"),
                            sdir, cdir, out], check=True, timeout=60)
    from make_oscore_captures import SECRET
    keys_file(out.replace(".pcap", ".keys.yaml"), SECRET, "OSCORE context of rules-oscore-replay.pcap")


CAPTURES = {"rules-lwm2m-scan": lwm2m_scan, "rules-psk-guessing": psk_guessing, "rules-weak-cert": weak_cert,
            "rules-oscore-replay": oscore_replay}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(CAPTURES):
        CAPTURES[name](os.path.join(HERE, f"{name}.pcap"))
        print("wrote", f"pcaps/{name}.pcap")
