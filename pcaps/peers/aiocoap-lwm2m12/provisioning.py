"""What the aiocoap LwM2M 1.2 peers exchange: addresses, provisioned keys, and the payloads,
each encoded here with cbor2 (an encoder independent of the monitor's readers).

The bootstrap server and the LwM2M server share this "configuration", as a real bootstrap
server and device-management server share a provisioning database; the client only learns the
OSCORE context from the bootstrap-write of /21/0.
"""
from __future__ import annotations

import cbor2

HOST = "127.0.0.1"
BOOTSTRAP_PORT = 5683        # make_aiocoap_lwm2m12.py falls back to 5695 when 5683 is taken
SERVER_PORT = 5696           # LwM2M server, OSCORE
CLIENT_PORT = 56950          # the client's one endpoint for both servers
ENDPOINT = "aiocoap-ep-12"
LOCATION = ("rd", "c12a")

SENML_CBOR, LWM2M_CBOR, LINK_FORMAT = 112, 11544, 40

# OSCORE context provisioned in /21/0 (RFC 8613; LwM2M object 21). Sender ID is the client's.
OSCORE = {
    "master_secret": bytes.fromhex("5f3a9c71e2b84d06a1c3e5f7092b4d6f"),
    "sender_id": bytes.fromhex("4331"),      # "C1": the client
    "recipient_id": bytes.fromhex("5331"),   # "S1": the LwM2M server
    "aead": 10,                              # AES-CCM-16-64-128
    "hmac": -10,                             # HKDF SHA-256
    "master_salt": bytes.fromhex("9d2e4c1a7b3f5e60"),
    "id_context": bytes.fromhex("b12c0de0"),
}
# A second (DTLS-PSK) server account in the pack, never used in this capture.
PSK_IDENTITY = b"aiocoap-ep-12-psk"
PSK_KEY = bytes.fromhex("0a1b2c3d4e5f60718293a4b5c6d7e8f9")

# SenML CBOR labels (RFC 8428 §6)
BN, N, V, VS, VB, VD, VLO = -2, 0, 2, 3, 4, 8, "vlo"


def oscore_records(base: str = "/21/0/") -> list[dict]:
    o = OSCORE
    return [{BN: base, N: "0", VD: o["master_secret"]}, {N: "1", VD: o["sender_id"]},
            {N: "2", VD: o["recipient_id"]}, {N: "3", V: o["aead"]}, {N: "4", V: o["hmac"]},
            {N: "5", VD: o["master_salt"]}, {N: "6", VD: o["id_context"]}]


def bootstrap_pack() -> bytes:
    """GET /bspack answer: Security /0/1 (OSCORE server) and /0/2 (PSK server), Server /1/0, OSCORE /21/0."""
    records = [
        {BN: "/0/1/", N: "0", VS: f"coap://{HOST}:{SERVER_PORT}"}, {N: "1", VB: False},
        {N: "2", V: 3}, {N: "10", V: 101}, {N: "17", VLO: "21:0"},
        {BN: "/0/2/", N: "0", VS: f"coaps://{HOST}:5697"}, {N: "1", VB: False}, {N: "2", V: 0},
        {N: "3", VD: PSK_IDENTITY}, {N: "5", VD: PSK_KEY}, {N: "10", V: 102},
        {BN: "/1/0/", N: "0", V: 101}, {N: "1", V: 300}, {N: "6", VB: True}, {N: "7", VS: "U"},
    ] + oscore_records()
    return cbor2.dumps(records)


def oscore_write() -> bytes:
    """Bootstrap-write PUT /21/0 (SenML CBOR)."""
    return cbor2.dumps(oscore_records())


# Read /3/0 in LwM2M CBOR (TS Core 1.2 §7.4.6): nested maps keyed by path components.
DEVICE = {3: {0: {0: "ACME", 1: "aiocoap-lwm2m12", 2: "SN-0012", 6: {0: 1, 1: 5}, 9: 87,
                  13: cbor2.CBORTag(1, 1700000000), 16: "U"}}}
DEVICE_LEAVES = [("/3/0/0", "string", "ACME"), ("/3/0/1", "string", "aiocoap-lwm2m12"),
                 ("/3/0/2", "string", "SN-0012"), ("/3/0/6/0", "integer", 1),
                 ("/3/0/6/1", "integer", 5), ("/3/0/9", "integer", 87),
                 ("/3/0/13", "time", 1700000000), ("/3/0/16", "string", "U")]

# Read-composite: paths asked in SenML CBOR, answer in LwM2M CBOR with array keys
# (several path components in one key) next to plain nesting.
COMPOSITE_PATHS = ["/3/0/9", "/3303/0/5700", "/1/0/1", "/1/0/6"]
COMPOSITE_REQUEST = [{N: p} for p in COMPOSITE_PATHS]
COMPOSITE = {3: {0: {9: 87}}, (3303, 0, 5700): 21.5, (1, 0): {1: 300, 6: True}}
COMPOSITE_LEAVES = [("/3/0/9", "integer", 87), ("/3303/0/5700", "float", 21.5),
                    ("/1/0/1", "integer", 300), ("/1/0/6", "boolean", True)]

REGISTER_LINKS = b"</>;rt=\"oma.lwm2m\";ct=11544,</1/0>,</3/0>,</21/0>,</3303/0>"
DISCOVER_LINKS = b"</>;lwm2m=1.2,</0/0>,</1>,</3/0>,</21>,</3303/0>"


def encode(item) -> bytes:
    return cbor2.dumps(item)
