"""Payloads from real captures: the microschc/Leshan thermostat (checked frame by frame against
tshark's lwm2mtlv and cbor dissectors) and our Leshan 2.0.0-M15 captures (pcaps/README.md),
where the same Device object is read in five encodings and must decode to the same values."""
import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from scapy.all import UDP, PcapNgReader, rdpcap

from monitor.objects import ObjectModel
from monitor.payload_decoder import decode_payload
from parsers import coap

ROOT = Path(__file__).resolve().parents[1]
THERMOSTAT = ROOT / "../shared/corpus/microschc-leshan-thermostat"
MODEL = ObjectModel.builtin().with_directory(Path(__file__).with_name("payloads_objects"))


def _coap_frames(path):
    reader = PcapNgReader(str(path)) if str(path).endswith("pcapng") else None
    packets = reader if reader is not None else rdpcap(str(path))
    out = {}
    for n, pkt in enumerate(packets, 1):
        if UDP in pkt and coap.looks_like_coap(bytes(pkt[UDP].payload)):   # skips DTLS records
            out[n] = coap.parse(bytes(pkt[UDP].payload))
    return out


@pytest.fixture(scope="module")
def thermostat():
    rows = {}
    for line in (THERMOSTAT / "leshan-thermostat-readings.tshark-fields.psv").read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("|")
        rows[int(f[0])] = f
    return _coap_frames(THERMOSTAT / "leshan-thermostat-readings.pcapng"), rows


def test_thermostat_tlv_and_cbor_values_match_tshark(thermostat):
    frames, rows = thermostat
    assert set(frames) == set(rows)
    tlv_count = cbor_count = 0
    for n, msg in frames.items():
        row = rows[n]
        if not msg.payload:
            continue
        if row[7] == "application/vnd.oma.lwm2m+tlv":
            # Observe notifications carry no Uri-Path; 5700 is Sensor Value (Float) in both
            # 3303 and 3304, the objects the dataset observes.
            got = decode_payload(msg.payload, msg.content_format, "/3303/0", MODEL)
            assert got.error is None, (n, got.error)
            assert [v.path.rsplit("/", 1)[1] for v in got.values] == row[8].split(","), n
            assert [v.raw.hex() for v in got.values] == row[9].split(","), n
            for v, expected in zip(got.values, row[10].split(",")):
                assert v.type == "float" and math.isclose(v.value, float(expected), rel_tol=1e-12), (n, v)
            tlv_count += 1
        elif row[7] == "application/cbor":
            path = "/" + "/".join(msg.uri_path) if msg.uri_path else "/3303/0/5700"
            got = decode_payload(msg.payload, msg.content_format, path, MODEL)
            assert got.error is None, (n, got.error)
            tshark_float = next(x for x in row[11:14] if x)
            [value] = got.values
            assert value.type == "float", n
            assert math.isclose(value.value, float(tshark_float), rel_tol=1e-6), (n, value, tshark_float)
            assert got.cbor == value.value     # the generic CBOR decode agrees with the single-value one
            cbor_count += 1
    assert tlv_count == 5900
    assert cbor_count == 2744


# ---------------------------------------------------------------- Leshan 2.0.0-M15 captures
# The Device object as pcaps/README.md states the scenario program configures it.
DEVICE = {
    "/3/0/0": ("string", "Eclipse Leshan"), "/3/0/1": ("string", "lwm2m-monitor-scenario"),
    "/3/0/2": ("string", "LM-0001"), "/3/0/3": ("string", "1.0.0"), "/3/0/9": ("integer", 87),
    "/3/0/11/0": ("integer", 0), "/3/0/13": ("time", 1700000000), "/3/0/14": ("string", "+00:00"),
    "/3/0/15": ("string", "Europe/Paris"), "/3/0/16": ("string", "U"),
    "/3/0/17": ("string", "capture-device"), "/3/0/18": ("string", "HW-1"), "/3/0/19": ("string", "SW-1"),
}


@pytest.fixture(scope="module")
def operations():
    return _coap_frames(ROOT / "pcaps/leshan-nosec-operations.pcap")


def _decode(msg, path):
    got = decode_payload(msg.payload, msg.content_format, path, MODEL)
    assert got.error is None, got.error
    return got


def _as_dict(values):
    return {v.path: (v.type, v.value) for v in values}


@pytest.mark.parametrize("frame, content_format", [(4, 11542), (6, 110), (8, 112), (10, 11543), (12, 11542)])
def test_device_read_in_every_format(operations, frame, content_format):
    msg = operations[frame]
    assert msg.content_format == content_format
    got = _decode(msg, "/3/0")
    assert _as_dict(got.values) == DEVICE
    assert all(v.name == MODEL.resource(3, int(v.path.split("/")[3])).name for v in got.values)


