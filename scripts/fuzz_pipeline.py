"""Fuzz campaign over the whole pipeline: crashes, undeliverable documents and secret leaks.

For every capture in pcaps/ and ../shared/corpus (with its keys: the capture's keys file, or the
keys MANIFEST.md publishes for a corpus capture), each case mutates the capture's traffic and runs
it through the full pipeline WITH the rule engine (`RuleEngine.from_cli()`, sometimes with a PSK
wordlist so the weak-psk audit runs too), then encodes every document with `sinks.dumps_line`.

Mutations (several per case, chosen by the case's seed):
  datagram level: byte flips, truncation, duplication, reordering, dropping, splicing datagrams
    of other captures into the stream, splicing byte ranges of two datagrams, DTLS records
    inside a datagram (drop / duplicate / swap / transplant / header fields), CoAP option bytes
    (random option bytes, extended nibbles, injected options, Content-Format swaps), payload
    replacement, token length, OSCORE option bytes, ports/addresses, timestamps, and writes of
    the run's secrets into Security/OSCORE resources (/0/i/3,4,5,8, /21/i/0,5) in every LwM2M
    encoding; OSCORE messages the keys open are decrypted, their inner message mutated the same
    ways and re-protected (so the layers behind the AEAD are reached); these run through
    `analyze.drive`.
  file level: corrupting bytes of the pcap/pcapng file (random and at record/block headers,
    link types, length fields), truncating it, dropping/duplicating blocks, appending another
    file (gzip files are mutated inside and re-compressed, or corrupted compressed); the file
    is written to a temporary directory and read through `analyze.analyze_files`.

A finding is: an exception escaping; a run taking longer than --timeout seconds; a document
`dumps_line` cannot encode; a document without `event.dataset`; fewer documents out than the
pipeline counted (an event lost); any output (the NDJSON bytes and the capture errors)
containing a secret of the run (PSKs, OSCORE master secrets and salts, key-log secrets, keys
harvested from cleartext bootstrap, and two canary PSKs every run's key store holds) in raw,
lower/upper hex or base64 form. Each distinct
finding (by signature) is printed on one line and its reproducer (minimised by dropping
datagrams while the same signature still shows) saved under --out as JSON (datagrams as hex)
plus, for file-level cases, the mutated capture file. The campaign carries on after a finding.

Deterministic: case N of seed S always makes the same input (random.Random(f"{S}:{N}")).

    nice -n 19 python scripts/fuzz_pipeline.py --seconds 600 --seed 1 --out fuzz-out
    python scripts/fuzz_pipeline.py --replay fuzz-out/F001-....json   # re-run one, full traceback
    python scripts/fuzz_pipeline.py --seconds 60 --only leshan-oscore --mode datagram

Prints a summary at the end (cases run per mode and capture, findings); exit status 1 if any
finding was made.
"""
from __future__ import annotations

import argparse
import base64
import collections
import gzip
import json
import os
import random
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from captures import CORPUS_PSK, corpus_captures, keys_file, project_captures  # noqa: E402

from monitor.analyze import ListSink, analyze_files, drive  # noqa: E402
from monitor.capture import CaptureStats, read_files  # noqa: E402
from monitor.datagram import Datagram  # noqa: E402
from monitor.keys import KeyStore, OscoreContextConfig, Psk, load  # noqa: E402
from monitor.objects import ObjectModel  # noqa: E402
from monitor.pipeline import Pipeline, PipelineConfig  # noqa: E402
from monitor.rule_engine import RuleEngine  # noqa: E402
from monitor.sinks import dumps_line  # noqa: E402
from monitor.oscore_context import Context  # noqa: E402
from parsers import coap  # noqa: E402
from parsers import oscore as wire  # noqa: E402
from parsers.dtls import looks_like_dtls  # noqa: E402

# Keys MANIFEST.md publishes for corpus captures (they have no keys file next to them).
GOLIOTH_ID = b"20230614151602-linux@blush-unexpected-fox"
ERICSSON_SECRET = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
ERICSSON_SALT = bytes.fromhex("9e7ca92223786340")
CONTENT_FORMATS = [0, 40, 42, 50, 60, 110, 112, 11542, 11543, 11544, 1, 65535, 65000, 16]
COAP_PORTS = [5683, 5684, 5685, 5686, 5783, 40000, 56830, 0]
MIN_SECRET = 4          # shorter secrets would match output bytes by chance
# Canary keys every run's key store holds (one binary, one printable), so that captures without
# a keys file also get secrets written into Security/OSCORE resources and looked for in output.
CANARIES = {b"fuzz-canary-bin": bytes.fromhex("c4a9a17e0b5ec7e7f00dfacec4a9a17e"),
            b"fuzz-canary-text": b"canary-PSK-q8XzW3"}


class Hang(Exception):
    pass


# ---------------------------------------------------------------------------------- targets

class Target:
    """One capture: its datagrams and file bytes, read once; a fresh key store per run."""

    def __init__(self, path: str):
        self.path = path
        self.name = os.path.basename(path)
        self.keys_path = keys_file(path)
        self.datagrams = list(read_files([path], CaptureStats()))
        with open(path, "rb") as fh:
            self.raw = fh.read()
        self.gz = self.raw[:2] == b"\x1f\x8b"
        self.inner = gzip.decompress(self.raw) if self.gz else self.raw

    _sealed = None

    def sealed(self) -> dict:
        """OSCORE messages of the capture this harness can re-protect: datagram index ->
        (context, sent by the client, nonce, aad, plaintext)."""
        if self._sealed is None:
            self._sealed = _decrypt_oscore(self.datagrams, self.keystore())
        return self._sealed

    def keystore(self) -> KeyStore:
        keys = load(self.keys_path) if self.keys_path else KeyStore()
        psk = CORPUS_PSK.get(self.name)
        if psk and self.name.startswith("golioth"):
            keys.psks[GOLIOTH_ID] = Psk(GOLIOTH_ID, bytes.fromhex(psk))
        elif psk:
            keys.psks[b"test"] = Psk(b"test", bytes.fromhex(psk))
        for ident, key in CANARIES.items():
            keys.psks[ident] = Psk(ident, key)
        if self.name.startswith("Interop6"):
            for idc in (None, bytes.fromhex("37cbf3210017a2d3")):
                keys.oscore.append(OscoreContextConfig(ERICSSON_SECRET, ERICSSON_SALT, idc, b"", b"\x01"))
        return keys


def secrets_of(keys: KeyStore) -> list[bytes]:
    out = [p.key for p in keys.psks.values()]
    for c in keys.oscore:
        out += [c.master_secret, c.master_salt]
    out += list(keys.keylog.values())
    return [s for s in out if len(s) >= MIN_SECRET]


