"""The dtls-* captures are what pcaps/README.md says they are, as Wireshark sees them.

tshark (an independent DTLS implementation) decrypts each capture with its keys file's
secrets; the counts are the README table. The DTLS engine's own tests compare against these.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

PCAPS = os.path.join(os.path.dirname(__file__), "..", "pcaps")

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

LWM2M_REQUESTS = [("2", "/rd"), ("1", "/3/0/0"), ("3", "/3/0/14"), ("2", "/3/0/4"), ("1", "/3/0"),
                  ("2", "/rd/{id}"), ("4", "/rd/{id}")]
CLOSE = ("1", "0")  # warning close_notify

# name: (frames, ServerHello suites, EMS per ServerHello, decrypted records, CoAP messages,
#        alerts tshark can read (level, description), registration id or None)
EXPECTED = {
    "dtls-clean-psk": (25, ["0xc0a8"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes128-ccm8": (25, ["0xc0a8"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes128-ccm": (25, ["0xc0a4"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes256-ccm8": (25, ["0xc0a9"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes128-gcm-sha256": (25, ["0x00a8"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes256-gcm-sha384": (25, ["0x00a9"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes128-cbc-sha256": (25, ["0x00ae"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-psk-aes128-cbc-sha": (25, ["0x008c"], [True], 21, 18, [CLOSE], "5a3f"),
    # tshark 4.0 does not decrypt DTLS ChaCha20-Poly1305 (nonce without the epoch)
    "dtls-mbedtls-psk-chacha20-poly1305": (25, ["0xccab"], [True], 0, 0, [], None),
    "dtls-mbedtls-ecdhe-psk-chacha20-poly1305": (25, ["0xccac"], [True], 0, 0, [], None),
    "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8": (25, ["0xc0ae"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-identity-mismatch": (25, ["0xc0a8"], [True], 21, 18, [CLOSE], "5a3f"),
    "dtls-mbedtls-wrong-psk": (6, ["0xc0a8"], [True], 0, 0, [("2", "20")], None),
    "dtls-mbedtls-unknown-identity": (6, ["0xc0a8"], [True], 0, 0, [("2", "115")], None),
    "dtls-openssl-psk-aes128-ccm8": (26, ["0xc0a8"], [True], 22, 18, [CLOSE] * 2, "6b20"),
    "dtls-openssl-psk-aes256-gcm-sha384": (26, ["0x00a9"], [True], 22, 18, [CLOSE] * 2, "6b20"),
    "dtls-openssl-psk-chacha20-poly1305": (26, ["0xccab"], [True], 0, 0, [], None),
    "dtls-openssl-ecdhe-psk-aes128-cbc-sha256": (26, ["0xc037"], [True], 22, 18, [CLOSE] * 2,
                                                 "6b20"),
    "dtls-openssl-resumption": (35, ["0xc0a8"] * 2, [True] * 2, 28, 20, [CLOSE] * 4, "6b20"),
    "dtls-openssl-no-ems": (26, ["0xc0a8"], [False], 22, 18, [CLOSE] * 2, "6b20"),
}


def tshark(pcap: str, *args: str) -> list[str]:
    out = subprocess.run(["tshark", "-r", pcap, *args], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return [line for line in out.split("\n") if line]


def key_options(name: str) -> list[str]:
    """tshark options for the secrets in pcaps/<name>.keys.yaml (read as KEYS.md documents it)."""
    with open(os.path.join(PCAPS, f"{name}.keys.yaml")) as f:
        keys = yaml.safe_load(f)
    options = [f"-odtls.psk:{entry['key']}" for entry in keys.get("psk", [])]
    if "keylog" in keys:
        options.append(f"-otls.keylog_file:{os.path.join(PCAPS, keys['keylog'])}")
    return options


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_matches_readme(name):
    frames, suites, ems, decrypted, coap, alerts, registration = EXPECTED[name]
    pcap = os.path.join(PCAPS, f"{name}.pcap")
    assert os.path.getsize(pcap) < 100_000
    keyed = key_options(name)
    assert len(tshark(pcap, "-T", "fields", "-e", "frame.number")) == frames

    hellos = [line.split("\t") for line in tshark(
        pcap, "-Y", "dtls.handshake.type == 2", "-T", "fields",
        "-e", "dtls.handshake.ciphersuite", "-e", "dtls.handshake.extension.type")]
    assert [h[0] for h in hellos] == suites
    assert ["23" in h[1].split(",") for h in hellos] == ems

    dump = "\n".join(tshark(pcap, *keyed, "-x"))
    assert dump.count("Decrypted DTLS") == decrypted
    assert "\n".join(tshark(pcap, "-x")).count("Decrypted DTLS") == 0  # no keys, no plaintext

    messages = [tuple(line.split("\t")) for line in tshark(
        pcap, *keyed, "-Y", "coap", "-T", "fields", "-e", "coap.type", "-e", "coap.code",
        "-e", "coap.opt.uri_path_recon")]
    assert len(messages) == coap
    if registration:
        requests = [(code, path) for _, code, path in messages if code in ("1", "2", "3", "4")]
        expected = [(code, path.format(id=registration)) for code, path in LWM2M_REQUESTS]
        if name == "dtls-openssl-resumption":  # connection 1 registered once before closing
            expected = [("2", "/rd")] + expected
        assert requests == expected

    readable = [tuple(line.split("\t")) for line in tshark(
        pcap, *keyed, "-Y", "dtls.alert_message.desc", "-T", "fields",
        "-e", "dtls.alert_message.level", "-e", "dtls.alert_message.desc")]
    assert readable == alerts


def test_registration_payload_and_endpoint_as_tshark_decodes_them():
    pcap = os.path.join(PCAPS, "dtls-mbedtls-identity-mismatch.pcap")
    keyed = key_options("dtls-mbedtls-identity-mismatch")
    identities = tshark(pcap, "-Y", "dtls.handshake.type == 16", "-T", "fields",
                        "-e", "dtls.handshake.identity")
    assert [bytes.fromhex(i.replace(":", "")).decode() for i in identities] == ["device-77"]
    register = tshark(pcap, *keyed, "-Y", 'coap.code == 2 && coap.opt.uri_path_recon == "/rd"',
                      "-T", "fields", "-e", "coap.opt.uri_query", "-e", "coap.opt.ctype",
                      "-e", "coap.payload_length")
    query, content_format, length = register[0].split("\t")
    assert query.split(",") == ["ep=mbedtls-ep-01", "lt=300", "lwm2m=1.1", "b=U"]
    assert (content_format, length) == ("application/link-format", str(len(b"</1/0>,</3/0>")))


def test_resumption_second_handshake_is_abbreviated():
    pcap = os.path.join(PCAPS, "dtls-openssl-resumption.pcap")
    hellos = tshark(pcap, "-Y", "dtls.handshake.type == 2", "-T", "fields",
                    "-e", "frame.number", "-e", "dtls.handshake.session_id")
    (first_frame, first_id), (second_frame, second_id) = (h.split("\t") for h in hellos)
    assert first_id and first_id == second_id
    # the resumed ServerHello carries CCS + Finished, and no ClientKeyExchange follows
    assert tshark(pcap, "-Y", f"frame.number == {second_frame} && dtls.record.content_type == 20",
                  "-T", "fields", "-e", "frame.number") == [second_frame]
    assert len(tshark(pcap, "-Y", "dtls.handshake.type == 16")) == 1
