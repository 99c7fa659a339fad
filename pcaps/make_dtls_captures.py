"""Regenerate the real-peer DTLS 1.2 captures `pcaps/dtls-*.pcap` and their keys files.

    python pcaps/make_dtls_captures.py            # every capture
    python pcaps/make_dtls_captures.py NAME...    # some, e.g. dtls-clean-psk
    python pcaps/make_dtls_captures.py --summary  # what tshark shows in each capture

Peers: python-mbedtls (client and server in one process) and the OpenSSL CLI, both on
127.0.0.1:5684, captured with `tcpdump -i lo -U -w FILE udp and port 5684` (needs root).
The CoAP inside is LwM2M encoded by aiocoap (pcaps/peers/dtls/lwm2m_script.py). Each run
produces new randoms, so the bytes differ between runs while the counts stay the same.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers", "dtls"))

import lwm2m_script  # noqa: E402
import mbedtls_peers  # noqa: E402
import openssl_peers  # noqa: E402
import tcpdump_capture  # noqa: E402

PORT = 5684  # CoAP over DTLS: tshark dissects the application data as CoAP by port
ENDPOINT = "mbedtls-ep-01"
# Test-only secrets, published with the captures on purpose.
MBEDTLS_PSK = bytes.fromhex("3c9e1f2a7b4d6e8f0a1b2c3d4e5f6071")
DEVICE77_PSK = bytes.fromhex("77d3a1c4e5f60718293a4b5c6d7e8f90")
WRONG_PSK = bytes.fromhex("00112233445566778899aabbccddeeff")
RESUMING_CLIENT_PORT = 56840
OPENSSL_IDENTITY = "openssl-ep-01"
OPENSSL_PSK_HEX = "a5b4c3d2e1f00f1e2d3c4b5a69788796"


@dataclass(frozen=True)
class Keys:
    psks: tuple[tuple[str, str], ...] = ()  # (identity, key hex)
    keylog: bool = False  # a `<name>.keylog` file sits next to the capture


@dataclass(frozen=True)
class Capture:
    name: str
    keys: Keys
    produce: Callable[[str], str]  # keylog path -> one line saying how it went
    connections: int = 1  # UDP port pairs expected (a larger number means foreign traffic)


def _mbedtls(cipher: str, identity: str = ENDPOINT, psk: bytes = MBEDTLS_PSK,
             server_psks: dict[str, bytes] | None = None, certificate: bool = False,
             keylog: bool = False) -> Callable[[str], str]:
    def produce(keylog_path: str) -> str:
        session = mbedtls_peers.Session(
            port=PORT, cipher=cipher,
            steps=lwm2m_script.registration(ENDPOINT, "5a3f", "python-mbedtls"),
            client_identity=identity, client_psk=psk,
            server_psks=server_psks if server_psks is not None else {identity: psk},
            certificate=certificate, keylog=keylog)
        outcome = mbedtls_peers.run(session)
        if outcome.keylog_line:
            with open(keylog_path, "w") as out:
                out.write(outcome.keylog_line + "\n")
        return (f"handshake={'ok' if outcome.handshake_ok else 'failed'} "
                f"steps={outcome.steps_done} error={outcome.error or '-'}")
    return produce


def _openssl(cipher: str, keylog: bool = False, connections: int = 1,
             env: dict[str, str] | None = None) -> Callable[[str], str]:
    steps = lwm2m_script.registration(OPENSSL_IDENTITY, "6b20", "openssl-s_client")

    def produce(keylog_path: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            session_file = os.path.join(tmp, "session.pem")
            server = openssl_peers.start_server(PORT, cipher, OPENSSL_IDENTITY, OPENSSL_PSK_HEX,
                                                naccept=connections)
            server_out = openssl_peers._Reader(server)
            results = []
            for index in range(connections):
                # a second connection resumes the first one's session (session ID, no ticket)
                extra = ("-sess_out", session_file) if index == 0 and connections > 1 else \
                        ("-sess_in", session_file) if index > 0 else ()
                if connections > 1:
                    # s_server's socket stays connect()ed to its first peer's address, so
                    # the resuming client has to come from the same address and port
                    extra += ("-bind", f"127.0.0.1:{RESUMING_CLIENT_PORT}")
                first_steps = steps if index == connections - 1 else steps[:2]
                connection = openssl_peers.Connection(first_steps, OPENSSL_IDENTITY,
                                                      OPENSSL_PSK_HEX, extra)
                outcome = openssl_peers.connect(PORT, cipher, server, server_out, connection,
                                                keylog=keylog_path if keylog else None,
                                                extra_env=env)
                results.append(f"handshake={'ok' if outcome.handshake_ok else 'failed'} "
                               f"steps={outcome.steps_done} resumed={outcome.resumed}")
            openssl_peers.stop_server(server)
        return "; ".join(results)
    return produce


NO_EMS_CONF = os.path.join(HERE, "peers", "dtls", "openssl-no-ems.cnf")

_M = Keys(psks=((ENDPOINT, MBEDTLS_PSK.hex()),))
_O = Keys(psks=((OPENSSL_IDENTITY, OPENSSL_PSK_HEX),))
CAPTURES = [
    Capture("dtls-clean-psk", _M, _mbedtls("TLS-PSK-WITH-AES-128-CCM-8")),
    Capture("dtls-mbedtls-psk-aes128-ccm8", _M, _mbedtls("TLS-PSK-WITH-AES-128-CCM-8")),
    Capture("dtls-mbedtls-psk-aes128-ccm", _M, _mbedtls("TLS-PSK-WITH-AES-128-CCM")),
    Capture("dtls-mbedtls-psk-aes256-ccm8", _M, _mbedtls("TLS-PSK-WITH-AES-256-CCM-8")),
    Capture("dtls-mbedtls-psk-aes128-gcm-sha256", _M, _mbedtls("TLS-PSK-WITH-AES-128-GCM-SHA256")),
    Capture("dtls-mbedtls-psk-aes256-gcm-sha384", _M, _mbedtls("TLS-PSK-WITH-AES-256-GCM-SHA384")),
    Capture("dtls-mbedtls-psk-aes128-cbc-sha256", _M, _mbedtls("TLS-PSK-WITH-AES-128-CBC-SHA256")),
    Capture("dtls-mbedtls-psk-aes128-cbc-sha", _M, _mbedtls("TLS-PSK-WITH-AES-128-CBC-SHA")),
    Capture("dtls-mbedtls-psk-chacha20-poly1305", _M,
            _mbedtls("TLS-PSK-WITH-CHACHA20-POLY1305-SHA256")),
    # Mbed TLS serialises only AEAD contexts, so the ECDHE-PSK key log needs an AEAD suite;
    # ECDHE-PSK-AES128-CBC-SHA256 is covered by the OpenSSL capture below.
    Capture("dtls-mbedtls-ecdhe-psk-chacha20-poly1305", Keys(_M.psks, keylog=True),
            _mbedtls("TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256", keylog=True)),
    Capture("dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8", Keys(keylog=True),
            _mbedtls("TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8", certificate=True, keylog=True)),
    Capture("dtls-mbedtls-identity-mismatch", Keys(psks=(("device-77", DEVICE77_PSK.hex()),)),
            _mbedtls("TLS-PSK-WITH-AES-128-CCM-8", identity="device-77", psk=DEVICE77_PSK)),
    # the server (and the keys file) hold the provisioned key; the client uses another one
    Capture("dtls-mbedtls-wrong-psk", _M,
            _mbedtls("TLS-PSK-WITH-AES-128-CCM-8", psk=WRONG_PSK,
                     server_psks={ENDPOINT: MBEDTLS_PSK})),
    Capture("dtls-mbedtls-unknown-identity", _M,
            _mbedtls("TLS-PSK-WITH-AES-128-CCM-8", identity="stranger-01", psk=WRONG_PSK,
                     server_psks={ENDPOINT: MBEDTLS_PSK})),
    Capture("dtls-openssl-psk-aes128-ccm8", _O, _openssl("PSK-AES128-CCM8")),
    Capture("dtls-openssl-psk-aes256-gcm-sha384", _O, _openssl("PSK-AES256-GCM-SHA384")),
    Capture("dtls-openssl-psk-chacha20-poly1305", _O, _openssl("PSK-CHACHA20-POLY1305")),
    Capture("dtls-openssl-ecdhe-psk-aes128-cbc-sha256", Keys(_O.psks, keylog=True),
            _openssl("ECDHE-PSK-AES128-CBC-SHA256", keylog=True)),
    Capture("dtls-openssl-resumption", _O, _openssl("PSK-AES128-CCM8", connections=2)),
    Capture("dtls-openssl-no-ems", _O,
            _openssl("PSK-AES128-CCM8", env={"OPENSSL_CONF": NO_EMS_CONF})),
]


def write_keys(capture: Capture) -> None:
    lines = [f"# Keys for {capture.name}.pcap (KEYS.md format). Test-only secrets."]
    if capture.keys.psks:
        lines.append("psk:")
        for identity, key in capture.keys.psks:
            lines += [f'  - identity: "{identity}"', f'    key: "{key}"']
    if capture.keys.keylog:
        lines.append(f'keylog: "{capture.name}.keylog"')
    with open(os.path.join(HERE, f"{capture.name}.keys.yaml"), "w") as out:
        out.write("\n".join(lines) + "\n")


def tshark(pcap: str, *args: str) -> str:
    return subprocess.run(["tshark", "-r", pcap, *args], capture_output=True, text=True,
                          check=True).stdout


def key_options(capture: Capture) -> list[str]:
    options = [f"-odtls.psk:{key}" for _, key in capture.keys.psks[:1]]
    if capture.keys.keylog:
        options.append(f"-otls.keylog_file:{os.path.join(HERE, capture.name + '.keylog')}")
    return options


def conversations(pcap: str) -> int:
    ports = tshark(pcap, "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport").split("\n")
    return len({frozenset(line.split("\t")) for line in ports if line})


def produce(capture: Capture) -> None:
    pcap = os.path.join(HERE, capture.name + ".pcap")
    keylog = os.path.join(HERE, capture.name + ".keylog")
    for attempt in range(3):
        if os.path.exists(keylog):
            os.remove(keylog)
        with tcpdump_capture.capture(pcap, PORT):
            how = capture.produce(keylog)
        os.chmod(pcap, 0o644)
        if conversations(pcap) == capture.connections:
            break
        print(f"{capture.name}: foreign traffic on port {PORT}, retrying", file=sys.stderr)
    else:
        raise SystemExit(f"{capture.name}: could not get a clean capture")
    write_keys(capture)
    print(f"{capture.name}: {how}; {os.path.getsize(pcap)} bytes")


def summary(capture: Capture) -> dict[str, object]:
    """What tshark 4.0 shows in one capture, with and without its keys."""
    pcap = os.path.join(HERE, capture.name + ".pcap")
    keyed = key_options(capture)
    hellos = tshark(pcap, "-Y", "dtls.handshake.type == 2", "-T", "fields",
                    "-e", "dtls.handshake.ciphersuite", "-e", "dtls.handshake.extension.type")
    suites, ems = [], []
    for line in filter(None, hellos.split("\n")):
        suite, _, extensions = line.partition("\t")
        suites.append(suite)
        ems.append("23" in extensions.split(","))
    coap = tshark(pcap, *keyed, "-Y", "coap", "-T", "fields", "-e", "coap.type",
                  "-e", "coap.code", "-e", "coap.opt.uri_path_recon")
    alerts = tshark(pcap, *keyed, "-Y", "dtls.alert_message", "-T", "fields",
                    "-e", "dtls.alert_message.level", "-e", "dtls.alert_message.desc")
    return {
        "frames": len(tshark(pcap, "-T", "fields", "-e", "frame.number").split()),
        "server_hello_suites": suites,
        "ems": ems,
        "decrypted_with_keys": len(re.findall("Decrypted DTLS", tshark(pcap, *keyed, "-x"))),
        "decrypted_without_keys": len(re.findall("Decrypted DTLS", tshark(pcap, "-x"))),
        "coap_messages": len([line for line in coap.split("\n") if line]),
        "coap_requests": [line.split("\t")[1:] for line in coap.split("\n")
                          if line and line.split("\t")[1] in ("1", "2", "3", "4")],
        "alerts": [line.split("\t") for line in alerts.split("\n") if line],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="capture names (default: all)")
    parser.add_argument("--summary", action="store_true", help="print tshark's view only")
    args = parser.parse_args()
    selected = [c for c in CAPTURES if not args.names or c.name in args.names]
    for capture in selected:
        if args.summary:
            print(capture.name, summary(capture))
        else:
            produce(capture)


if __name__ == "__main__":
    main()