def leak_forms(secret: bytes) -> list[tuple[str, bytes]]:
    forms = [("raw", secret), ("hex", secret.hex().encode()), ("HEX", secret.hex().upper().encode())]
    b64 = base64.b64encode(secret).rstrip(b"=")
    if len(b64) >= 8:
        forms.append(("base64", b64))
    return forms


# -------------------------------------------------------------------------------- mutations

def _decrypt_oscore(dgrams: list[Datagram], keys: KeyStore) -> dict:
    out: dict = {}
    if not keys.oscore:
        return out
    requests: dict = {}            # (requester, responder, token) -> (ctx, client_sent, kid, piv, nonce)
    contexts: dict = {}

    def ctx_of(i, cfg, idc):
        if (i, idc) not in contexts:
            try:
                contexts[(i, idc)] = Context.derive(cfg, idc)
            except Exception:      # noqa: BLE001
                contexts[(i, idc)] = None
        return contexts[(i, idc)]

    for n, d in enumerate(dgrams):
        try:
            msg = coap.parse(d.payload)
            if msg.oscore is None or not msg.payload:
                continue
            opt = wire.parse_option(msg.oscore)
        except Exception:          # noqa: BLE001 - not ours to judge here
            continue
        if msg.is_request and opt.kid is not None and opt.piv is not None:
            for i, cfg in enumerate(keys.oscore):
                for idc in {cfg.id_context, opt.kid_context}:
                    ctx = ctx_of(i, cfg, idc)
                    if ctx is None:
                        continue
                    for client_sent in (True, False):
                        if ctx.sender_id(client_sent) != opt.kid:
                            continue
                        nonce = ctx.nonce(opt.kid, opt.piv)
                        if nonce is None:
                            continue
                        aad = wire.aad(ctx.alg.number, opt.kid, opt.piv)
                        plain = ctx.open(client_sent, nonce, aad, msg.payload)
                        if plain is not None:
                            out[n] = (ctx, client_sent, nonce, aad, plain)
                            requests[(d.src, d.dst, msg.token)] = (ctx, client_sent, opt.kid, opt.piv, nonce)
        elif not msg.is_request:
            req = requests.get((d.dst, d.src, msg.token))
            if req is None:
                continue
            ctx, client_sent, kid, piv, req_nonce = req
            nonce = ctx.nonce(ctx.sender_id(not client_sent), opt.piv) if opt.piv is not None else req_nonce
            aad = wire.aad(ctx.alg.number, kid, piv)
            if nonce is None:
                continue
            plain = ctx.open(not client_sent, nonce, aad, msg.payload)
            if plain is not None:
                out[n] = (ctx, not client_sent, nonce, aad, plain)
    return out


def mutate_plaintext(rng: random.Random, plain: bytes, targets: list, secrets=()) -> tuple[bytes, str]:
    """An OSCORE inner plaintext (code, Class E options, payload) mutated."""
    what = rng.choice(["code", "inject", "remove", "cf", "payload", "payload", "structured", "flip",
                       "truncate", "raw-options", "secret", "secret"])
    code = plain[:1]
    try:
        opts, body = coap.parse_options(plain, 1)
        opts = list(opts)
    except Exception:              # noqa: BLE001
        return _flip(rng, plain), "inner-flip"
    if what == "code":
        code = bytes([rng.choice([0, 1, 2, 3, 4, 5, 0x41, 0x44, 0x45, 0x80, 0x84, 0xA0, 0xE0, 0xFF,
                                  rng.randrange(256)])])
    elif what == "inject":
        opts.append((rng.choice([4, 6, 8, 9, 11, 12, 14, 15, 17, 20, 23, 27, 28, 60, 258, rng.randrange(1, 3000)]),
                     rng.randbytes(rng.choice([0, 1, 2, 3, 4, 9, 300]))))
    elif what == "remove" and opts:
        del opts[rng.randrange(len(opts))]
    elif what == "cf":
        opts = [o for o in opts if o[0] != coap.CONTENT_FORMAT] + \
            [(coap.CONTENT_FORMAT, coap.encode_option_uint(rng.choice(CONTENT_FORMATS)))]
    elif what == "payload" and body:
        body = _flip(rng, body, rng.randint(1, 6))
    elif what == "structured":
        body = rng.choice(STRUCTURED)(rng)
    elif what == "flip":
        return _flip(rng, plain), "inner-flip"
    elif what == "truncate":
        return plain[:rng.randrange(len(plain) + 1)], "inner-truncate"
    elif what == "secret" and secrets and code[0] >> 5 == 0:      # requests: their path says what is written
        path, cf, body, enc = secret_payload(rng, rng.choice(secrets))
        opts = [o for o in opts if o[0] not in (coap.URI_PATH, coap.CONTENT_FORMAT)]
        opts += [(coap.URI_PATH, p.encode()) for p in path] + [(coap.CONTENT_FORMAT, coap.encode_option_uint(cf))]
        code = bytes([coap.PUT if len(path) == 3 else rng.choice([coap.PUT, coap.POST])])
        return code + coap.serialize_options(opts) + b"\xff" + body, "inner-secret-" + enc
    elif what == "raw-options":
        raw = coap.serialize_options(opts) + rng.randbytes(rng.randint(1, 5))
        return code + raw + (b"\xff" + body if body else b""), "inner-raw-options"
    return code + coap.serialize_options(opts) + (b"\xff" + body if body else b""), "inner-" + what


def reseal(rng: random.Random, target: Target, dgrams: list[Datagram], targets: list) -> str | None:
    sealed = target.sealed()
    if not sealed:
        return None
    n = rng.choice(sorted(sealed))
    ctx, client_sent, nonce, aad, plain = sealed[n]
    new, what = mutate_plaintext(rng, plain, targets, secrets_of(target.keystore()))
    ct = ctx.seal(client_sent, nonce, aad, new)
    head, msg, opts = _coap_split(dgrams[n].payload)
    dgrams[n] = dgrams[n]._replace(payload=head + opts + b"\xff" + ct)
    return f"oscore-reseal[{n}]:{what}:{new[:24].hex()}"


def _flip(rng: random.Random, data: bytes, n: int | None = None) -> bytes:
    if not data:
        return bytes([rng.randrange(256)]) if rng.random() < 0.5 else data
    b = bytearray(data)
    for _ in range(n or rng.randint(1, 4)):
        i = rng.randrange(len(b))
        r = rng.random()
        if r < 0.4:
            b[i] ^= 1 << rng.randrange(8)
        elif r < 0.8:
            b[i] = rng.randrange(256)
        else:
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x0D, 0x0E, 0x0F])
    return bytes(b)


