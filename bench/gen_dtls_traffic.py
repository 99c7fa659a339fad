"""Generate a large capture of DTLS 1.2 PSK LwM2M traffic, in either suite LwM2M makes mandatory:
TLS_PSK_WITH_AES_128_CCM_8 (default) or TLS_PSK_WITH_AES_128_CBC_SHA256 (`--suite cbc`).

Many clients, each with its own PSK identity (all sharing one key, since tshark takes a single
`dtls.psk`), run a full handshake with the server 10.0.0.1:5684, then register and exchange
the LwM2M traffic of bench/gen_lwm2m_traffic.py (CoAP encoded by aiocoap) as application data
records. Sessions interleave at random. Deterministic (seeded).

Key schedule and record protection are written here from the RFCs, independently of
monitor/dtls_crypto.py (RFC 4279 §2 premaster, RFC 5246 §5 PRF with SHA-256, §8.1 master
secret, §6.3 key block, §7.4.9 Finished over the DTLS handshake headers per RFC 6347 §4.2.6,
RFC 6655 CCM_8 record nonce and AAD; for CBC, RFC 5246 §6.2.3.2 MAC-then-encrypt with an
explicit per-record IV and the RFC 6347 §4.1.2.1 MAC input); tshark decrypting the result is the
cross-check.

    python bench/gen_dtls_traffic.py OUT.pcap [--packets 120000] [--clients 2000] [--suite ccm8|cbc]

Writes OUT.pcap, OUT.keys.yaml (KEYS.md format) and OUT.json (counts, the PSK as hex for tshark).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import struct
import sys
import warnings
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", category=DeprecationWarning)     # aiocoap's mid/token setters
from gen_lwm2m_traffic import ACK, CON, ip_udp, msg, operation  # noqa: E402
from aiocoap import numbers as N  # noqa: E402

SERVER = (bytes([10, 0, 0, 1]), 5684)
DTLS12 = b"\xfe\xfd"
SUITES = {"ccm8": b"\xc0\xa8",            # TLS_PSK_WITH_AES_128_CCM_8
          "cbc": b"\x00\xae"}             # TLS_PSK_WITH_AES_128_CBC_SHA256
HANDSHAKE, CCS, APPDATA = 22, 20, 23
PSK = bytes.fromhex("62656e63682d64746c732d70736b2121")   # "bench-dtls-psk!!" (benchmark-only)


def prf(secret: bytes, label: bytes, seed: bytes, n: int) -> bytes:
    """RFC 5246 §5: P_SHA256(secret, label + seed)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + seed, hashlib.sha256).digest()
    return out[:n]


def handshake(msg_type: int, seq: int, body: bytes) -> bytes:
    """A DTLS handshake message, unfragmented (offset 0, fragment length = length)."""
    n = len(body).to_bytes(3, "big")
    return bytes([msg_type]) + n + seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body