def test_device_tlv_bytes_match_tshark(operations):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(ROOT / "pcaps/leshan-nosec-operations.pcap"), "-Y", "frame.number==4",
                          "-T", "fields", "-E", "aggregator=|", "-e", "lwm2mtlv.identifier", "-e", "lwm2mtlv.value"],
                         capture_output=True, text=True, check=True).stdout.strip().split("\t")
    ids, hexes = out[0].split("|"), out[1].split("|")
    got = _decode(operations[4], "/3/0").values
    assert hexes == [v.raw.hex() for v in got]      # tshark lists leaf values only
    our_ids, open_multiple = [], None
    for v in got:                                    # ...but identifiers of containers too
        parts = v.path.split("/")[3:]
        if len(parts) == 2 and parts[0] != open_multiple:
            our_ids.append(parts[0])
        open_multiple = parts[0] if len(parts) == 2 else None
        our_ids.append(parts[-1])
    assert ids == our_ids


def test_single_resource_formats(operations):
    assert _as_dict(_decode(operations[14], "/3/0/0").values) == {"/3/0/0": DEVICE["/3/0/0"]}    # text/plain
    assert _as_dict(_decode(operations[16], "/3/0/9").values) == {"/3/0/9": DEVICE["/3/0/9"]}    # CBOR 60
    assert _as_dict(_decode(operations[18], "/3/0/11").values) == {"/3/0/11/0": ("integer", 0)}  # TLV instances
    assert _as_dict(_decode(operations[20], "/33000/0/2").values) == {
        "/33000/0/2": ("opaque", "deadbeef00010203")}                                             # opaque 42
    assert _as_dict(_decode(operations[92], "/5/0/3").values) == {"/5/0/3": ("integer", 2)}


@pytest.mark.parametrize("request_frame, response_frame", [(21, 22), (23, 24)])
def test_read_composite(operations, request_frame, response_frame):
    request = _decode(operations[request_frame], "/")
    assert request.paths == ["/3/0/0", "/3/0/9", "/1/0/1"] and request.values == []
    response = _decode(operations[response_frame], "/")
    assert _as_dict(response.values) == {"/3/0/0": DEVICE["/3/0/0"], "/3/0/9": DEVICE["/3/0/9"],
                                         "/1/0/1": ("integer", 300)}   # server lifetime 300


def test_writes_create_and_send(operations):
    assert _as_dict(_decode(operations[27], "/33000/0").values) == {
        "/33000/0/0": ("string", "replaced"), "/33000/0/1": ("integer", 7),
        "/33000/0/2": ("opaque", "01020304"), "/33000/0/3": ("float", 1.25), "/33000/0/4": ("boolean", False)}
    assert _as_dict(_decode(operations[29], "/33000/0").values) == {
        "/33000/0/0": ("string", "partial"), "/33000/0/1": ("integer", 8)}
    assert _as_dict(_decode(operations[31], "/").values) == {
        "/3/0/14": ("string", "+02:00"), "/33000/0/0": ("string", "composite")}
    assert _as_dict(_decode(operations[43], "/33000").values) == {
        "/33000/1/0": ("string", "created"), "/33000/1/1": ("integer", 1)}
    sent = _as_dict(_decode(operations[71], "/dp").values)
    assert sent["/3/0/9"] == ("integer", 82) and sent["/3/0/13"][0] == "time"


def test_register_and_discover_links(operations):
    register = _decode(operations[1], "/rd")
    assert register.links[0].target == "/" and register.links[0].attr("rt") == "oma.lwm2m"
    assert register.links[0].attr("ct") == "60 110 112 11542 11543"
    assert register.paths == ["/1/0", "/3", "/3/0", "/5", "/5/0", "/33000/0"]
    discover = _decode(operations[38], "/33000/0")
    counter = next(link for link in discover.links if link.target == "/33000/0/1")
    assert (counter.attr("pmin"), counter.attr("pmax")) == ("10", "60")


def test_bootstrap_write_redacts_keys_and_keeps_raw_bytes():
    frames = _coap_frames(ROOT / "pcaps/leshan-nosec-bootstrap.pcap")
    keys = yaml.safe_load((ROOT / "pcaps/leshan-nosec-bootstrap.keys.yaml").read_text())["psk"][0]
    secret, identity = bytes.fromhex(keys["key"]), keys["identity"].encode()
    msg = frames[7]
    assert msg.uri_path == ("0", "1")
    got = _decode(msg, "/0/1")
    by_path = {v.path: v for v in got.values}
    assert by_path["/0/1/0"].value == "coaps://127.0.0.1:5684"
    assert by_path["/0/1/2"].value == 0 and by_path["/0/1/10"].value == 123
    key, ident, server_key = by_path["/0/1/5"], by_path["/0/1/3"], by_path["/0/1/4"]
    assert key.secret and ident.secret and server_key.secret
    assert key.raw == secret and ident.raw == identity and server_key.raw == b""
    assert key.value == {"redacted": True, "sha256_8": hashlib.sha256(secret).hexdigest()[:8]}
    printed = json.dumps([{"path": v.path, "value": v.value} for v in got.values]) + repr(got)
    assert keys["key"] not in printed and "leshan-psk-01" not in printed
    assert identity.hex() not in printed