def _records(payload: bytes) -> list[bytes] | None:
    """The DTLS 1.0/1.2 records of a datagram as raw byte strings (None when not splittable)."""
    out, pos = [], 0
    while pos < len(payload):
        if len(payload) - pos < 13 or not 20 <= payload[pos] <= 24:
            out.append(payload[pos:])          # CID/unified/garbage tail: kept whole
            return out
        (length,) = struct.unpack_from("!H", payload, pos + 11)
        out.append(payload[pos:pos + 13 + length])
        pos += 13 + length
    return out


def _coap_split(payload: bytes):
    """(header+token, options, payload-with-marker) of a plain CoAP message, or None."""
    if len(payload) < 4 or payload[0] >> 6 != 1 or (payload[0] & 15) > 8:
        return None
    end = 4 + (payload[0] & 15)
    try:
        msg = coap.parse(payload)
    except Exception:
        return None
    opts = coap.serialize_options(msg.options)
    return payload[:end], msg, opts


def _replace_options(payload: bytes, options: list[tuple[int, bytes]], body: bytes | None = None) -> bytes:
    split = _coap_split(payload)
    if split is None:
        return payload
    head, msg, _ = split
    body = msg.payload if body is None else body
    return head + coap.serialize_options(options) + (b"\xff" + body if body else b"")