class Direction:
    """Record layer of one direction: epoch, 48-bit sequence, CCM_8 or CBC once keys are on."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        self.epoch = 0
        self.seq = 0
        self.aead: AESCCM | None = None
        self.salt = b""
        self.cbc_key = self.mac_key = b""

    def change_cipher_spec(self, key: bytes, salt: bytes, mac_key: bytes = b"") -> None:
        self.epoch, self.seq = 1, 0
        if mac_key:
            self.cbc_key, self.mac_key = key, mac_key
        else:
            self.aead, self.salt = AESCCM(key, tag_length=8), salt

    def record(self, ctype: int, body: bytes) -> bytes:
        seq_num = self.epoch.to_bytes(2, "big") + self.seq.to_bytes(6, "big")
        self.seq += 1
        header = seq_num + bytes([ctype]) + DTLS12 + len(body).to_bytes(2, "big")
        if self.aead is not None:
            body = seq_num + self.aead.encrypt(self.salt + seq_num, body, header)   # explicit nonce = seq_num
        elif self.mac_key:
            mac = hmac.new(self.mac_key, header + body, hashlib.sha256).digest()
            pad = 15 - (len(body) + len(mac)) % 16
            iv = self.rnd.randbytes(16)                  # benchmark-only: seeded, not secret
            enc = Cipher(algorithms.AES(self.cbc_key), modes.CBC(iv)).encryptor()
            body = iv + enc.update(body + mac + bytes([pad]) * (pad + 1)) + enc.finalize()
        return bytes([ctype]) + DTLS12 + seq_num + len(body).to_bytes(2, "big") + body


class Session:
    def __init__(self, rnd: random.Random, identity: bytes, suite: str = "ccm8"):
        self.identity = identity
        self.suite = suite
        self.client_random, self.server_random = rnd.randbytes(32), rnd.randbytes(32)
        self.session_id = rnd.randbytes(32)
        self.c, self.s = Direction(rnd), Direction(rnd)

    def flights(self) -> list[tuple[bool, bytes]]:
        """The four datagrams of a full PSK handshake: (from_client, payload)."""
        suite = SUITES[self.suite]
        ch = handshake(1, 0, DTLS12 + self.client_random + b"\x00" + b"\x00" + b"\x00\x02" + suite + b"\x01\x00")
        sh = handshake(2, 0, DTLS12 + self.server_random + b"\x20" + self.session_id + suite + b"\x00")
        shd = handshake(14, 1, b"")
        cke = handshake(16, 1, len(self.identity).to_bytes(2, "big") + self.identity)
        premaster = len(PSK).to_bytes(2, "big") + bytes(len(PSK)) + len(PSK).to_bytes(2, "big") + PSK
        master = prf(premaster, b"master secret", self.client_random + self.server_random, 48)
        cbc = self.suite == "cbc"
        # key block (RFC 5246 §6.3): CCM_8 16+16 keys, 4+4 salts; CBC-SHA256 32+32 MAC keys, 16+16 keys
        kb = prf(master, b"key expansion", self.server_random + self.client_random, 96 if cbc else 40)
        transcript = ch + sh + shd + cke
        cfin = handshake(20, 2, prf(master, b"client finished", hashlib.sha256(transcript).digest(), 12))
        sfin = handshake(20, 2, prf(master, b"server finished", hashlib.sha256(transcript + cfin).digest(), 12))
        out = [(True, self.c.record(HANDSHAKE, ch)),
               (False, self.s.record(HANDSHAKE, sh) + self.s.record(HANDSHAKE, shd))]
        d3 = self.c.record(HANDSHAKE, cke) + self.c.record(CCS, b"\x01")
        if cbc:
            self.c.change_cipher_spec(kb[64:80], b"", kb[0:32])
        else:
            self.c.change_cipher_spec(kb[0:16], kb[32:36])
        out.append((True, d3 + self.c.record(HANDSHAKE, cfin)))
        d4 = self.s.record(CCS, b"\x01")
        if cbc:
            self.s.change_cipher_spec(kb[80:96], b"", kb[32:64])
        else:
            self.s.change_cipher_spec(kb[16:32], kb[36:40])
        out.append((False, d4 + self.s.record(HANDSHAKE, sfin)))
        return out

    def app(self, from_client: bool, coap: bytes) -> bytes:
        return (self.c if from_client else self.s).record(APPDATA, coap)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=120_000)
    ap.add_argument("--clients", type=int, default=2_000)
    ap.add_argument("--suite", choices=sorted(SUITES), default="ccm8")
    args = ap.parse_args()
    rnd = random.Random(11)
    clients = []
    for i in range(args.clients):
        ident = f"bench-dtls-{i:05d}".encode()
        clients.append({"ip": bytes([10, 2, i >> 8, i & 0xFF]), "port": 40000 + i, "ident": ident,
                        "session": None, "mid": rnd.randrange(65536), "smid": rnd.randrange(65536),
                        "loc": f"{i:05x}", "obs": None, "seq": 2})
    counts = {"packets": 0, "handshakes": 0, "app_records": 0, "clients": args.clients}
    ts = 1_700_000_000.0
    with open(args.out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(c, from_client: bool, payload: bytes) -> None:
            nonlocal ts
            ts += 0.0001
            sec = int(ts)
            a, b = ((c["ip"], c["port"]), SERVER) if from_client else (SERVER, (c["ip"], c["port"]))
            frame = ip_udp(a[0], a[1], b[0], b[1], payload)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)) + frame)
            counts["packets"] += 1

        def app(c, from_client: bool, coap: bytes) -> None:
            put(c, from_client, c["session"].app(from_client, coap))
            counts["app_records"] += 1

        def exchange(c, from_client: bool, req: bytes, resp: bytes) -> None:
            app(c, from_client, req)
            app(c, not from_client, resp)

        while counts["packets"] < args.packets:
            c = clients[rnd.randrange(len(clients))]
            c["mid"] = (c["mid"] + 1) & 0xFFFF
            c["smid"] = (c["smid"] + 1) & 0xFFFF
            tok = rnd.randbytes(4)
            if c["session"] is None:
                c["session"] = Session(rnd, c["ident"], args.suite)
                for from_client, payload in c["session"].flights():
                    put(c, from_client, payload)
                counts["handshakes"] += 1
                ep = c["ident"].decode()
                exchange(c, True, msg(CON, N.POST, c["mid"], tok, ("rd",), (f"ep={ep}", "lt=86400", "lwm2m=1.1", "b=U"),
                                      b"</1/0>,</3/0>,</3303/0>,</5/0>", ct=40),
                         msg(ACK, N.CREATED, c["mid"], tok, location=("rd", c["loc"])))
                continue
            operation(c, rnd, tok, exchange, lambda c, coap: app(c, True, coap))
    stem = args.out[:-5] if args.out.endswith(".pcap") else args.out
    with open(stem + ".keys.yaml", "w") as f:
        f.write("# Keys for the generated DTLS benchmark capture (KEYS.md format). Benchmark-only secret.\npsk:\n")
        for c in clients:
            if c["session"] is not None:
                f.write(f'  - identity: "{c["ident"].decode()}"\n    key: "{PSK.hex()}"\n')
    counts["psk_hex"] = PSK.hex()
    counts["suite"] = args.suite
    with open(stem + ".json", "w") as f:
        json.dump(counts, f, indent=1)
    print(f"{counts['packets']} packets, {counts['handshakes']} handshakes, {counts['app_records']} "
          f"application records -> {args.out}")


if __name__ == "__main__":
    main()
