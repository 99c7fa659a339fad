"""The shipped object model against Wireshark's built-in LwM2M object table, and the loader.

Wireshark's lwm2mtlv dissector carries its own table of the OMA core objects (names and value
types). We write one TLV per resource of every shipped core object into a capture, let tshark
name and type each one, and compare with our XMLs.
"""
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from monitor.objects import ObjectModel, ObjectModelError

MODEL = ObjectModel.builtin()
CORPUS = Path(__file__).resolve().parents[1] / "../shared/corpus"

# tshark field types → our value types; Wireshark has no object-link type and shows bytes.
FT = {"FT_STRING": "string", "FT_INT64": "integer", "FT_UINT64": "unsigned", "FT_FLOAT": "float",
      "FT_DOUBLE": "float", "FT_BOOLEAN": "boolean", "FT_BYTES": "opaque",
      "FT_ABSOLUTE_TIME": "time"}
# Known differences, each checked against the OMA registry text:
# - Wireshark 4.0 lists object 5 resource 12 as "LAC" (integer); OMA: Last State Change Time, Time.
# - Wireshark's object 21 is OSCORE 1.0 (String keys, no ID Context); we ship 2.0 (Opaque).
# - OMA spells 0/16 "DTLS/TLS Ciphersuite"; Wireshark "TLS DTLS Ciphersuite".
WIRESHARK_DIFFERS = {(5, 12)} | {(21, r) for r in range(7)}
NAME_ALIASES = {(0, 16): "tlsdtlsciphersuite"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _tlv(kind: int, ident: int, value: bytes) -> bytes:
    wide = ident > 255
    t = (kind << 6) | (0x20 if wide else 0)
    ident_bytes = ident.to_bytes(2 if wide else 1, "big")
    if len(value) < 8:
        return bytes([t | len(value)]) + ident_bytes + value
    return bytes([t | 0x08]) + ident_bytes + bytes([len(value)]) + value


def _coap_put(mid: int, oid: int, payload: bytes) -> bytes:
    # CON PUT /<oid>/0 with Content-Format 11542
    seg1, seg2 = str(oid).encode(), b"0"
    opts = bytes([(11 << 4) | len(seg1)]) + seg1 + bytes([len(seg2)]) + seg2
    opts += bytes([(1 << 4) | 2]) + (11542).to_bytes(2, "big")
    return bytes([0x40, 0x03]) + mid.to_bytes(2, "big") + opts + b"\xff" + payload


@pytest.fixture(scope="module")
def wireshark_view(tmp_path_factory):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    from scapy.all import IP, UDP, Ether, Raw, wrpcap
    sample = {"float": bytes.fromhex("3ff0000000000000"), "objlnk": bytes.fromhex("00010002")}
    packets = []
    core = [oid for oid in MODEL.object_ids() if oid < 1000]
    for n, oid in enumerate(core):
        body = b""
        for rid, res in sorted(MODEL.object(oid).resources.items()):
            value = sample.get(res.type, b"\x01")
            body += _tlv(2, rid, _tlv(1, 0, value)) if res.multiple else _tlv(3, rid, value)
        packets.append(Ether() / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=5683)
                       / Raw(_coap_put(n + 1, oid, body)))
    pcap = tmp_path_factory.mktemp("objects") / "objects.pcap"
    wrpcap(str(pcap), packets)
    field_types = {}
    for line in subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        f = line.split("\t")
        if f[0] == "F" and f[2].startswith("lwm2mtlv.resource."):
            field_types[f[2]] = f[3]
    pdml = subprocess.run(["tshark", "-r", str(pcap), "-T", "pdml"], capture_output=True,
                          text=True, check=True).stdout
    seen = {}   # (oid, rid) -> (name or None, our-style type or None)
    for pkt in ET.fromstring(pdml).iter("packet"):
        uri = next(f.get("show") for f in pkt.iter("field") if f.get("name") == "coap.opt.uri_path_recon")
        oid = int(uri.split("/")[1])
        for res in pkt.iter("field"):
            if res.get("name") not in ("lwm2mtlv.resource", "lwm2mtlv.resource_array"):
                continue
            header = next(c for c in res.findall("field") if c.get("name") == "lwm2mtlv.header")
            rid = int(next(c.get("show") for c in header.findall("field") if c.get("name") == "lwm2mtlv.identifier"))
            names = [c.get("show") for c in res.iter("field") if c.get("name") == "lwm2mtlv.resource_name"]
            typed = [field_types[c.get("name")] for c in res.iter("field")
                     if c.get("name", "").startswith("lwm2mtlv.resource.")]
            seen[(oid, rid)] = (names[0] if names else None, FT.get(typed[0]) if typed else None)
    assert {oid for oid, _ in seen} == set(core)
    return seen


