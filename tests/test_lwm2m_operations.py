"""LwM2M operations decoded from captures made by Eclipse Leshan (client, server, bootstrap).

The expected sequences are the scenario Leshan ran, as pcaps/README.md lists it from tshark's
view of each capture, not from our own output.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from monitor.analyze import collect
from monitor.keys import KeyStore, load
from monitor.pipeline import PipelineConfig

from captures import PCAPS, ROOT

OPS = os.path.join(PCAPS, "leshan-nosec-operations.pcap")
BOOTSTRAP = os.path.join(PCAPS, "leshan-nosec-bootstrap.pcap")


def operations(path, keys=None):
    docs, res = collect([path], PipelineConfig(keys=keys or KeyStore()))
    ops = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    ops.sort(key=lambda d: d["@timestamp"])
    return ops, docs, res


# (action, path, outcome, content format) in the order the Leshan scenario ran them.
NOSEC_SEQUENCE = [
    ("register", "/", "success", 40),
    ("read", "/3/0", "success", 11542), ("read", "/3/0", "success", 110), ("read", "/3/0", "success", 112),
    ("read", "/3/0", "success", 11543), ("read", "/3/0", "success", 11542), ("read", "/3/0/0", "success", 0),
    ("read", "/3/0/9", "success", 60), ("read", "/3/0/11", "success", 11542), ("read", "/33000/0/2", "success", 42),
    ("read-composite", "/", "success", 110), ("read-composite", "/", "success", 112),
    ("write", "/3/0/14", "success", 0), ("write", "/33000/0", "success", 11542), ("write", "/33000/0", "success", 110),
    ("write-composite", "/", "success", 112), ("write-attributes", "/33000/0/1", "success", None),
    ("discover", "/3", "success", 40), ("discover", "/33000/0", "success", 40),
    ("execute", "/3/0/4", "success", None), ("execute", "/33000/0/5", "success", 0),
    ("create", "/33000", "success", 11542), ("read", "/33000/1", "success", 110),
    ("update", "/", "success", 40), ("delete", "/33000/1", "success", None), ("update", "/", "success", 40),
    ("observe", "/3/0/9", "success", 110), ("notify", "/3/0/9", "success", 110), ("notify", "/3/0/9", "success", 110),
    ("notify", "/3/0/9", "success", 110), ("cancel-observation", "/3/0/9", "success", None),
    ("observe-composite", "/", "success", 112), ("notify", "/", "success", 112), ("notify", "/", "success", 112),
    ("cancel-observation", "/", "success", None),
    ("send", "/", "success", 112), ("write", "/5/0/1", "success", 0), ("write", "/5/0/0", "success", 42),
    ("read", "/5/0/3", "success", 0), ("read", "/42/0", "failure", None), ("write", "/3/0/0", "failure", 0),
    ("update", "/", "success", None), ("deregister", "/", "success", None),
]


@pytest.fixture(scope="module")
def nosec():
    return operations(OPS)


def test_every_operation_in_order(nosec):
    ops, _, _ = nosec
    got = [(d["event"]["action"], d["lwm2m"]["path"], d["event"]["outcome"]) for d in ops]
    assert got == [s[:3] for s in NOSEC_SEQUENCE]


def test_content_formats(nosec):
    ops, _, _ = nosec
    for doc, expected in zip(ops, NOSEC_SEQUENCE):
        if expected[3] is not None:
            assert doc["coap"].get("content_format") == expected[3], (doc["event"]["action"], doc["lwm2m"]["path"])


def test_endpoint_and_roles_on_every_operation(nosec):
    ops, _, _ = nosec
    for d in ops:
        assert d["lwm2m"]["endpoint"] == "leshan-client-01"
        assert d["client"] == {"ip": "127.0.0.1", "port": 56830}
        assert d["server"] == {"ip": "127.0.0.1", "port": 5683}
        assert d["lwm2m"]["security"] == "nosec"
        assert d["lwm2m"]["interface"] in ("registration", "device-management", "information-reporting")


def test_registration_facts(nosec):
    reg = nosec[0][0]["lwm2m"]["registration"]
    assert reg["lifetime"] == 300 and reg["binding"] == "U" and reg["version"] == "1.1"
    assert reg["location"].startswith("/rd/")
    assert reg["objects"] == ["/1/0", "/3", "/3/0", "/5", "/5/0", "/33000/0"]


def _values(doc):
    return {v["path"]: v["value"] for v in doc["lwm2m"].get("values", [])}


def test_values_decoded_in_every_format(nosec):
    ops, _, _ = nosec
    reads = [d for d in ops if d["event"]["action"] == "read" and d["lwm2m"]["path"] == "/3/0"]
    assert len(reads) == 5
    for d in reads:        # TLV, SenML JSON, SenML CBOR, LwM2M JSON, TLV: the same device object
        v = _values(d)
        assert v["/3/0/0"] == "Eclipse Leshan"
        assert v["/3/0/1"] == "lwm2m-monitor-scenario"
        assert v["/3/0/9"] == 87
        assert v["/3/0/13"] == 1700000000
    by_path = {(d["event"]["action"], d["lwm2m"]["path"]): d for d in ops}
    assert _values(by_path[("read", "/3/0/0")]) == {"/3/0/0": "Eclipse Leshan"}
    assert _values(by_path[("read", "/3/0/9")]) == {"/3/0/9": 87}
    assert _values(by_path[("read", "/33000/0/2")]) == {"/33000/0/2": "deadbeef00010203"}
    notes = [d for d in ops if d["event"]["action"] == "notify" and d["lwm2m"]["path"] == "/3/0/9"]
    assert [_values(d)["/3/0/9"] for d in notes] == [86, 85, 84]


def test_composite_paths(nosec):
    ops, _, _ = nosec
    rc = [d for d in ops if d["event"]["action"] == "read-composite"]
    for d in rc:
        assert d["lwm2m"]["paths"] == ["/3/0/0", "/3/0/9", "/1/0/1"]
    send = next(d for d in ops if d["event"]["action"] == "send")
    assert "/3/0/9" in send["lwm2m"]["paths"] and _values(send)["/3/0/9"] == 82


def test_blockwise_firmware_is_reassembled_and_hashed(nosec):
    ops, _, _ = nosec
    fw = next(d for d in ops if d["lwm2m"]["path"] == "/5/0/0")
    image = bytes(i & 0xFF for i in range(4096))
    assert fw["file"]["size"] == 4096
    assert fw["file"]["hash"]["sha256"] == hashlib.sha256(image).hexdigest()
    assert fw["coap"]["block1"]["blocks"] == 8
    uri = next(d for d in ops if d["lwm2m"]["path"] == "/5/0/1")
    assert uri["lwm2m"]["firmware"]["package_uri"] == "coap://127.0.0.1:5683/fw/leshan-fw-1.0.1.bin"


def test_error_codes(nosec):
    ops, _, _ = nosec
    codes = {d["lwm2m"]["path"]: d["coap"]["response"]["code"] for d in ops if d["event"]["outcome"] == "failure"}
    assert codes == {"/42/0": "4.04", "/3/0/0": "4.05"}


def test_bootstrap_on_nonstandard_port_and_key_harvest():
    ops, docs, res = operations(BOOTSTRAP)
    got = [(d["event"]["action"], d["lwm2m"]["path"]) for d in ops]
    assert got == [("bootstrap-request", "/"), ("bootstrap-discover", "/"), ("bootstrap-delete", "/"),
                   ("bootstrap-write", "/0/1"), ("bootstrap-write", "/1/0"), ("bootstrap-read", "/1"),
                   ("bootstrap-finish", "/"), ("register", "/"), ("read", "/3/0"), ("deregister", "/")]
    assert {d["lwm2m"]["endpoint"] for d in ops} == {"leshan-client-bs"}
    assert all(d["lwm2m"]["interface"] == "bootstrap" for d in ops[:7])
    # the PSK provisioned in clear decrypts the DTLS session that follows, with no keys file
    secure = ops[7:]
    assert all(d["lwm2m"]["security"] == "dtls" for d in secure)
    assert all(d["dtls"]["key_source"] == "harvested" for d in secure)
    assert res.pipeline.stats.harvested_psks == 1
    write = ops[3]
    assert write["lwm2m"]["credentials"]["paths"] == ["/0/1/3", "/0/1/5"]
    text = json.dumps(docs)
    assert "a1b2c3d4e5f60718293a4b5c6d7e8f90" not in text      # the secret key never leaves
    assert "6c657368616e2d70736b2d3031" not in text
    redacted = {v["path"]: v["value"] for v in write["lwm2m"]["values"]}["/0/1/5"]
    assert redacted == {"redacted": True, "sha256_8": hashlib.sha256(bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")).hexdigest()[:8]}


@pytest.mark.parametrize("name,security,identity_type", [
    ("leshan-psk-ccm8", "dtls", "psk"), ("leshan-psk-cid", "dtls", "psk"), ("leshan-oscore", "oscore", "oscore")])
def test_secure_sessions_carry_the_same_operations(name, security, identity_type):
    path = os.path.join(PCAPS, name + ".pcap")
    ops, _, _ = operations(path, load(os.path.join(PCAPS, name + ".keys.yaml")))
    actions = [d["event"]["action"] for d in ops]
    assert actions[0] == "register" and actions[-1] == "deregister"
    assert actions.count("notify") == 3 and "observe" in actions and "cancel-observation" in actions
    assert "execute" in actions and "write" in actions and "update" in actions
    assert all(d["lwm2m"]["security"] == security for d in ops)
    assert all(d["lwm2m"]["identity"]["type"] == identity_type for d in ops)
    assert len({d["lwm2m"]["endpoint"] for d in ops}) == 1


def test_wrong_keys_mean_no_operations_not_garbage():
    path = os.path.join(PCAPS, "leshan-psk-ccm8.pcap")
    keys = KeyStore()
    from monitor.keys import Psk
    keys.psks[b"leshan-psk-01"] = Psk(b"leshan-psk-01", bytes(16))
    ops, docs, _ = operations(path, keys)
    assert ops == []
    hs = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    assert hs and all(d["dtls"]["decrypted"] is False for d in hs)


def test_output_is_deterministic():
    a, _ = collect([OPS, BOOTSTRAP], PipelineConfig())
    b, _ = collect([OPS, BOOTSTRAP], PipelineConfig())
    assert [json.dumps(d, sort_keys=True) for d in a] == [json.dumps(d, sort_keys=True) for d in b]
    assert len({d["event"]["id"] for d in a}) == len(a)


def test_contract_checker_accepts_our_documents(tmp_path):
    """../shared/tools/check_contract.py, the users' own check of the event contract."""
    checker = os.path.join(ROOT, "..", "shared", "tools", "check_contract.py")
    for name in ("leshan-nosec-operations", "leshan-nosec-bootstrap", "leshan-oscore"):
        keys = os.path.join(PCAPS, name + ".keys.yaml")
        docs, _ = collect([os.path.join(PCAPS, name + ".pcap")],
                          PipelineConfig(keys=load(keys) if os.path.exists(keys) else KeyStore()))
        out = tmp_path / f"{name}.ndjson"
        out.write_text("".join(json.dumps(d) + "\n" for d in docs))
        r = subprocess.run([sys.executable, checker, str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
