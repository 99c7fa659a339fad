"""pcaps/aiocoap-lwm2m12.pcap (aiocoap 0.4.17 peers, see pcaps/README.md): an LwM2M 1.2 plain-CoAP
bootstrap with a bootstrap-pack-request and the OSCORE object /21/0 written in clear, then an
OSCORE registration whose reads answer in LwM2M CBOR (11544).

The expected values are what the peers encoded with cbor2 (pcaps/peers/aiocoap-lwm2m12/
provisioning.py); tshark's OSCORE dissector, given the same context, decrypts the OSCORE part and
its plaintext, decoded by aiocoap and cbor2, must hold exactly those payloads.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import cbor2
import pytest
from aiocoap import Message

from monitor import keys as keysfile
from monitor.analyze import collect
from monitor.pipeline import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]
PCAP = ROOT / "pcaps" / "aiocoap-lwm2m12.pcap"
KEYS = ROOT / "pcaps" / "aiocoap-lwm2m12.keys.yaml"
CLIENT_PORT, SERVER_PORT = 56950, 5696

_spec = importlib.util.spec_from_file_location(
    "lwm2m12_provisioning", ROOT / "pcaps" / "peers" / "aiocoap-lwm2m12" / "provisioning.py")
P = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(P)

ACTIONS = ["bootstrap-request", "bootstrap-pack-request", "bootstrap-discover", "bootstrap-write",
           "bootstrap-finish", "register", "read", "read-composite", "deregister"]
SECRETS = {"/0/2/3": P.PSK_IDENTITY, "/0/2/5": P.PSK_KEY,
           "/21/0/0": P.OSCORE["master_secret"], "/21/0/5": P.OSCORE["master_salt"]}


def _operations(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]


def _op(docs: list[dict], action: str) -> dict:
    (doc,) = [d for d in _operations(docs) if d["event"]["action"] == action]
    return doc


def _values(doc: dict) -> dict[str, tuple[str, object]]:
    return {v["path"]: (v["type"], v["value"]) for v in doc["lwm2m"]["values"]}


def _sha256_8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def _senml_leaves(records: list[dict]) -> dict[str, object]:
    """SenML CBOR records (RFC 8428) -> {path: value}, resolving base names by hand."""
    out, base = {}, ""
    for rec in records:
        base = rec.get(P.BN, base)
        value = next(rec[k] for k in (P.V, P.VS, P.VB, P.VD, P.VLO) if k in rec)
        out[base + rec[P.N]] = value
    return out


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    out, res = collect([str(PCAP)], PipelineConfig())     # no keys at all
    assert not res.errors
    return out


def test_operations_in_order_without_keys(docs):
    ops = _operations(docs)
    assert [d["event"]["action"] for d in ops] == ACTIONS
    assert all(d["event"]["outcome"] == "success" for d in ops)
    assert {d["lwm2m"]["endpoint"] for d in ops} == {P.ENDPOINT}
    assert [d["lwm2m"]["interface"] for d in ops] == ["bootstrap"] * 5 + ["registration"] + \
        ["device-management"] * 2 + ["registration"]
    codes = [(d["coap"]["request"]["code"], d["coap"]["response"]["code"]) for d in ops]
    assert codes == [("0.02", "2.04"), ("0.01", "2.05"), ("0.01", "2.05"), ("0.03", "2.04"),
                     ("0.02", "2.04"), ("0.02", "2.01"), ("0.01", "2.05"), ("0.05", "2.05"),
                     ("0.04", "2.02")]
    # bootstrap on the client's standard-port flow in clear, the rest through OSCORE
    assert [d["lwm2m"]["security"] for d in ops] == ["nosec"] * 5 + ["oscore"] * 4
    for d in ops:
        assert d["client"]["port"] == CLIENT_PORT
    assert {d["server"]["port"] for d in ops[5:]} == {SERVER_PORT}


def test_bootstrap_paths_and_formats(docs):
    pack = _op(docs, "bootstrap-pack-request")
    assert pack["coap"]["content_format"] == P.SENML_CBOR
    write = _op(docs, "bootstrap-write")
    assert write["lwm2m"]["path"] == "/21/0" and write["coap"]["content_format"] == P.SENML_CBOR
    assert _op(docs, "bootstrap-discover")["coap"]["content_format"] == P.LINK_FORMAT


def test_pack_and_write_values_match_the_encoded_records_secrets_redacted(docs):
    pack = _values(_op(docs, "bootstrap-pack-request"))
    encoded = _senml_leaves(cbor2.loads(P.bootstrap_pack()))
    assert set(pack) == set(encoded)
    for path, raw in encoded.items():
        kind, value = pack[path]
        if path in SECRETS:
            assert value == {"redacted": True, "sha256_8": _sha256_8(SECRETS[path])}, path
        elif isinstance(raw, bytes):
            assert (kind, value) == ("opaque", raw.hex()), path
        else:
            assert value == raw, path
    assert pack["/0/1/17"] == ("objlnk", "21:0")
    write = _values(_op(docs, "bootstrap-write"))
    assert write == {k: v for k, v in pack.items() if k.startswith("/21/0/")}
    assert write["/21/0/0"][1]["redacted"] is True


def test_no_secret_in_any_document(docs):
    for cfg in (PipelineConfig(), PipelineConfig(keys=keysfile.load(str(KEYS)))):
        text = json.dumps(collect([str(PCAP)], cfg)[0]).lower()
        for secret in (P.OSCORE["master_secret"], P.OSCORE["master_salt"], P.PSK_KEY):
            assert secret.hex() not in text
        assert P.PSK_IDENTITY.decode() not in text


def test_register_over_harvested_oscore_context(docs):
    reg = _op(docs, "register")
    assert reg["lwm2m"]["registration"] == {"location": "/" + "/".join(P.LOCATION), "lifetime": 300,
                                            "binding": "U", "version": "1.2",
                                            "objects": ["/1/0", "/3/0", "/21/0", "/3303/0"]}
    assert reg["lwm2m"]["identity"] == {"value": P.OSCORE["sender_id"].hex(), "type": "oscore",
                                        "matches_endpoint": False}
    contexts = [d for d in docs if d["event"]["dataset"] == "oscore.context"]
    assert contexts and all(d["oscore"]["context"]["source"] == "harvested" for d in contexts)
    assert all(d["event"]["outcome"] == "success" for d in contexts)
    for action in ("read", "read-composite"):
        assert _op(docs, action)["oscore"]["decrypted"] is True


def test_without_harvest_the_oscore_part_is_not_decrypted():
    out, _ = collect([str(PCAP)], PipelineConfig(harvest=False))
    assert [d["event"]["action"] for d in _operations(out)] == ACTIONS[:5]
    failed = [d for d in out if d["event"]["action"] == "decryption-failed"]
    assert {d["oscore"]["kid"] for d in failed} == {"4331", "5331"}
    assert all(d["oscore"]["error"] == "no context" for d in failed)


def test_keys_file_context_decrypts_the_same():
    out, _ = collect([str(PCAP)], PipelineConfig(keys=keysfile.load(str(KEYS)), harvest=False))
    assert [d["event"]["action"] for d in _operations(out)] == ACTIONS


def test_wrong_master_secret_is_could_not_decrypt(tmp_path):
    wrong = KEYS.read_text().replace(P.OSCORE["master_secret"].hex(), "5f3a9c71e2b84d06a1c3e5f7092b4d6e")
    (tmp_path / "wrong.keys.yaml").write_text(wrong)
    out, _ = collect([str(PCAP)], PipelineConfig(keys=keysfile.load(str(tmp_path / "wrong.keys.yaml")),
                                                   harvest=False))
    assert [d["event"]["action"] for d in _operations(out)] == ACTIONS[:5]
    failed = [d for d in out if d["event"]["action"] == "decryption-failed"]
    assert failed and all(d["event"]["outcome"] == "failure" for d in failed)
    assert {d["oscore"]["kid"] for d in failed} == {"4331", "5331"}
    assert all(d["oscore"]["error"] == "tag check failed" for d in failed)
    assert "values" not in json.dumps(out[5:])           # nothing decoded from a failed decryption


def test_read_device_in_lwm2m_cbor(docs):
    read = _op(docs, "read")
    assert read["lwm2m"]["path"] == "/3/0"
    assert read["coap"]["content_format"] == P.LWM2M_CBOR
    got = _values(read)
    for path, kind, value in P.DEVICE_LEAVES:
        if path != "/3/0/13":
            assert got[path] == (kind, value), path


def test_read_device_time_tag1(docs):
    read = _op(docs, "read")
    assert "decode_error" not in read["lwm2m"]
    assert _values(read)["/3/0/13"] == ("time", 1700000000)


def test_read_composite_in_lwm2m_cbor(docs):
    rc = _op(docs, "read-composite")
    assert rc["lwm2m"]["paths"] == P.COMPOSITE_PATHS
    assert rc["coap"]["content_format"] == P.LWM2M_CBOR
    assert [(v["path"], v["type"], v["value"]) for v in rc["lwm2m"]["values"]] == P.COMPOSITE_LEAVES


# --- Wireshark cross-check -------------------------------------------------------------------

def _tshark_plaintexts(tmp_path: Path) -> dict[int, bytes]:
    """OSCORE plaintexts (code, options, payload) per frame, decrypted by tshark from the keys file."""
    o = keysfile.load(str(KEYS)).oscore[0]
    line = '"{}","{}","%s","%s","%s","AES-CCM-16-64-128 (CCM*)"\n' % (
        o.master_secret.hex(), o.master_salt.hex(), o.id_context.hex())
    (tmp_path / "oscore_contexts").write_text(
        line.format(o.client_id.hex(), o.server_id.hex()) + line.format(o.server_id.hex(), o.client_id.hex()))
    out = subprocess.run(["tshark", "-r", str(PCAP), "-d", f"udp.port=={SERVER_PORT},coap",
                          "-d", f"udp.port=={CLIENT_PORT},coap", "-P", "-x",
                          "-o", 'gui.column.format:"No.","%m"'],     # summary line: the frame number
                         capture_output=True, text=True, check=True,
                         env={"WIRESHARK_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    plain = {}
    parts = re.split(r"^ +(\d+)\n", out, flags=re.M)
    for frame, block in zip(map(int, parts[1::2]), parts[2::2]):
        if "Decrypted OSCORE" in block:
            dump = block.split("Decrypted OSCORE", 1)[1].split(":\n", 1)[1]
            plain[frame] = bytes.fromhex("".join(re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} )+)", dump, re.M)).replace(" ", ""))
    return plain


def _inner(plaintext: bytes) -> Message:
    # an OSCORE plaintext is a CoAP message without its 4-byte header and token
    return Message.decode(bytes([0x40, plaintext[0], 0, 0]) + plaintext[1:])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decrypts_the_oscore_part_to_the_encoded_payloads(tmp_path, docs):
    plain = _tshark_plaintexts(tmp_path)
    assert sorted(plain) == list(range(11, 19))
    inner = {f: _inner(pt) for f, pt in plain.items()}
    assert [str(inner[f].code) for f in sorted(inner)] == [
        "POST", "2.01 Created", "GET", "2.05 Content", "FETCH", "2.05 Content", "DELETE", "2.02 Deleted"]
    assert inner[13].opt.uri_path == ("3", "0") and int(inner[13].opt.accept) == P.LWM2M_CBOR
    assert int(inner[14].opt.content_format) == P.LWM2M_CBOR
    assert inner[14].payload == P.encode(P.DEVICE)
    assert cbor2.loads(inner[15].payload) == P.COMPOSITE_REQUEST
    assert inner[16].payload == P.encode(P.COMPOSITE)
    # the monitor's values are the leaves of the plaintext tshark decrypted
    device = cbor2.loads(inner[14].payload)[3][0]
    assert device[13].timestamp() == 1700000000       # cbor2 reads tag 1 as a datetime
    got = _values(_op(docs, "read"))
    for rid, value in device.items():
        if isinstance(value, dict):
            for riid, v in value.items():
                assert got[f"/3/0/{rid}/{riid}"][1] == v
        elif rid != 13:                                 # see test_read_device_time_tag1
            assert got[f"/3/0/{rid}"][1] == value
    assert "/".join(inner[11].opt.uri_path) == "rd"
    assert sorted(inner[11].opt.uri_query) == sorted(["ep=" + P.ENDPOINT, "lwm2m=1.2", "lt=300", "b=U"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_sees_the_clear_bootstrap_payloads():
    out = subprocess.run(["tshark", "-r", str(PCAP), "-T", "fields", "-e", "frame.number",
                          "-e", "coap.code", "-e", "coap.opt.uri_path_recon", "-e", "coap.opt.ctype",
                          "-e", "udp.payload"], capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()][:10]
    assert [(r[1], r[2]) for r in rows] == [("2", "/bs"), ("68", "/bs"), ("1", "/bspack"), ("69", "/bspack"),
                                             ("1", ""), ("69", ""), ("3", "/21/0"), ("68", "/21/0"),
                                             ("2", "/bs"), ("68", "/bs")]
    assert rows[3][3] == rows[6][3] == "application/senml+cbor" and rows[5][3] == "application/link-format"
    payload = {int(r[0]): Message.decode(bytes.fromhex(r[4])).payload for r in rows}   # aiocoap's reader
    assert payload[4] == P.bootstrap_pack()
    assert payload[7] == P.oscore_write()
    assert payload[6] == P.DISCOVER_LINKS


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_pack_alone_provisions_the_oscore_context(tmp_path):
    # the same capture without the bootstrap-write (frames 7-8): the pack is the only provisioning
    pack_only = tmp_path / "pack-only.pcap"
    subprocess.run(["editcap", str(PCAP), str(pack_only), "7", "8"], check=True, capture_output=True)
    out, _ = collect([str(pack_only)], PipelineConfig())
    assert [d["event"]["action"] for d in _operations(out)] == [a for a in ACTIONS if a != "bootstrap-write"]