class Mutator:
    """Datagram-level operators. Each returns a description (for the reproducer) or None."""

    def __init__(self, rng: random.Random, targets: list[Target], secrets: list[bytes] = ()):
        self.rng = rng
        self.targets = targets
        self.secrets = list(secrets)

    def pick(self, dgrams, pred=None):
        idx = [i for i, d in enumerate(dgrams) if pred is None or pred(d)]
        return self.rng.choice(idx) if idx else None

    def set_payload(self, dgrams, i, payload):
        dgrams[i] = dgrams[i]._replace(payload=payload)

    def other_datagram(self):
        t = self.rng.choice(self.targets)
        return self.rng.choice(t.datagrams) if t.datagrams else None

    def op_flip(self, d):
        i = self.pick(d)
        if i is None:
            return None
        self.set_payload(d, i, _flip(self.rng, d[i].payload))
        return f"flip[{i}]"

    def op_truncate(self, d):
        i = self.pick(d, lambda x: x.payload)
        if i is None:
            return None
        n = self.rng.randrange(len(d[i].payload))
        self.set_payload(d, i, d[i].payload[:n])
        return f"truncate[{i}]@{n}"

    def op_duplicate(self, d):
        i = self.pick(d)
        if i is None:
            return None
        j = self.rng.randint(i, len(d))
        d.insert(j, d[i])
        return f"duplicate[{i}]->{j}"

    def op_reorder(self, d):
        if len(d) < 2:
            return None
        r = self.rng.random()
        if r < 0.5:
            i, j = self.rng.sample(range(len(d)), 2)
            d[i], d[j] = d[j], d[i]
            return f"swap[{i},{j}]"
        i = self.rng.randrange(len(d) - 1)
        j = min(len(d), i + self.rng.randint(2, 8))
        window = d[i:j]
        if r < 0.75:
            window.reverse()
        else:
            self.rng.shuffle(window)
        d[i:j] = window
        return f"reorder[{i}:{j}]"

    def op_drop(self, d):
        i = self.pick(d)
        if i is None:
            return None
        del d[i]
        return f"drop[{i}]"

    def op_splice_capture(self, d):
        t = self.rng.choice(self.targets)
        if not t.datagrams:
            return None
        a = self.rng.randrange(len(t.datagrams))
        run = t.datagrams[a:a + self.rng.randint(1, 12)]
        at = self.rng.randint(0, len(d))
        ref = d[min(at, len(d) - 1)] if d else run[0]
        rewrite = self.rng.random() < 0.6
        out = []
        for k, x in enumerate(run):
            x = x._replace(ts_ns=ref.ts_ns + k)
            if rewrite:                       # into this capture's flow, same direction or reversed
                same = (x.dst_port in (5683, 5684, 5685, 5686)) == (ref.dst_port in (5683, 5684, 5685, 5686))
                src, dst = (ref.src, ref.dst) if same else (ref.dst, ref.src)
                x = x._replace(src_ip=src[0], src_port=src[1], dst_ip=dst[0], dst_port=dst[1])
            out.append(x)
        d[at:at] = out
        return f"splice-capture[{t.name}:{a}+{len(run)}]->{at}{'/flow' if rewrite else ''}"

    def op_splice_bytes(self, d):
        i = self.pick(d)
        o = self.other_datagram()
        if i is None or o is None:
            return None
        p, q = d[i].payload, o.payload
        x = self.rng.randint(0, len(p))
        y = self.rng.randint(0, len(q))
        self.set_payload(d, i, p[:x] + q[y:])
        return f"splice-bytes[{i}]@{x}+{y}"

    def op_dtls_records(self, d):
        i = self.pick(d, lambda x: looks_like_dtls(x.payload) and len(x.payload) >= 13)
        if i is None:
            return None
        recs = _records(d[i].payload)
        if not recs:
            return None
        rng = self.rng
        k = rng.randrange(len(recs))
        what = rng.choice(["drop", "dup", "swap", "transplant", "length", "type", "epoch", "seq",
                           "version", "merge", "split", "fragment"])
        if what == "drop" and len(recs) > 1:
            del recs[k]
        elif what == "dup":
            recs.insert(k, recs[k])
        elif what == "swap" and len(recs) > 1:
            j = rng.randrange(len(recs))
            recs[k], recs[j] = recs[j], recs[k]
        elif what == "transplant":
            o = self.pick_dtls_record()
            if o is None:
                return None
            recs.insert(rng.randint(0, len(recs)), o)
        elif what in ("length", "type", "epoch", "seq", "version", "fragment") and len(recs[k]) >= 13:
            r = bytearray(recs[k])
            if what == "length":
                n = rng.choice([0, 1, len(r) - 14, len(r) - 12, 0xFFFF, 16384 + 2048, rng.randrange(65536)])
                r[11:13] = struct.pack("!H", max(0, n) & 0xFFFF)
            elif what == "type":
                r[0] = rng.choice([20, 21, 22, 23, 24, 25, 26, 19, rng.randrange(256)])
            elif what == "epoch":
                r[3:5] = struct.pack("!H", rng.choice([0, 1, 2, 0xFFFF, rng.randrange(65536)]))
            elif what == "seq":
                r[5:11] = rng.choice([b"\0" * 6, b"\xff" * 6, rng.randbytes(6)])
            elif what == "version":
                r[1:3] = rng.choice([b"\xfe\xfd", b"\xfe\xff", b"\xfe\xfc", b"\x01\x00", b"\x03\x03"])
            else:                             # handshake fragment header fields
                if len(r) >= 25 and r[0] == 22:
                    pos = 13 + rng.choice([0, 1, 4, 6, 9])
                    r[pos:pos + 3] = rng.randbytes(3) if rng.random() < 0.5 else b"\0\0\0"
                else:
                    r = bytearray(_flip(rng, bytes(r)))
            recs[k] = bytes(r)
        elif what == "merge" and i + 1 < len(d):
            self.set_payload(d, i, b"".join(recs) + d[i + 1].payload)
            del d[i + 1]
            return f"dtls-merge[{i},{i + 1}]"
        elif what == "split" and len(recs) > 1:
            parts = [d[i]._replace(payload=r) for r in recs]
            d[i:i + 1] = parts
            return f"dtls-split[{i}]x{len(parts)}"
        else:
            recs[k] = _flip(rng, recs[k])
        self.set_payload(d, i, b"".join(recs))
        return f"dtls-{what}[{i}.{k}]"

    def pick_dtls_record(self):
        for _ in range(20):
            o = self.other_datagram()
            if o is not None and looks_like_dtls(o.payload):
                recs = _records(o.payload)
                if recs:
                    return self.rng.choice(recs)
        return None

    def op_coap_options(self, d):
        i = self.pick(d, lambda x: _coap_split(x.payload) is not None)
        if i is None:
            return None
        rng = self.rng
        head, msg, opts = _coap_split(d[i].payload)
        opt_list = list(msg.options)
        what = rng.choice(["raw-insert", "raw-flip", "nibble", "inject", "remove", "cf", "block",
                           "oscore", "huge"])
        if what == "raw-insert":
            body = (b"\xff" + msg.payload) if msg.payload else b""
            at = rng.randint(0, len(opts))
            new = opts[:at] + rng.randbytes(rng.randint(1, 6)) + opts[at:]
            self.set_payload(d, i, head + new + body)
        elif what == "raw-flip" and opts:
            body = (b"\xff" + msg.payload) if msg.payload else b""
            self.set_payload(d, i, head + _flip(rng, opts) + body)
        elif what == "nibble" and opts:
            b = bytearray(opts)
            b[0] = (rng.choice([13, 14, 15]) << 4 if rng.random() < 0.5 else b[0] & 0xF0) | \
                (rng.choice([13, 14, 15]) if rng.random() < 0.5 else b[0] & 0x0F)
            body = (b"\xff" + msg.payload) if msg.payload else b""
            self.set_payload(d, i, head + bytes(b) + body)
        elif what == "inject":
            num = rng.choice([1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60,
                              258, 2048, 65000, 65535, rng.randrange(1, 65536)])
            val = rng.randbytes(rng.choice([0, 1, 2, 3, 4, 5, 8, 20, 300]))
            opt_list.append((num, val))
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
            return f"coap-inject[{i}]#{num}/{len(val)}"
        elif what == "remove" and opt_list:
            del opt_list[rng.randrange(len(opt_list))]
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
        elif what == "cf":
            cf = rng.choice(CONTENT_FORMATS)
            opt_list = [o for o in opt_list if o[0] != coap.CONTENT_FORMAT]
            opt_list.append((coap.CONTENT_FORMAT, coap.encode_option_uint(cf)))
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
            return f"coap-cf[{i}]={cf}"
        elif what == "block":
            num = rng.choice([coap.BLOCK1, coap.BLOCK2, coap.OBSERVE, coap.SIZE1, coap.SIZE2])
            val = rng.choice([b"", b"\x0f", b"\x08", b"\xff\xff\xff", b"\xff\xff\xff\xff", rng.randbytes(3),
                              bytes([rng.randrange(256)])])
            opt_list = [o for o in opt_list if o[0] != num] + [(num, val)]
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
            return f"coap-opt[{i}]#{num}={val.hex()}"
        elif what == "oscore":
            val = rng.choice([b"", b"\x09\x00", b"\x19\x01\x02", bytes([rng.randrange(256)]) + rng.randbytes(rng.randint(0, 12))])
            for k, (n, v) in enumerate(opt_list):
                if n == coap.OSCORE:
                    val = _flip(rng, v) if v and rng.random() < 0.5 else val
                    opt_list[k] = (n, val)
                    break
            else:
                opt_list.append((coap.OSCORE, val))
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
            return f"coap-oscore[{i}]={val.hex()}"
        else:                                 # huge: long option values
            opt_list.append((rng.choice([11, 15, 8, 4, 35]), rng.randbytes(rng.choice([270, 1000, 2000]))))
            self.set_payload(d, i, _replace_options(d[i].payload, opt_list))
        return f"coap-{what}[{i}]"

    def op_payload(self, d):
        i = self.pick(d, lambda x: _coap_split(x.payload) is not None)
        if i is None:
            return None
        rng = self.rng
        _, msg, _ = _coap_split(d[i].payload)
        r = rng.random()
        if r < 0.3 and msg.payload:
            body = _flip(rng, msg.payload, rng.randint(1, 6))
        elif r < 0.45 and msg.payload:
            body = msg.payload[:rng.randrange(len(msg.payload))]
        elif r < 0.65:
            o = self.other_datagram()
            split = _coap_split(o.payload) if o is not None else None
            body = split[1].payload if split else rng.randbytes(rng.randint(1, 40))
        elif r < 0.8:
            body = rng.choice(STRUCTURED)(rng)
        else:
            body = rng.randbytes(rng.randint(1, 64))
        self.set_payload(d, i, _replace_options(d[i].payload, list(msg.options), body))
        return f"payload[{i}]={body[:16].hex()}{'...' if len(body) > 16 else ''}"

    def op_secret_write(self, d):
        """A request becomes a write of one of the run's secrets into a Security/OSCORE resource."""
        if not self.secrets:
            return None
        i = self.pick(d, lambda x: (s := _coap_split(x.payload)) is not None and s[1].is_request)
        if i is None:
            return None
        rng = self.rng
        secret = rng.choice(self.secrets)
        head, msg, _ = _coap_split(d[i].payload)
        r = rng.random()
        if r < 0.3:
            form = rng.choice([secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()])
            body = (b"\xff" + msg.payload) if msg.payload else b""
            if r < 0.15:                     # the key in a Uri-Query option (a vendor's ?psk=...)
                opts = list(msg.options) + [(coap.URI_QUERY, rng.choice(["psk=", "key=", ""]).encode() + form.encode())]
                what = "query"
            elif r < 0.2:                    # ... as the endpoint name
                opts = [o for o in msg.options if not (o[0] == coap.URI_QUERY and o[1].startswith(b"ep="))]
                opts.append((coap.URI_QUERY, b"ep=" + form.encode()))
                what = "ep"
            else:                            # ... as a Uri-Path segment, or a Location-Path one of a reply
                j = self.pick(d, lambda x: (s := _coap_split(x.payload)) is not None and not s[1].is_request)
                if r < 0.25 or j is None:
                    opts = list(msg.options) + [(coap.URI_PATH, form.encode())]
                    what = "path"
                else:
                    i = j
                    head, msg, _ = _coap_split(d[i].payload)
                    body = (b"\xff" + msg.payload) if msg.payload else b""
                    opts = list(msg.options) + [(coap.LOCATION_PATH, form.encode())]
                    what = "location"
            self.set_payload(d, i, head + coap.serialize_options(sorted(opts, key=lambda o: o[0])) + body)
            return f"secret-{what}[{i}]"
        anywhere = rng.random() < 0.3
        path, cf, body, enc = secret_payload(rng, secret, anywhere)
        # POST on a resource path is an Execute, not a write: POST only on an instance
        head = bytes([head[0], coap.PUT if len(path) == 3 else rng.choice([coap.PUT, coap.POST])]) + head[2:]
        opts = [o for o in msg.options if o[0] not in (coap.URI_PATH, coap.CONTENT_FORMAT)]
        opts += [(coap.URI_PATH, p.encode()) for p in path]
        opts.append((coap.CONTENT_FORMAT, coap.encode_option_uint(cf)))
        self.set_payload(d, i, head + coap.serialize_options(opts) + b"\xff" + body)
        return f"secret-write{'-elsewhere' if anywhere else ''}[{i}]/{'/'.join(path)}:{cf}:{enc}"

    def op_token(self, d):
        i = self.pick(d, lambda x: len(x.payload) >= 4 and x.payload[0] >> 6 == 1)
        if i is None:
            return None
        b = bytearray(d[i].payload)
        b[0] = (b[0] & 0xF0) | self.rng.randrange(16)
        self.set_payload(d, i, bytes(b))
        return f"tkl[{i}]={b[0] & 15}"

    def op_ports(self, d):
        i = self.pick(d)
        if i is None:
            return None
        rng = self.rng
        r = rng.random()
        x = d[i]
        if r < 0.4:
            x = x._replace(dst_port=rng.choice(COAP_PORTS))
        elif r < 0.6:
            x = x._replace(src_port=rng.choice(COAP_PORTS))
        elif r < 0.8:
            x = x._replace(src_ip=x.dst_ip, src_port=x.dst_port, dst_ip=x.src_ip, dst_port=x.src_port)
        else:
            x = x._replace(src_ip=rng.choice(["::1", "fe80::1", "10.0.0.9", x.src_ip]))
        d[i] = x
        return f"addr[{i}]={x.src_ip}:{x.src_port}>{x.dst_ip}:{x.dst_port}"

    def op_time(self, d):
        i = self.pick(d)
        if i is None:
            return None
        rng = self.rng
        jump = rng.choice([-10**12, -1, 0, 10**9, 601 * 10**9, 3600 * 10**9, 10**17])
        for k in range(i, len(d)) if rng.random() < 0.7 else [i]:
            d[k] = d[k]._replace(ts_ns=max(0, d[k].ts_ns + jump))
        return f"time[{i}]{jump:+d}"