def test_required_objects_are_shipped():
    required = {0, 1, 2, 3, 4, 5, 6, 7, 21, 3303, 3304, 3308, 3311, 3323, 3336}
    assert required <= set(MODEL.object_ids())


def test_core_objects_match_wireshark(wireshark_view):
    compared = 0
    for (oid, rid), (ws_name, ws_type) in wireshark_view.items():
        ours = MODEL.resource(oid, rid)
        if ws_name is None or (oid, rid) in WIRESHARK_DIFFERS:
            continue    # a resource newer than Wireshark 4.0's table
        compared += 1
        assert NAME_ALIASES.get((oid, rid), _norm(ours.name)) == _norm(ws_name), (oid, rid, ours.name, ws_name)
        expected = {"objlnk": "opaque", "none": None}.get(ours.type, ours.type)
        assert ws_type == expected, (oid, rid, ours.type, ws_type)
    assert compared >= 100   # Wireshark 4.0 knows ~110 resources of objects 0-7


def test_thermostat_dataset_resources_exist():
    # dataset-description.md of the microschc capture lists the resources of 3303/3304 and 3308
    text = (CORPUS / "microschc-leshan-thermostat/dataset-description.md").read_text()
    sensor_part, setpoint_part = text.split("used in the dataset")[1:3]
    listed = re.compile(r"- ([a-z ]+?) \(resource ID `(\d+)`\)")
    spelling = {"setpoint": "set point", "color": "colour"}
    checked = 0
    for objects, part in (((3303, 3304), sensor_part), ((3308,), setpoint_part)):
        for phrase, rid in listed.findall(part):
            for oid in objects:
                res = MODEL.resource(oid, int(rid))
                assert res is not None, (oid, rid)
                words = [spelling.get(w, w) for w in phrase.split() if w not in ("value", "values")]
                assert all(w in res.name.lower() for w in words), (oid, rid, phrase, res.name)
                checked += 1
    assert checked == 2 * 6 + 6


def test_secret_resources():
    secret = {(oid, rid) for oid in MODEL.object_ids()
              for rid, r in MODEL.object(oid).resources.items() if r.secret}
    assert {(0, 3), (0, 4), (0, 5), (21, 0), (21, 5)} <= secret
    assert (0, 0) not in secret and (21, 1) not in secret and (21, 6) not in secret


OBJECT_XML = """<?xml version="1.0"?>
<LWM2M><Object ObjectType="MODefinition"><Name>{name}</Name><ObjectID>{oid}</ObjectID>
<MultipleInstances>Multiple</MultipleInstances><Resources>
<Item ID="0"><Name>{res}</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances>
<Mandatory>Mandatory</Mandatory><Type>{type}</Type></Item></Resources></Object></LWM2M>"""


def test_user_directory_adds_and_overrides(tmp_path):
    (tmp_path / "a.xml").write_text(OBJECT_XML.format(name="Vendor", oid=33001, res="Knob", type="Unsigned Integer"))
    (tmp_path / "b.xml").write_text(OBJECT_XML.format(name="My Device", oid=3, res="Maker", type="Opaque"))
    model = ObjectModel.builtin().with_directory(tmp_path)
    assert model.resource(33001, 0).type == "unsigned" and model.resource(33001, 0).name == "Knob"
    assert model.object(3).name == "My Device" and model.resource(3, 0).type == "opaque"
    assert model.resource(3, 13) is None          # the override replaces the whole object
    assert MODEL.resource(3, 0).type == "string"  # the built-in model is untouched
    assert ObjectModel.load(tmp_path).resource(33001, 0) is not None


