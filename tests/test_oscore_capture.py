"""Real-peer OSCORE captures: pcaps/oscore-lwm2m.pcap (aiocoap LwM2M client + server, see
pcaps/README.md) and pcaps/leshan-oscore.pcap (Leshan / Californium cf-oscore). Each frame's
verdict, inner code and CCM CBC-MAC are compared with what tshark's OSCORE dissector computes from
the same capture; the LwM2M content is checked against what the peer programs did."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scapy.all import IP, UDP, rdpcap

from monitor import keys as keysfile
from monitor.datagram import Datagram
from monitor.oscore_context import Context
from monitor.oscore_tracker import OscoreTracker
from parsers import coap

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"
CLIENT_PORT = {"oscore-lwm2m": 56930, "leshan-oscore": 56830}
SERVER_PORT = {"oscore-lwm2m": 5693, "leshan-oscore": 5683}


def _run(name: str, keys_name: str | None = None):
    store = keysfile.load(str(PCAPS / f"{keys_name or name}.keys.yaml"))
    tracker = OscoreTracker(store)
    got, docs = {}, []
    for frame, pkt in enumerate(rdpcap(str(PCAPS / f"{name}.pcap")), 1):
        if UDP not in pkt:
            continue
        dgram = Datagram(int(pkt.time * 1_000_000_000), pkt[IP].src, pkt[UDP].sport, pkt[IP].dst,
                         pkt[UDP].dport, bytes(pkt[UDP].payload), frame, f"pcaps/{name}.pcap")
        msg = coap.parse(dgram.payload)
        if msg.oscore is None:
            continue
        res = tracker.unprotect(dgram, msg, dgram.src_port == CLIENT_PORT[name])
        docs += res.documents
        got[frame] = (res, msg)
        assert res.from_client is None or res.from_client == (dgram.src_port == CLIENT_PORT[name])
    docs += tracker.close()
    return got, tracker, docs, store


def _tshark(name: str, cfg) -> dict[int, dict]:
    """Per-frame OSCORE fields from tshark, with the context entered from both perspectives."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    uat = []
    for sender, recipient in ((cfg.client_id, cfg.server_id), (cfg.server_id, cfg.client_id)):
        uat += ["-o", f'uat:oscore_contexts:"{sender.hex()}","{recipient.hex()}","{cfg.master_secret.hex()}",'
                      f'"{cfg.master_salt.hex()}","{(cfg.id_context or b"").hex()}","AES-CCM-16-64-128 (CCM*)"']
    ports = [a for p in (CLIENT_PORT[name], SERVER_PORT[name]) for a in ("-d", f"udp.port=={p},coap")]
    out = subprocess.run(["tshark", "-r", str(PCAPS / f"{name}.pcap"), *ports, *uat, "-Y", "oscore",
                          "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "oscore.code",
                          "-e", "oscore.tag", "-e", "oscore.tag_check_failed", "-e", "oscore.context_not_set"],
                         capture_output=True, text=True, check=True).stdout
    frames = {}
    for line in out.splitlines():
        f = line.split("|")
        frames[int(f[0])] = {"code": f[1], "tag": f[2], "failed": f[3] == "1", "no_context": f[4] == "1"}
    return frames


def _cbc_mac(cfg, res, payload: bytes) -> str:
    # tshark's oscore.tag is CCM's CBC-MAC before encryption: T = U xor AES(key, A0)[:8].
    ctx = Context.derive(cfg, res.id_context)
    key = ctx.client_key if res.from_client else ctx.server_key
    s0 = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(b"\x01" + res.nonce + b"\0\0")
    return bytes(u ^ s for u, s in zip(payload[-8:], s0)).hex()


@pytest.mark.parametrize("name", ["oscore-lwm2m", "leshan-oscore"])
def test_capture_matches_tshark(name):
    got, tracker, docs, store = _run(name)
    cfg = store.oscore[0]
    expected = _tshark(name, cfg)
    assert set(got) == set(expected)
    # Leshan frame 22 (ACK to the Observe cancel, with its own Partial IV): Wireshark 4.0.17 fails its
    # tag; Leshan accepted it (pcaps/README.md, leshan-oscore.pcap item 7). Checked separately below.
    differs = {22} if name == "leshan-oscore" else set()
    assert expected and all(e["code"] and not e["failed"] for f, e in expected.items() if f not in differs)
    for frame, (res, msg) in got.items():
        assert res.decrypted, (frame, res.error)
        if frame in differs:
            assert expected[frame]["failed"]
            continue
        assert str(res.inner.code) == expected[frame]["code"], frame
        assert _cbc_mac(cfg, res, msg.payload) == expected[frame]["tag"], frame
        assert res.lwm2m_fields()["lwm2m"]["identity"] == {"value": cfg.client_id.hex(), "type": "oscore"}
        assert not res.replay
    assert tracker.stats["decrypted"] == len(expected)
    assert cfg.master_secret.hex() not in json.dumps(docs)
    assert cfg.master_salt.hex() not in json.dumps(docs)


def test_leshan_observe_cancel_response():
    """The frame Wireshark fails: 2.05 SenML JSON [{"bn":"/3/0/9","v":84}], as Leshan logged."""
    got, _, _, _ = _run("leshan-oscore")
    res, msg = got[22]
    assert res.decrypted and res.piv == b"\x05" and res.from_client is True
    assert res.inner.code_text == "2.05" and res.inner.content_format == 110
    assert json.loads(res.inner.payload) == [{"bn": "/3/0/9", "v": 84}]
    cancel = got[21][0].inner
    assert cancel.observe == 1 and cancel.uri_path == ("3", "0", "9")