def _tlv(rng):
    out = b""
    for _ in range(rng.randint(1, 4)):
        typ = rng.randrange(4) << 6
        ident16 = rng.random() < 0.3
        value = rng.randbytes(rng.choice([0, 1, 2, 4, 8, 9, 20]))
        ln = len(value)
        lt = rng.choice([0, 1, 2, 3]) if ln > 7 or rng.random() < 0.3 else 0
        first = typ | (0x20 if ident16 else 0) | (lt << 3) | (ln if lt == 0 and ln < 8 else 0)
        ident = rng.randrange(65536 if ident16 else 256)
        out += bytes([first]) + ident.to_bytes(2 if ident16 else 1, "big")
        if lt:
            out += ln.to_bytes(lt, "big")
        out += value if rng.random() < 0.8 else value[: rng.randint(0, len(value))]
    return out


def _cbor(rng, depth=0):
    major = rng.randrange(8)
    ai = rng.choice([0, 1, 23, 24, 25, 26, 27, 28, 31, rng.randrange(32)])
    head = bytes([(major << 5) | ai])
    if ai == 24:
        head += rng.randbytes(1)
    elif ai == 25:
        head += rng.randbytes(2)
    elif ai == 26:
        head += rng.randbytes(4)
    elif ai == 27:
        head += rng.randbytes(8)
    if depth < 3 and major in (4, 5, 6) and rng.random() < 0.7:
        return head + b"".join(_cbor(rng, depth + 1) for _ in range(rng.randint(1, 3)))
    return head + rng.randbytes(rng.randint(0, 6))


def _json(rng):
    return rng.choice([
        b'[{"bn":"/3/0/","n":"0","vs":"x"},{"n":"1","v":1e308}]', b'[{"n":"/0/0/5","vd":"AAAA"}]',
        b'[{"bn":"/3/0/0","bt":1e400,"v":1}]', b'{"bn":"/","e":[{"n":"3/0/0","sv":"x"}]}',
        b'[{"n":"/3/0/0","vlo":"3:0"}]', b'[{"bn":"/21/0/","n":"0","vd":"AQID"}]', b'[' * 1000,
        b'[{"n":"/1/0/1","v":-0.0}]', b'{"bn":' + b'"' * 3, b'[{"n":"\xed\xa0\x80","vs":"\xff"}]',
        b'[{"n":"/3/0/13","v":99999999999999999999999999}]', b'</3/0>;ver=1.0,</0/0>,<' + b'a' * 300,
    ])


STRUCTURED = [_tlv, _cbor, _json, lambda rng: _cbor(rng) + _cbor(rng)]

# Where LwM2M carries key material (monitor/objects.py SECRET_RESOURCES), and how.
SECRET_PATHS = [(0, 5), (0, 3), (0, 4), (0, 8), (21, 0), (21, 5)]
# resources that are not key resources: a known key written there is caught by the secret screen
OTHER_PATHS = [(0, 0), (1, 7), (3, 1), (3, 14), (5, 1), (5, 5), (3303, 5750), (33000, 5)]