@pytest.mark.parametrize("content, needle", [
    ("<LWM2M><Object><ObjectID>9", "bad.xml"),                          # not well-formed
    ("<Objects/>", "not <LWM2M>"),
    (OBJECT_XML.format(name="x", oid="abc", res="r", type="String"), "ObjectID"),
    (OBJECT_XML.format(name="x", oid=70000, res="r", type="String"), "out of range"),
    (OBJECT_XML.format(name="x", oid=9, res="r", type="Quaternion"), "Quaternion"),
])
def test_broken_xml_names_the_file(tmp_path, content, needle):
    (tmp_path / "bad.xml").write_text(content)
    with pytest.raises(ObjectModelError) as err:
        ObjectModel.builtin().with_directory(tmp_path)
    assert "bad.xml" in str(err.value) and needle.lower() in str(err.value).lower()


def test_missing_directory(tmp_path):
    with pytest.raises(ObjectModelError, match="not a directory"):
        ObjectModel.builtin().with_directory(tmp_path / "nope")


# IPSO definitions as eclipse-leshan/leshan ships them (leshan-client-demo/src/main/resources/models,
# commits 8fbb0bd9/bbeeed2a), transcribed: (object, resource, name, type, operations).
LESHAN_IPSO = [
    (3311, 5850, "On/Off", "boolean", "RW"), (3311, 5851, "Dimmer", "integer", "RW"),
    (3311, 5852, "On Time", "integer", "RW"), (3311, 5805, "Cumulative active power", "float", "R"),
    (3311, 5820, "Power Factor", "float", "R"), (3311, 5706, "Colour", "string", "RW"),
    (3311, 5701, "Sensor Units", "string", "R"), (3311, 5750, "Application Type", "string", "RW"),
    (3336, 5513, "Latitude", "string", "R"), (3336, 5514, "Longitude", "string", "R"),
    (3336, 5515, "Altitude", "string", "R"), (3336, 5516, "Uncertainty", "string", "R"),
    (3336, 5705, "Compass Direction", "float", "R"), (3336, 5517, "Velocity", "opaque", "R"),
    (3336, 5518, "Timestamp", "time", "R"),
    (3337, 5536, "Current Position", "float", "RW"), (3337, 5537, "Transition Time", "float", "RW"),
    (3337, 5538, "Remaining Time", "float", "R"), (3337, 5519, "Min Limit", "float", "R"),
    (3337, 5520, "Max Limit", "float", "R"), (3337, 5605, "Reset Min and Max Measured Values", "none", "E"),
    (3341, 5527, "Text", "string", "RW"), (3341, 5528, "X Coordinate", "integer", "RW"),
    (3341, 5545, "Max X Coordinate", "integer", "R"), (3341, 5530, "Clear Display", "none", "E"),
    (3341, 5548, "Level", "float", "RW"), (3341, 5531, "Contrast", "float", "RW"),
]


@pytest.mark.parametrize("oid, rid, name, type_, ops", LESHAN_IPSO)
def test_ipso_resources_match_leshan_models(oid, rid, name, type_, ops):
    res = MODEL.resource(oid, rid)
    assert (_norm(res.name), res.type, res.operations) == (_norm(name), type_, ops)
    assert set(MODEL.object(oid).resources) >= {r for o, r, *_ in LESHAN_IPSO if o == oid}


