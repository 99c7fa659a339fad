"""Known keys are redacted wherever they appear, not only in the Security/OSCORE key resources.

Found by the fuzz campaign (seed 32): a Leshan bootstrap-write of Security instance /0/1 whose
Uri-Path was changed to /5/1 printed the PSK as the Firmware Update object's resource 5, in hex.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest
import yaml

from monitor.capture import CaptureStats, read_files
from monitor.keys import KeyStore, OscoreContextConfig, Psk
from monitor.pipeline import Pipeline, PipelineConfig
from monitor.secret_screen import MIN_CONTAINED, SecretScreen
from parsers import coap

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "pcaps/leshan-nosec-bootstrap.pcap"
KEYS = ROOT / "pcaps/leshan-nosec-bootstrap.keys.yaml"
SECRET = bytes.fromhex(yaml.safe_load(KEYS.read_text())["psk"][0]["key"])


def _store(*secrets: bytes) -> KeyStore:
    keys = KeyStore()
    for i, s in enumerate(secrets):
        keys.psks[b"id%d" % i] = Psk(b"id%d" % i, s)
    return keys


def test_whole_contained_and_text_forms():
    key = bytes(range(200, 216))
    screen = SecretScreen(_store(key))
    assert screen.stale()
    assert screen.hits(key) and screen.hits(b"xx" + key + b"yy")
    assert not screen.hits(key[:-1]) and not screen.hits(key[1:] + b"\0")
    for text in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(),
                 "uri=coap://h/?k=" + key.hex() + "&x=1"):
        assert screen.hits(b"other bytes", text), text
    assert not screen.hits(b"other bytes", key.hex()[:-2])


def test_short_secrets_only_as_a_whole_value():
    short = b"\x01\x02\x03"                   # would match ordinary data inside longer values
    assert len(short) < MIN_CONTAINED
    screen = SecretScreen(_store(short))
    screen.stale()
    assert screen.hits(short)
    assert not screen.hits(b"\x00" + short + b"\x00")


def test_every_kind_of_secret_and_later_additions():
    keys = _store()
    screen = SecretScreen(keys)
    screen.stale()
    assert screen.empty and not screen.hits(SECRET)
    keys.oscore.append(OscoreContextConfig(master_secret=b"M" * 16, master_salt=b"S" * 8))
    keys.keylog[b"r" * 32] = b"K" * 48
    assert keys.add_harvested_psk(b"harvested", SECRET)
    assert screen.stale() and not screen.stale()          # rebuilt once, then current
    for s in (b"M" * 16, b"S" * 8, b"K" * 48, SECRET):
        assert screen.hits(s), s


def _datagrams():
    return list(read_files([str(CAPTURE)], CaptureStats()))


def _rewrite(dgrams, change):
    """The datagrams with `change(msg, payload)` applied to each CoAP message: it returns the
    new payload, or None to keep the datagram. Also returns how many were changed."""
    out, changed = [], 0
    for d in dgrams:
        try:
            msg = coap.parse(d.payload)
        except Exception:                    # noqa: BLE001 - not CoAP: kept as it is
            msg = None
        new = change(msg, d.payload) if msg is not None else None
        if new is not None:
            d = d._replace(payload=new)
            changed += 1
        out.append(d)
    return out, changed


def _with_path(dgrams, old: tuple[str, ...], new: tuple[str, ...]):
    """The capture with the Uri-Path of the bootstrap-write to `old` changed to `new` (same lengths)."""
    def change(msg, payload):
        if msg.code != 3 or msg.uri_path != old:                # PUT /0/1: the Security instance
            return None
        head = payload[:4 + len(msg.token)]
        opts = payload[len(head):]
        seg = b"".join(bytes([0x01]) + s.encode() for s in old[1:])
        new_seg = b"".join(bytes([0x01]) + s.encode() for s in new[1:])
        assert opts.startswith(bytes([0xB1]) + old[0].encode() + seg), opts[:8].hex()
        return head + bytes([0xB1]) + new[0].encode() + new_seg + opts[2 + len(seg):]

    out, changed = _rewrite(dgrams, change)
    assert changed == 1
    return out


def _run(dgrams, keys: KeyStore) -> list[dict]:
    from monitor.rule_engine import RuleEngine
    rules = RuleEngine.from_cli(extra_dirs=[], config_path=None, keys=keys, psk_wordlist=None)
    pipeline = Pipeline(PipelineConfig(keys=keys, rules=rules))
    docs = []
    for d in dgrams:
        docs += pipeline.feed(d)
    docs += pipeline.close()
    return docs


def _printed(docs) -> bytes:
    return b"".join(orjson.dumps(d) for d in docs)


def test_a_known_key_written_to_another_object_is_redacted_and_flagged():
    from monitor.keys import load
    dgrams = _with_path(_datagrams(), ("0", "1"), ("5", "1"))
    docs = _run(dgrams, load(str(KEYS)))
    printed = _printed(docs)
    assert SECRET.hex().encode() not in printed and SECRET not in printed
    write = next(d for d in docs if d["event"]["action"] == "bootstrap-write" and d["lwm2m"]["path"] == "/5/1")
    value = next(v for v in write["lwm2m"]["values"] if v["path"] == "/5/1/5")
    assert value["value"] == {"redacted": True, "sha256_8": hashlib.sha256(SECRET).hexdigest()[:8]}
    assert any(d["event"]["dataset"] == "lwm2m.alert" and d["rule"]["name"] == "cleartext-credentials"
               and d["lwm2m"]["path"] == "/5/1" for d in docs)


def test_without_the_key_the_same_value_is_data():
    # the screen only knows what the run knows: no keys file, no harvest of /5/1 -> shown as sent
    dgrams = _with_path(_datagrams(), ("0", "1"), ("5", "1"))
    docs = _run(dgrams, KeyStore())
    write = next(d for d in docs if d["event"]["action"] == "bootstrap-write" and d["lwm2m"]["path"] == "/5/1")
    assert {"path": "/5/1/5", "type": "opaque", "name": "Update Result", "value": SECRET.hex()} in write["lwm2m"]["values"]


def _moved(pair, ts_ns: int, mid_xor: int):
    """A request and its piggy-backed response at another time and with another message ID."""
    out = []
    for n, d in enumerate(pair):
        p = bytearray(d.payload)
        p[2] ^= mid_xor >> 8
        p[3] ^= mid_xor & 0xFF
        out.append(d._replace(payload=bytes(p), ts_ns=ts_ns + n * 1000, frame=d.frame + mid_xor))
    return out


def test_a_key_harvested_mid_run_is_screened_in_values_decoded_after_it():
    """The unmodified capture provisions the PSK in /0/1 (harvested). The same write aimed at
    /5/1 before it shows the bytes (nothing is known yet); after it, they are redacted,
    although the value cache has seen that very payload."""
    dgrams = _datagrams()
    mutated = _with_path(dgrams, ("0", "1"), ("5", "1"))
    i = next(n for n, (a, b) in enumerate(zip(dgrams, mutated)) if a.payload != b.payload)
    pair = mutated[i:i + 2]
    assert coap.parse(pair[1].payload).mid == coap.parse(pair[0].payload).mid     # piggy-backed ACK
    before = _moved(pair, dgrams[0].ts_ns - 10**9, 0x1111)
    after = _moved(pair, dgrams[-1].ts_ns + 10**9, 0x2222)
    docs = _run(before + dgrams + after, KeyStore())
    # outside the bootstrap exchange the same PUT is a plain write
    writes = [d for d in docs if d["event"]["action"] == "write" and d["lwm2m"]["path"] == "/5/1"]
    assert len(writes) == 2
    values = [next(v["value"] for v in w["lwm2m"]["values"] if v["path"] == "/5/1/5") for w in writes]
    assert values[0] == SECRET.hex()                     # before the harvest: unknown, so data
    assert values[1] == {"redacted": True, "sha256_8": hashlib.sha256(SECRET).hexdigest()[:8]}
    flagged = [d["@timestamp"] for d in docs if d["event"]["dataset"] == "lwm2m.alert"
               and d["rule"]["name"] == "cleartext-credentials" and d["lwm2m"]["path"] == "/5/1"]
    assert flagged == [writes[1]["@timestamp"]]


def test_execute_arguments_that_carry_a_known_key_are_redacted():
    """Leshan's Execute of /33000/0/5 with arguments "0='ping',1", the argument changed to the
    hex text of a key the run knows."""
    dgrams = list(read_files([str(ROOT / "pcaps/leshan-nosec-operations.pcap")], CaptureStats()))
    changed, n = _rewrite(dgrams, lambda msg, payload: payload[:-len(msg.payload)] + b"0='" + SECRET.hex().encode() + b"',1"
                          if msg.code == 2 and msg.uri_path == ("33000", "0", "5") and msg.payload == b"0='ping',1"
                          else None)
    assert n >= 1
    keys = _store(SECRET)
    docs = _run(changed, keys)
    assert SECRET.hex().encode() not in _printed(docs)
    ex = next(d for d in docs if d["event"]["action"] == "execute" and d["lwm2m"]["path"] == "/33000/0/5")
    digest = hashlib.sha256(b"0='" + SECRET.hex().encode() + b"',1").hexdigest()[:8]
    assert ex["lwm2m"]["execute"]["arguments"] == f"redacted sha256_8={digest}"
    # and with nothing known, the arguments are shown as sent
    plain = next(d for d in _run(changed, KeyStore()) if d["event"]["action"] == "execute"
                 and d["lwm2m"]["path"] == "/33000/0/5")
    assert plain["lwm2m"]["execute"]["arguments"] == "0='" + SECRET.hex() + "',1"


def test_a_decode_error_that_would_quote_a_known_key_does_not():
    # SenML JSON: an object link value that is not OID:IID is quoted in the decode error
    body = b'[{"bn":"/3/0/","n":"1","vlo":"' + SECRET.hex().encode() + b'"}]'
    shown = Pipeline(PipelineConfig(keys=KeyStore()))._decoded_values(body, 110, "/3/0")
    assert shown.error is not None and SECRET.hex() in shown.error
    keys = _store(SECRET)
    screened = Pipeline(PipelineConfig(keys=keys))._decoded_values(body, 110, "/3/0")
    assert screened.error is not None and SECRET.hex() not in screened.error


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # aiocoap: mtype/token given by hand
@pytest.mark.parametrize("query,shown_as,path", [
    ("psk=" + SECRET.hex(), "psk=redacted", "/bs?psk"),
    ("key=" + SECRET.hex().upper(), "key=redacted", "/bs?key"),
    # base64 with its padding: the text before "=" is the key, not a parameter name (fuzz seed 35)
    (base64.b64encode(SECRET).decode(), "redacted", "/bs?"),
])
def test_a_known_key_in_a_uri_query_is_redacted_and_flagged(query, shown_as, path):
    """Leshan's `POST /bs?ep=...`, re-encoded by aiocoap with one more query option carrying
    the key (as a vendor's provisioning call might)."""
    from aiocoap import Message
    def add_query(msg, payload):
        if msg.code != 2 or msg.uri_path != ("bs",):
            return None
        got = Message.decode(payload)
        m = Message(mtype=got.mtype, mid=got.mid, code=got.code, token=got.token, payload=got.payload,
                    uri_path=got.opt.uri_path, uri_query=tuple(got.opt.uri_query) + (query,))
        assert coap.parse(m.encode()).uri_query[:-1] == msg.uri_query
        return m.encode()

    dgrams, changed = _rewrite(_datagrams(), add_query)
    assert changed >= 1                      # (a retransmission is re-encoded alike)
    docs = _run(dgrams, load_keys())
    printed = _printed(docs)
    for form in (SECRET.hex(), SECRET.hex().upper(), base64.b64encode(SECRET).decode().rstrip("=")):
        assert form.encode() not in printed
    req = next(d for d in docs if d["event"]["action"] == "bootstrap-request")
    digest = hashlib.sha256(query.encode()).hexdigest()[:8]
    assert req["coap"]["uri_query"][-1] == f"{shown_as} sha256_8={digest}"
    assert req["lwm2m"]["credentials"]["paths"] == [path]
    assert any(d["event"]["dataset"] == "lwm2m.alert" and d["rule"]["name"] == "cleartext-credentials"
               and d["event"]["start"] == req["@timestamp"] for d in docs)
    # with no key known, the query is shown as sent and nothing is flagged for it
    shown = next(d for d in _run(dgrams, KeyStore()) if d["event"]["action"] == "bootstrap-request")
    assert shown["coap"]["uri_query"][-1] == query
    assert shown["coap"]["uri_query"][:-1] == req["coap"]["uri_query"][:-1]       # the others as sent
    assert "ep=leshan-client-bs" in req["coap"]["uri_query"]
    assert "credentials" not in shown["lwm2m"]


def load_keys() -> KeyStore:
    from monitor.keys import load
    return load(str(KEYS))


def test_a_package_uri_that_carries_a_known_key_is_not_copied_out():
    """Leshan's text/plain write of /5/0/1 with the key's hex in the URI: the value is redacted
    and lwm2m.firmware.package_uri, a copy of it, is left out (fuzz seed 35)."""
    dgrams = list(read_files([str(ROOT / "pcaps/leshan-nosec-operations.pcap")], CaptureStats()))
    old = b"coap://127.0.0.1:5683/fw/leshan-fw-1.0.1.bin"
    uri = b"coap://127.0.0.1:5683/fw/" + SECRET.hex().encode() + b".bin"
    changed = [d._replace(payload=d.payload[:-len(old)] + uri) if d.payload.endswith(b"\xff" + old) else d
               for d in dgrams]
    assert changed != dgrams
    keys = _store(SECRET)
    docs = _run(changed, keys)
    assert SECRET.hex().encode() not in _printed(docs)
    write = next(d for d in docs if d["event"]["action"] == "write" and d["lwm2m"]["path"] == "/5/0/1")
    assert write["lwm2m"]["values"][0]["value"] == {"redacted": True, "sha256_8": hashlib.sha256(uri).hexdigest()[:8]}
    assert "firmware" not in write["lwm2m"]
    shown = next(d for d in _run(changed, KeyStore()) if d["event"]["action"] == "write"
                 and d["lwm2m"]["path"] == "/5/0/1")
    assert shown["lwm2m"]["firmware"] == {"package_uri": uri.decode()}


OPERATIONS = ROOT / "pcaps/leshan-nosec-operations.pcap"


def _analyze(tmp_path, secret: bytes | None) -> tuple[str, bytes, list[dict]]:
    """`lwm2m-monitor analyze` of the Leshan operations capture, with `secret` as a known PSK:
    (summary on stdout, NDJSON, documents)."""
    import subprocess
    import sys
    argv = [sys.executable, "-m", "monitor.cli", "analyze", str(OPERATIONS), "--out", str(tmp_path / "o.ndjson")]
    if secret is not None:
        keys = tmp_path / "keys.yaml"
        keys.write_text(f'psk:\n  - identity: "someone"\n    key: "{secret.hex()}"\n')
        argv += ["--keys", str(keys)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    out = (tmp_path / "o.ndjson").read_bytes()
    return done.stdout, out, [orjson.loads(line) for line in out.splitlines()]


def _redacted(text: str) -> str:
    return "redacted sha256_8=" + hashlib.sha256(text.encode()).hexdigest()[:8]


def test_an_endpoint_name_that_is_a_known_key_is_redacted_everywhere(tmp_path):
    """`ep=` carrying a key (a device provisioned with its secret as its name): the query was
    already redacted, but lwm2m.endpoint, the alerts' messages and the summary printed it."""
    name = "leshan-client-01"
    summary, out, docs = _analyze(tmp_path, name.encode())
    assert name.encode() not in out and name not in summary
    ops = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert {d["lwm2m"].get("endpoint") for d in ops} == {_redacted(name)}    # one name, as before
    register = next(d for d in ops if d["event"]["action"] == "register")
    assert register["lwm2m"]["credentials"]["paths"] == ["/rd?ep"]
    assert any(d["event"]["dataset"] == "lwm2m.alert" and d["rule"]["name"] == "cleartext-credentials"
               and d["event"]["start"] == register["@timestamp"] for d in docs)
    assert _redacted(name) in summary
    # without the key, the same run names the endpoint
    summary, out, docs = _analyze(tmp_path, None)
    assert name in summary and {d["lwm2m"].get("endpoint") for d in docs
                                if d["event"]["dataset"] == "lwm2m.operation"} == {name}


def test_a_known_key_in_a_uri_path_or_location_path_is_redacted(tmp_path):
    """The registration's Location-Path (`/rd/KzFXQ7WJhl`, the server's choice) holding a
    known key: shown redacted in the register's location and in every update's Uri-Path, and
    flagged as credentials in clear; the updates still find their registration."""
    location = "KzFXQ7WJhl"
    _, out, docs = _analyze(tmp_path, location.encode())
    assert location.encode() not in out
    shown = "/rd/" + _redacted(location)
    ops = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    register = next(d for d in ops if d["event"]["action"] == "register")
    assert register["lwm2m"]["registration"]["location"] == shown
    updates = [d for d in ops if d["event"]["action"] in ("update", "deregister")]
    assert len(updates) == 4
    for d in [register, *updates]:
        assert d["lwm2m"]["credentials"]["paths"] == [shown], d["event"]["action"]
        assert d["lwm2m"]["endpoint"] == "leshan-client-01"
    for d in updates:
        assert d["coap"]["uri_path"] == shown and d["lwm2m"]["registration"]["location"] == shown
    # without the key: as sent, nothing flagged
    _, _, docs = _analyze(tmp_path, None)
    update = next(d for d in docs if d["event"]["action"] == "update")
    assert update["coap"]["uri_path"] == "/rd/" + location and "credentials" not in update["lwm2m"]


def test_the_screen_rejects_values_shorter_than_every_secret_without_searching():
    screen = SecretScreen(_store(b"0123456789abcdef", b"\x01\x02\x03"))
    assert screen.active() and screen.shortest == 3
    assert screen.hits(b"\x01\x02\x03") and not screen.hits(b"\x01\x02")
    assert screen.hits(b"xx0123456789abcdefxx") and screen.hits(b"x" * 40, "30313233343536373839616263646566")