def secret_payload(rng: random.Random, secret: bytes,
                   anywhere: bool = False) -> tuple[tuple[str, ...], int, bytes, str]:
    """A write of `secret` into a Security/OSCORE resource (with `anywhere`, into a resource
    that is not a key resource) in one of the LwM2M encodings: (Uri-Path, Content-Format,
    payload, description)."""
    import cbor2
    oid, rid = rng.choice(OTHER_PATHS if anywhere else SECRET_PATHS)
    iid = rng.choice([0, 1, 7])
    deep = rng.random() < 0.5                  # request path down to the resource, or the instance
    path = (str(oid), str(iid)) + ((str(rid),) if deep else ())
    text = secret.decode("utf-8", "replace")
    enc = rng.choice(["tlv", "senml-vd", "senml-vs", "senml-vlo", "senml-v", "senml-cbor", "lwm2m-cbor",
                      "cbor", "text-b64", "text-hex", "opaque", "lwm2m-json", "tlv-bad"])
    b64 = base64.b64encode(secret).decode()
    if enc.startswith("tlv"):
        value = secret if enc == "tlv" else secret[:-1]
        # resource with value: 8- or 16-bit identifier, 8- or 16-bit length field
        ident = bytes([rid]) if rid < 256 else rid.to_bytes(2, "big")
        wide = len(secret) >= 256
        kind = 0xC0 | (0x20 if rid >= 256 else 0) | (0x10 if wide else 0x08)
        length = len(secret if enc == "tlv-bad" else value)     # tlv-bad: one byte beyond the value
        body = bytes([kind]) + ident + length.to_bytes(2 if wide else 1, "big") + value
        return path, 11542, body, enc
    if enc.startswith("senml-") and enc != "senml-cbor":
        label = enc[6:]
        value = {"vd": base64.urlsafe_b64encode(secret).decode().rstrip("="), "vs": text,
                 "vlo": rng.choice([text, secret.hex()]), "v": rng.choice([text, secret.hex()])}[label]
        rec = {"bn": f"/{oid}/{iid}/", "n": str(rid), label: value}
        return path, 110, json.dumps([rec]).encode(), enc
    if enc == "senml-cbor":
        return path, 112, cbor2.dumps([{-2: f"/{oid}/{iid}/", 0: str(rid), 8: secret}]), enc
    if enc == "lwm2m-cbor":
        return path, 11544, cbor2.dumps({oid: {iid: {rid: rng.choice([secret, text])}}}), enc
    if enc == "lwm2m-json":
        return path, 11543, json.dumps({"bn": f"/{oid}/{iid}/", "e": [{"n": str(rid), "sv": text}]}).encode(), enc
    full = (str(oid), str(iid), str(rid))
    if enc == "cbor":
        return full, 60, cbor2.dumps(rng.choice([secret, text])), enc
    if enc == "text-b64":
        return full, 0, b64.encode(), enc
    if enc == "text-hex":
        return full, 0, secret.hex().encode(), enc
    return full, 42, secret, enc
DATAGRAM_OPS = ["flip", "truncate", "duplicate", "reorder", "drop", "splice_capture", "splice_bytes",
                "dtls_records", "coap_options", "payload", "token", "ports", "time",
                "dtls_records", "coap_options", "coap_options", "payload", "splice_capture",   # weights
                "secret_write", "secret_write"]


def mutate_datagrams(rng: random.Random, target: Target, targets: list[Target]) -> tuple[list[Datagram], list[str]]:
    dgrams = list(target.datagrams)
    ops: list[str] = []
    if target.sealed() and rng.random() < 0.6:          # decrypted layers: re-protected inner messages
        for _ in range(rng.choice([1, 1, 2, 3])):
            desc = reseal(rng, target, dgrams, targets)
            if desc:
                ops.append(desc)
        if rng.random() < 0.5:
            return dgrams, ops
    if len(dgrams) > 400 and rng.random() < 0.8:        # large captures: a window
        a = rng.randrange(len(dgrams) - 200)
        dgrams = dgrams[a:a + rng.randint(50, 400)]
    m = Mutator(rng, targets, secrets_of(target.keystore()))
    for _ in range(rng.choice([1, 1, 2, 3, 4, 6, 10])):
        name = rng.choice(DATAGRAM_OPS)
        desc = getattr(m, "op_" + name)(dgrams)
        if desc:
            ops.append(desc)
    return dgrams, ops


# ------------------------------------------------------------------------ file-level mutation