# The OMA LwM2M registry (github OpenMobileAlliance/lwm2m-registry) as Nordic Semiconductor's npm
# package turns it into JSON schema; install with `cd tests/registry && npm ci`. Objects 0 and 21
# are not in it. JSON schema keeps only coarse types (Boolean and Unsigned appear as integer; Opaque,
# Objlnk and Corelnk as string). Resources only we have are older-version ones we keep on purpose.
REGISTRY = Path(__file__).with_name("registry") / "node_modules/@nordicsemiconductor/lwm2m-types/LwM2MDocument.schema.json"
OLDER_VERSION_RESOURCES = {(3331, 5805), (3336, 5513), (3336, 5514), (3336, 5515), (3336, 5516)}
COARSE = {"string": "string", "opaque": "string", "objlnk": "string", "corelnk": "string",
          "integer": "integer", "boolean": "integer", "unsigned": "integer", "time": "time", "float": "number"}


def _coarse(prop):
    if prop.get("type") == "array":
        return "M:" + _coarse(prop["items"])
    return "time" if prop.get("type") == "integer" and prop.get("unixTimestamp") else prop["type"]


def test_objects_match_the_oma_registry():
    if not REGISTRY.is_file():
        pytest.skip("registry package not installed (cd tests/registry && npm ci)")
    import json
    schema = json.loads(REGISTRY.read_text())["properties"]
    compared = 0
    for oid in MODEL.object_ids():
        keys = [k for k in schema if k == str(oid) or k.startswith(f"{oid}:")]
        if not keys:
            assert oid in (0, 21), oid
            continue
        entry = schema[keys[0]]
        props = (entry["items"] if entry.get("type") == "array" else entry)["properties"]
        ours = MODEL.object(oid).resources
        assert {int(r) for r in props} <= set(ours), (oid, sorted({int(r) for r in props} - set(ours)))
        for rid, res in ours.items():
            if (oid, rid) in OLDER_VERSION_RESOURCES or res.type == "none":
                continue
            prop = props[str(rid)]
            expected = ("M:" if res.multiple else "") + COARSE[res.type]
            assert (_norm(res.name), expected) == (_norm(prop["title"]), _coarse(prop)), (oid, rid)
            compared += 1
    assert compared > 500


def test_cli_objects_option(tmp_path):
    import sys
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "broken.xml").write_text("<LWM2M><Object>")
    run = lambda objects: subprocess.run(
        [sys.executable, "-m", "monitor.cli", "analyze", str(root / "pcaps/leshan-nosec-operations.pcap"),
         "--objects", str(objects), "--out", str(tmp_path / "out.ndjson")], capture_output=True, text=True, cwd=root)
    bad = run(tmp_path)
    assert bad.returncode == 4 and "broken.xml" in bad.stderr
    good = run(Path(__file__).with_name("payloads_objects"))
    assert good.returncode == 0, good.stderr
    assert '"Blob"' in (tmp_path / "out.ndjson").read_text()    # a name only the user XML defines


def test_the_lazy_shipped_model_equals_parsing_every_file():
    """Shipped objects are parsed on first use, one `<id>.xml` each: the model must still be
    the same as parsing the whole directory, and a file defining another object is refused."""
    from monitor import objects
    eager = {}
    for path in sorted(objects.SHIPPED_DIR.glob("*.xml")):
        for obj in objects.parse_file(path):
            assert path.stem == str(obj.id), f"{path.name} defines object {obj.id}"
            eager[obj.id] = obj
    model = ObjectModel.builtin()
    assert len(model) == len(eager) and model.object_ids() == sorted(eager)
    assert {oid: model.object(oid) for oid in eager} == eager
    assert model.object(9999) is None and model.resource(9999, 0) is None


def test_a_shipped_file_must_define_its_own_object(tmp_path, monkeypatch):
    from monitor import objects
    (tmp_path / "5.xml").write_text(OBJECT_XML.format(name="Not five", oid=6, res="r", type="String"))
    monkeypatch.setattr(objects, "SHIPPED_DIR", tmp_path)
    objects.shipped_object.cache_clear()
    try:
        with pytest.raises(ObjectModelError, match="must define object 5"):
            objects.shipped_object(5)
    finally:
        objects.shipped_object.cache_clear()