def test_oscore_lwm2m_operations():
    """The merged inner messages are the LwM2M operations lwm2m_peer.py performed."""
    got, _, _, _ = _run("oscore-lwm2m")
    ops = [(f, r.inner, r.from_client) for f, (r, _) in sorted(got.items())]
    requests = [(inner.code_text, "/".join(inner.uri_path), inner.uri_query, client) for _, inner, client in ops
                if inner.is_request]
    assert requests == [
        ("0.02", "rd", ("ep=oscore-ep-01", "lt=300", "lwm2m=1.1", "b=U"), True),   # register
        ("0.01", "3/0", (), False),                                                 # read
        ("0.03", "1/0/1", (), False),                                               # write
        ("0.02", "3/0/4", (), False),                                               # execute
        ("0.01", "3303/0/5700", (), False),                                         # observe
        ("0.02", "dp", (), True),                                                   # send
        ("0.02", "rd/5a3f", ("lt=300",), True),                                     # update
        ("0.04", "rd/5a3f", (), True),                                              # deregister
    ]
    by_code = {}
    for _, inner, _ in ops:
        by_code.setdefault(inner.code_text, []).append(inner)
    register = next(i for _, i, _ in ops if i.uri_path == ("rd",))
    assert register.content_format == 40 and register.payload == b"</1/0>,</3/0>,</3303/0>"
    assert by_code["2.01"][0].location_path == ("rd", "5a3f")
    read = by_code["2.05"][0]
    assert read.content_format == 110 and json.loads(read.payload)[0]["bn"] == "/3/0/"
    observe = next(i for _, i, _ in ops if i.uri_path == ("3303", "0", "5700"))
    assert observe.observe == 0 and observe.accept == 0
    notes = by_code["2.05"][1:]
    assert [n.observe for n in notes] == [1, 2, 3, 4]          # outer Observe values
    assert [n.payload for n in notes] == [b"21.5", b"22.0", b"22.5", b"23.0"]
    send = next(i for _, i, _ in ops if i.uri_path == ("dp",))
    assert send.content_format == 112
    assert cbor2.loads(send.payload) == [{-2: "/3303/0/", 0: "5700", 2: 23.0}, {0: "5701", 3: "Cel"}]
    write = next(i for _, i, _ in ops if i.uri_path == ("1", "0", "1"))
    assert write.payload == b"600" and write.content_format == 0
    assert by_code["2.02"] and all(not i.has_option(coap.OSCORE) for _, i, _ in ops)


def test_oscore_lwm2m_documents():
    got, tracker, docs, store = _run("oscore-lwm2m")
    seen = [d for d in docs if d["event"]["action"] == "context-seen"]
    assert {d["oscore"]["sender"] for d in seen} == {"client", "server"}
    for d in seen:
        assert d["client"]["port"] == 56930 and d["server"]["port"] == 5693
        assert d["oscore"]["id_context"] == "a0b1c2d3"
        assert d["oscore"]["context"]["fingerprint"] == store.oscore[0].fingerprint
        assert d["lwm2m"]["identity"] == {"value": "43", "type": "oscore"}
    summaries = {d["oscore"]["sender"]: d["oscore"]["messages"]["decrypted"]
                 for d in docs if d["event"]["action"] == "context-summary"}
    assert summaries == {"client": sum(r.from_client for r, _ in got.values()),
                         "server": sum(not r.from_client for r, _ in got.values())}
    assert not any(d["event"]["action"] in ("decryption-failed", "replay") for d in docs)
    ids = [d["event"]["id"] for d in docs]
    assert len(ids) == len(set(ids))
    again = [d["event"]["id"] for d in _run("oscore-lwm2m")[2]]
    assert ids == again                          # deterministic


def test_wrong_master_secret_never_decrypts():
    got, tracker, docs, store = _run("oscore-lwm2m", "oscore-wrong")
    assert got
    for frame, (res, _) in got.items():
        assert not res.decrypted and res.inner is None, frame
        assert res.error == "tag check failed", frame
        assert "lwm2m" not in res.lwm2m_fields()
    assert tracker.stats["decrypted"] == 0
    assert {d["event"]["action"] for d in docs} == {"decryption-failed", "context-summary"}
    failed = [d["oscore"]["messages"]["failed"] for d in docs if d["event"]["action"] == "context-summary"]
    assert sum(failed) == len(got) and all(d["event"]["outcome"] == "failure" for d in docs)
    assert store.oscore[0].master_secret.hex() not in json.dumps(docs)


def test_no_keys_means_no_context():
    store = keysfile.KeyStore()
    tracker = OscoreTracker(store)
    for frame, pkt in enumerate(rdpcap(str(PCAPS / "oscore-lwm2m.pcap")), 1):
        msg = coap.parse(bytes(pkt[UDP].payload))
        if msg.oscore is None:
            continue
        d = Datagram(0, pkt[IP].src, pkt[UDP].sport, pkt[IP].dst, pkt[UDP].dport, bytes(pkt[UDP].payload), frame, "x")
        res = tracker.unprotect(d, msg, None)
        assert not res.decrypted and res.inner is None and res.error == "no context", frame