def _pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each record of a classic pcap (header included)."""
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, pos = [], 24
    while pos + 16 <= len(data):
        (incl,) = struct.unpack_from(endian + "I", data, pos + 8)
        out.append((pos, 16 + incl))
        pos += 16 + incl
    return out


def _pcapng_blocks(data: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    endian = "<"
    while pos + 12 <= len(data):
        (btype,) = struct.unpack_from("<I", data, pos)
        if btype == 0x0A0D0D0A and pos + 12 <= len(data):
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        (blen,) = struct.unpack_from(endian + "I", data, pos + 4)
        if blen < 12 or pos + blen > len(data):
            break
        out.append((pos, blen))
        pos += blen
    return out


def mutate_file(rng: random.Random, target: Target, targets: list[Target]) -> tuple[bytes, list[str]]:
    inner = target.inner
    ops: list[str] = []
    if target.gz and rng.random() < 0.25:                 # damage the compressed stream itself
        raw = bytearray(target.raw)
        if rng.random() < 0.5:
            n = rng.randrange(len(raw))
            ops.append(f"gz-truncate@{n}")
            return bytes(raw[:n]), ops
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(raw))
            raw[i] = rng.randrange(256)
            ops.append(f"gz-byte@{i}")
        return bytes(raw), ops
    data = bytearray(inner)
    pcapng = data[:4] == b"\x0a\x0d\x0d\x0a"
    units = _pcapng_blocks(bytes(data)) if pcapng else _pcap_records(bytes(data))
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        what = rng.choice(["bytes", "header", "length", "linktype", "drop", "dup", "truncate", "append",
                           "blocktype"])
        if what == "bytes" and data:
            for _ in range(rng.randint(1, 16)):
                i = rng.randrange(len(data))
                data[i] = rng.randrange(256)
            ops.append("bytes")
        elif what == "header" and len(data) > 8:
            i = rng.randrange(min(len(data), 64 if pcapng else 24))
            data[i] = rng.randrange(256)
            ops.append(f"header@{i}")
        elif what == "length" and units:
            off, ln = rng.choice(units)
            field = off + (rng.choice([4, 4, 20, 24]) if pcapng else rng.choice([8, 12]))
            if field + 4 <= len(data):
                v = rng.choice([0, 1, 11, 12, 13, ln - 1, ln + 1, ln + 4, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                rng.randrange(1 << 32)])
                endian = "<" if (pcapng or data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")) else ">"
                struct.pack_into(endian + "I", data, field, max(0, v) & 0xFFFFFFFF)
                ops.append(f"length@{field}={v}")
        elif what == "linktype":
            lt = rng.choice([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 0xFFFF, rng.randrange(300)])
            if not pcapng and len(data) >= 24:
                endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
                struct.pack_into(endian + "I", data, 20, lt)
                ops.append(f"linktype={lt}")
            elif pcapng:
                for off, ln in units:
                    if struct.unpack_from("<I", data, off)[0] == 1 and off + 10 <= len(data):
                        struct.pack_into("<H", data, off + 8, lt)
                        ops.append(f"idb-linktype@{off}={lt}")
                        break
        elif what == "blocktype" and pcapng and units:
            off, _ = rng.choice(units)
            bt = rng.choice([1, 2, 3, 4, 5, 6, 0x0A, 0x0A0D0D0A, 0xBAD, 0x40000BAD, rng.randrange(1 << 32)])
            struct.pack_into("<I", data, off, bt)
            ops.append(f"blocktype@{off}={bt:#x}")
        elif what == "drop" and len(units) > 1:
            off, ln = rng.choice(units[1:])
            del data[off:off + ln]
            ops.append(f"drop@{off}+{ln}")
            units = _pcapng_blocks(bytes(data)) if pcapng else _pcap_records(bytes(data))
        elif what == "dup" and units:
            off, ln = rng.choice(units)
            at = rng.choice([o for o, _ in units] + [len(data)])
            data[at:at] = data[off:off + ln]
            ops.append(f"dup@{off}+{ln}->{at}")
            units = _pcapng_blocks(bytes(data)) if pcapng else _pcap_records(bytes(data))
        elif what == "truncate" and data:
            n = rng.randrange(len(data))
            del data[n:]
            ops.append(f"truncate@{n}")
            units = [u for u in units if u[0] + u[1] <= n]
        elif what == "append":
            other = rng.choice(targets)
            data += other.inner
            ops.append(f"append[{other.name}]")
    out = bytes(data)
    if target.gz:
        out = gzip.compress(out, mtime=0)
    return out, ops


# ----------------------------------------------------------------------------------- running

class Outcome:
    def __init__(self):
        self.docs: list[dict] = []
        self.errors: list[str] = []
        self.exc: BaseException | None = None
        self.tb = ""
        self.pipeline: Pipeline | None = None
        self.keys: KeyStore | None = None


_MODEL = None


def _config(target: Target, wordlist: str | None) -> tuple[PipelineConfig, KeyStore]:
    global _MODEL
    if _MODEL is None:
        _MODEL = ObjectModel.load()
    keys = target.keystore()
    rules = RuleEngine.from_cli(keys=keys, psk_wordlist=wordlist)
    return PipelineConfig(keys=keys, objects=_MODEL, rules=rules), keys


def _on_alarm(signum, frame):
    raise Hang("run exceeded its time limit")


def run_case(target: Target, dgrams: list[Datagram] | None, file_bytes: bytes | None,
             wordlist: str | None, timeout: float, tmpdir: str) -> Outcome:
    out = Outcome()
    config, keys = _config(target, wordlist)
    out.keys = keys
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        if dgrams is not None:
            pipeline = Pipeline(config)
            out.pipeline = pipeline
            cstats = CaptureStats()
            drive(iter(dgrams), pipeline, out.docs.extend, cstats)
        else:
            path = os.path.join(tmpdir, "case-" + target.name)
            with open(path, "wb") as fh:
                fh.write(file_bytes)
            sink = ListSink()
            res = analyze_files([path], config, [sink])
            out.pipeline = res.pipeline
            out.docs = sink.docs
            out.errors = res.errors
    except BaseException as exc:       # noqa: BLE001 - everything escaping is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        out.exc = exc
        out.tb = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return out


def _where(tb_text: str) -> str:
    """The innermost project frame of a traceback: 'file:function'."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', tb_text)
    for path, func in reversed(frames):
        if "/parsers/" in path or "/monitor/" in path:
            return f"{os.path.basename(path)}:{func}"
    return f"{os.path.basename(frames[-1][0])}:{frames[-1][1]}" if frames else "?"


def check(out: Outcome) -> list[tuple[str, str]]:
    """The findings of one run: (signature, detail)."""
    found: list[tuple[str, str]] = []
    if out.exc is not None:
        kind = "hang" if isinstance(out.exc, Hang) else "crash"
        msg = re.sub(r"\d+", "N", str(out.exc))[:80]
        found.append((f"{kind}:{type(out.exc).__name__}@{_where(out.tb)}:{msg}",
                      out.tb.strip().splitlines()[-1]))
        return found
    lines: list[bytes] = []
    for n, doc in enumerate(out.docs):
        try:
            lines.append(dumps_line(doc))
        except Exception as exc:     # noqa: BLE001
            tb = traceback.format_exc()
            found.append((f"encode:{type(exc).__name__}@{_where(tb)}:{doc.get('event', {}).get('dataset')}",
                          f"document {n}: {exc}"))
            continue
        ev = doc.get("event") if isinstance(doc, dict) else None
        if not isinstance(ev, dict) or not ev.get("dataset"):
            found.append(("no-dataset", f"document {n}: {str(doc)[:200]}"))
    p = out.pipeline
    if p is not None and p.stats.documents != len(out.docs):
        found.append(("lost-events", f"pipeline counted {p.stats.documents}, {len(out.docs)} came out"))
    blob = b"".join(lines) + "\n".join(out.errors).encode("utf-8", "replace")
    secrets = list(secrets_of(out.keys)) if out.keys is not None else []
    for s in secrets:
        for form, needle in leak_forms(s):
            if needle in blob:
                at = blob.index(needle)
                line_start = blob.rfind(b"\n", 0, at) + 1
                line = blob[line_start:blob.find(b"\n", at)]
                ds = re.search(rb'"dataset":"([^"]+)"', line)
                keys_before = re.findall(rb'"([A-Za-z0-9_@.]+)":', line[:at - line_start])
                field = keys_before[-1].decode() if keys_before else "?"
                src = "harvested" if any(p_.key == s and p_.source == "harvested" for p_ in out.keys.psks.values()) \
                    or any(c.source == "harvested" and s in (c.master_secret, c.master_salt) for c in out.keys.oscore) \
                    else "configured"
                found.append((f"leak:{src}:{ds.group(1).decode() if ds else '?'}:{field}",
                              f"{len(s)}-byte secret ({src}) in output as {form}: ...{line[max(0, at - line_start - 80):at - line_start + 40 + len(needle)].decode('utf-8', 'replace')}..."))
                break
    return found


# ---------------------------------------------------------------------------- the campaign

def _dg_json(d: Datagram) -> dict:
    return {"ts_ns": d.ts_ns, "src_ip": d.src_ip, "src_port": d.src_port, "dst_ip": d.dst_ip,
            "dst_port": d.dst_port, "payload": d.payload.hex(), "frame": d.frame, "source": d.source,
            "live": d.live}


def _dg_from(j: dict) -> Datagram:
    return Datagram(j["ts_ns"], j["src_ip"], j["src_port"], j["dst_ip"], j["dst_port"],
                    bytes.fromhex(j["payload"]), j["frame"], j["source"], j.get("live", False))


def minimise(target: Target, dgrams: list[Datagram], sig: str, wordlist, timeout, tmpdir,
             budget_s: float = 20.0) -> list[Datagram]:
    """Drop chunks, then single datagrams, while the run still shows `sig` (bounded in time)."""
    end = time.monotonic() + budget_s

    def still(ds):
        return any(s == sig for s, _ in check(run_case(target, ds, None, wordlist, timeout, tmpdir)))

    cur = list(dgrams)
    chunk = max(1, len(cur) // 2)
    while chunk >= 1 and time.monotonic() < end:
        i, changed = 0, False
        while i < len(cur) and time.monotonic() < end:
            cand = cur[:i] + cur[i + chunk:]
            if cand and still(cand):
                cur, changed = cand, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return cur


def make_wordlist(tmpdir: str, keys: KeyStore, rng: random.Random) -> str:
    path = os.path.join(tmpdir, "wordlist.txt")
    lines = ["# fuzz", "password", "text:secret", "00112233445566778899aabbccddeeff"]
    lines += [p.key.hex() for p in keys.psks.values()]
    rng.shuffle(lines)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def campaign(args) -> int:
    paths = project_captures() + corpus_captures()
    targets = [Target(p) for p in paths]
    chosen = [t for t in targets if not args.only or any(o in t.name for o in args.only)]
    if not chosen:
        sys.exit(f"no capture matches {args.only}")
    os.makedirs(args.out, exist_ok=True)
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()
    seen: dict[str, int] = collections.Counter()
    per_mode: collections.Counter = collections.Counter()
    per_target: collections.Counter = collections.Counter()
    ops_seen: collections.Counter = collections.Counter()
    nfind = len([f for f in os.listdir(args.out) if f.endswith(".json")])
    case = args.start
    with tempfile.TemporaryDirectory(prefix="fuzz-pipeline-") as tmpdir:
        while time.monotonic() < deadline:
            rng = random.Random(f"{args.seed}:{case}")
            target = chosen[case % len(chosen)]
            mode = args.mode or ("file" if rng.random() < 0.3 else "datagram")
            wordlist = None
            if target.keystore().psks and rng.random() < 0.2:
                wordlist = make_wordlist(tmpdir, target.keystore(), rng)
            dgrams = file_bytes = None
            try:
                if mode == "datagram":
                    dgrams, ops = mutate_datagrams(rng, target, targets)
                else:
                    file_bytes, ops = mutate_file(rng, target, targets)
            except Exception as exc:      # noqa: BLE001 - the harness's own bug: say so, go on
                print(f"HARNESS-ERROR seed={args.seed} case={case}: {type(exc).__name__}: {exc}", flush=True)
                case += 1
                continue
            for o in ops:
                ops_seen[re.sub(r"[\[@=].*", "", o)] += 1
            per_mode[mode] += 1
            per_target[target.name] += 1
            out = run_case(target, dgrams, file_bytes, wordlist, args.timeout, tmpdir)
            for sig, detail in check(out):
                seen[sig] += 1
                if seen[sig] > 1:
                    continue
                nfind += 1
                stem = os.path.join(args.out, f"F{nfind:03d}-{target.name}-{args.seed}-{case}")
                rec = {"signature": sig, "detail": detail, "seed": args.seed, "case": case, "mode": mode,
                       "capture": target.path, "ops": ops, "wordlist": wordlist is not None,
                       "traceback": out.tb}
                if dgrams is not None:
                    small = minimise(target, dgrams, sig, wordlist, args.timeout, tmpdir) \
                        if not sig.startswith("hang") else dgrams
                    rec["datagrams"] = [_dg_json(d) for d in small]
                    rec["datagrams_before_minimising"] = len(dgrams)
                else:
                    ext = ".pcapng" if target.inner[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"
                    rec["file"] = stem + ext + (".gz" if target.gz else "")
                    with open(rec["file"], "wb") as fh:
                        fh.write(file_bytes)
                with open(stem + ".json", "w") as fh:
                    json.dump(rec, fh, indent=1)
                print(f"FINDING {sig} | {target.name} seed={args.seed} case={case} {mode} "
                      f"ops={','.join(ops)[:160]} | {detail[:200]} -> {stem}.json", flush=True)
            case += 1
    minutes = (time.monotonic() - started) / 60
    print(f"cases {case - args.start} ({dict(per_mode)}) in {minutes:.1f} min over {len(per_target)} captures; "
          f"next --start {case}")
    print("operators: " + ", ".join(f"{k}={v}" for k, v in sorted(ops_seen.items())))
    print(f"distinct findings {len(seen)}: " + "; ".join(f"{k} x{v}" for k, v in seen.items()))
    return 1 if seen else 0


def replay(path: str, timeout: float) -> int:
    with open(path) as fh:
        rec = json.load(fh)
    target = Target(rec["capture"])
    with tempfile.TemporaryDirectory(prefix="fuzz-replay-") as tmpdir:
        wordlist = make_wordlist(tmpdir, target.keystore(), random.Random(0)) if rec.get("wordlist") else None
        if "datagrams" in rec:
            out = run_case(target, [_dg_from(j) for j in rec["datagrams"]], None, wordlist, timeout, tmpdir)
        else:
            with open(rec["file"], "rb") as fh:
                out = run_case(target, None, fh.read(), wordlist, timeout, tmpdir)
    if out.tb:
        print(out.tb)
    found = check(out)
    for sig, detail in found:
        print(f"{sig} | {detail}")
    if not found:
        print("no finding: fixed (or a state the reproducer does not capture)")
    return 1 if found else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60, help="time box (default 60)")
    ap.add_argument("--seed", default="1", help="campaign seed (default 1)")
    ap.add_argument("--out", default="fuzz-findings", help="directory for reproducers")
    ap.add_argument("--start", type=int, default=0, help="first case number (to continue a seed)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds one run may take (a hang)")
    ap.add_argument("--only", action="append", help="captures whose name contains this (repeatable)")
    ap.add_argument("--mode", choices=["datagram", "file"], help="only this mutation level")
    ap.add_argument("--replay", help="re-run a saved reproducer (.json) and print what it finds")
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args.replay, args.timeout)
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
