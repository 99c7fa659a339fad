"""Device inventory from real captures, checked against Wireshark (tshark) and first principles.

Expected values come from the capture itself as tshark decodes it (register query and link
payload, frame times), from the scenario the Leshan capture was made with (the firmware body
`bytes(i & 0xff for i in range(4096))`), and from ../shared/corpus/MANIFEST.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from functools import lru_cache

import pandas as pd
import pytest

from monitor import inventory
from monitor.analyze import collect
from monitor.cli import build_config, main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
OPERATIONS = os.path.join(PCAPS, "leshan-nosec-operations.pcap")
PSK = os.path.join(PCAPS, "leshan-psk-ccm8.pcap")
PSK_KEYS = os.path.join(PCAPS, "leshan-psk-ccm8.keys.yaml")
THERMOSTAT = os.path.join(ROOT, "..", "shared", "corpus", "microschc-leshan-thermostat",
                          "leshan-thermostat-readings.pcapng")
CONTRACT = os.path.join(ROOT, "..", "shared", "tools", "check_contract.py")


@lru_cache(maxsize=None)
def _docs(path: str, keys: str | None = None) -> tuple[dict, ...]:
    # the configuration `analyze --keys` builds (keys, objects, built-in rules)
    args = argparse.Namespace(keys=keys, objects=None, rules=[], config=None, no_rules=False, psk_wordlist=None)
    docs, _ = collect([path], build_config(args))
    return tuple(docs)


def docs(path: str, keys: str | None = None) -> list[dict]:
    """A private copy (through JSON, as a reader of the NDJSON would get it: no shared sub-objects)."""
    return [json.loads(json.dumps(d)) for d in _docs(path, keys)]


def tshark_json(path: str, display_filter: str) -> list[dict]:
    out = subprocess.run(["tshark", "-r", path, "-Y", display_filter, "-T", "json", "-x"],
                         capture_output=True, check=True).stdout
    return [p["_source"]["layers"] for p in json.loads(out)]


def tshark_fields(path: str, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", path, "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def iso_from_epoch(epoch: str) -> str:
    secs, frac = epoch.split(".")
    from datetime import datetime, timezone
    return datetime.fromtimestamp(int(secs), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac[:6]}Z"


# ---- leshan-nosec-operations: everything an inventory row holds ------------------------------

@pytest.fixture(scope="module")
def operations_device() -> inventory.Device:
    inv = inventory.build(docs(OPERATIONS))
    assert [d.endpoint for d in inv.devices] == ["leshan-client-01"]
    return inv.devices[0]


def test_registration_facts_match_tshark(operations_device):
    d = operations_device
    flt = 'coap.code == 2 && coap.opt.uri_path_recon == "/rd"'
    ((queries,),) = tshark_fields(OPERATIONS, flt, "coap.opt.uri_query")
    query = dict(q.split("=", 1) for q in queries.split(","))
    assert query["ep"] == d.endpoint
    assert d.binding == query["b"] == "U"
    assert d.lifetime == int(query["lt"]) == 300
    assert d.lwm2m_version == query["lwm2m"]
    (reg,) = tshark_json(OPERATIONS, flt)
    payload = bytes.fromhex(reg["coap"]["coap.payload_raw"][0]).decode()
    targets = [link.split(">")[0].lstrip("<") for link in payload.split(",")]
    assert list(d.objects) == [t for t in targets if t != "/"]
    assert d.registrations == 1 and d.registered is False        # deregistered at the end


def test_first_and_last_seen_are_the_register_and_deregister_responses(operations_device):
    rows = tshark_fields(OPERATIONS, "coap", "frame.time_epoch", "coap.code", "udp.srcport", "udp.dstport")
    register_ack = next(r for r in rows if r[1] == "65")          # 2.01 Created
    delete_rd = [i for i, r in enumerate(rows) if r[1] == "4"]    # DELETE /rd/...: the last one deregisters
    dereg_ack = next(r for r in rows[delete_rd[-1] + 1:] if r[1] == "66")  # 2.02 Deleted
    assert operations_device.first_seen == iso_from_epoch(register_ack[0])
    assert operations_device.last_seen == iso_from_epoch(dereg_ack[0])
    client = f"127.0.0.1:{register_ack[3]}"
    assert operations_device.client_addresses == (client,)
    assert operations_device.server_addresses == (f"127.0.0.1:{register_ack[2]}",)


def test_device_object_values(operations_device):
    d = operations_device
    assert (d.manufacturer, d.model, d.firmware_version) == ("Eclipse Leshan", "lwm2m-monitor-scenario", "1.0.0")
    # first sighting of each, no change afterwards in this capture
    assert [(c.field, c.path, c.previous) for c in d.device_changes] == [
        ("manufacturer", "/3/0/0", None), ("model", "/3/0/1", None), ("firmware_version", "/3/0/3", None)]


def test_firmware_image_hash_and_size(operations_device):
    body = bytes(i & 0xFF for i in range(4096))
    (image,) = operations_device.firmware_images
    assert image.path == "/5/0/0" and image.action == "write" and image.outcome == "success"
    assert image.size == len(body) == 4096
    assert image.sha256 == hashlib.sha256(body).hexdigest()


def test_security_and_alert_counts(operations_device):
    all_docs = docs(OPERATIONS)
    assert operations_device.security == ("nosec",)
    assert operations_device.identities == () and operations_device.identity_matches_endpoint is None
    assert operations_device.operations == sum(1 for d in all_docs if d["event"]["dataset"] == "lwm2m.operation")
    expected = Counter(d["rule"]["name"] for d in all_docs if d["event"]["kind"] == "alert")
    assert dict(operations_device.alerts) == dict(expected)
    assert operations_device.alert_total == sum(expected.values())


# ---- other captures ---------------------------------------------------------------------------

def test_psk_identity_from_the_handshake_as_tshark_reads_it():
    inv = inventory.build(docs(PSK, PSK_KEYS))
    (d,) = inv.devices
    (identity,) = {bytes.fromhex(r[0].replace(":", "")).decode()
                   for r in tshark_fields(PSK, "dtls.handshake.type == 16", "dtls.handshake.identity")}
    assert d.identities == (f"psk:{identity}",)
    assert d.identity_matches_endpoint is (identity == d.endpoint)
    assert d.security == ("dtls",)
    assert (d.dtls_sessions, d.dtls_decrypted) == (1, 1)


def test_psk_without_keys_counts_the_session_not_decrypted():
    # without keys no operation is visible: the handshake names no endpoint, so the device is
    # known by its client address; the session is there and did not decrypt
    (d,) = inventory.build(docs(PSK)).devices
    assert d.endpoint is None
    assert (d.dtls_sessions, d.dtls_decrypted) == (1, 0)


def test_thermostat_without_register_is_keyed_by_client_address():
    inv = inventory.build(docs(THERMOSTAT))
    (d,) = inv.devices
    # MANIFEST: client 2001:db8:a::3, server 2001:db8:a::20, updates POST /rd/WHPXK8QxKo
    assert d.endpoint is None
    assert [a.rsplit(":", 1)[0] for a in d.client_addresses] == ["[2001:db8:a::3]"]
    assert [a.rsplit(":", 1)[0] for a in d.server_addresses] == ["[2001:db8:a::20]"]
    assert d.registration_location == "/rd/WHPXK8QxKo"
    assert inventory.device_name(d).startswith("(unnamed) [2001:db8:a::3]:")


def test_firmware_version_change_is_history():
    changed = docs(OPERATIONS)
    reads = [d for d in changed if d["event"]["action"] == "read" and d["lwm2m"]["path"] == "/3/0"]
    for doc in reads[1:]:                   # the device reports a new firmware after the first read
        for v in doc["lwm2m"]["values"]:
            if v["path"] == "/3/0/3":
                v["value"] = "1.0.1"
    (d,) = inventory.build(changed).devices
    fw = [(c.timestamp, c.value, c.previous) for c in d.device_changes if c.field == "firmware_version"]
    assert fw == [(reads[0]["@timestamp"], "1.0.0", None), (reads[1]["@timestamp"], "1.0.1", "1.0.0")]
    assert d.firmware_version == "1.0.1"


def test_writes_by_the_server_are_not_device_facts():
    forged = docs(OPERATIONS)
    for doc in forged:
        if doc["event"]["action"] in inventory.REPORTING_ACTIONS:
            doc.get("lwm2m", {}).pop("values", None)
        elif doc["event"]["action"] == "write":
            doc["lwm2m"]["values"] = [{"path": "/3/0/0", "type": "string", "value": "Forged"}]
    (d,) = inventory.build(forged).devices
    assert d.manufacturer is None and d.device_changes == ()


# ---- outputs ----------------------------------------------------------------------------------

def test_csv_and_parquet_read_back_equal(tmp_path):
    devices = inventory.build(docs(OPERATIONS) + docs(THERMOSTAT) + docs(PSK, PSK_KEYS)).devices
    frame = inventory.to_frame(devices)
    assert len(frame) == 3
    csv, parquet = tmp_path / "inv.csv", tmp_path / "inv.parquet"
    assert inventory.write_table(frame, str(csv)) == "csv"
    assert inventory.write_table(frame, str(parquet)) == "parquet"
    back_csv, back_parquet = inventory.read_table(str(csv)), inventory.read_table(str(parquet))
    pd.testing.assert_frame_equal(back_csv, frame)
    pd.testing.assert_frame_equal(back_parquet, frame)
    row = frame.set_index("endpoint").loc["leshan-client-01"]
    (image,) = json.loads(row["firmware_images"])
    assert image["sha256"] == hashlib.sha256(bytes(i & 0xFF for i in range(4096))).hexdigest()
    assert json.loads(row["objects"]) == ["/1/0", "/3", "/3/0", "/5", "/5/0", "/33000/0"]


def test_inventory_documents_pass_the_contract_and_are_deterministic(tmp_path):
    first_docs = inventory.inventory_documents(inventory.build(docs(OPERATIONS) + docs(THERMOSTAT)))
    again = inventory.inventory_documents(inventory.build(docs(OPERATIONS) + docs(THERMOSTAT)))
    assert first_docs == again
    assert len({d["event"]["id"] for d in first_docs}) == 2
    for d in first_docs:
        assert (d["event"]["kind"], d["event"]["dataset"]) == ("state", "lwm2m.inventory")
    named = next(d for d in first_docs if d.get("lwm2m", {}).get("endpoint") == "leshan-client-01")
    assert named["device"] == {"manufacturer": "Eclipse Leshan", "model": {"identifier": "lwm2m-monitor-scenario"}}
    assert named["related"]["hash"] == [hashlib.sha256(bytes(i & 0xFF for i in range(4096))).hexdigest()]
    # as in the SIEM: next to the operations they summarise (the checker wants operations)
    path = tmp_path / "inv.ndjson"
    both = docs(OPERATIONS) + first_docs
    path.write_text("".join(json.dumps(d) + "\n" for d in both))
    res = subprocess.run([sys.executable, CONTRACT, str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"contract: {len(both)} documents" in res.stdout and " 0 problems" in res.stdout


def test_terminal_table_neutralises_control_characters():
    hostile = docs(OPERATIONS)
    for doc in hostile:
        if "lwm2m" in doc and "endpoint" in doc["lwm2m"]:
            doc["lwm2m"]["endpoint"] = "ev\x1b[2J\x1b]0;pwned\x07il"
        if "related" in doc and "hosts" in doc["related"]:
            doc["related"]["hosts"] = ["ev\x1b[2J\x1b]0;pwned\x07il"]
    text = inventory.format_table(inventory.build(hostile).devices)
    assert "\x1b" not in text and "\x07" not in text and "ev?[2J" in text


# ---- command line -------------------------------------------------------------------------------

def test_cli_from_capture_and_from_ndjson_agree(tmp_path, capsys):
    events = tmp_path / "ops.events.ndjson"
    assert cli_main(["analyze", OPERATIONS, "--out", str(events), "-q"]) == 0
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    nd_a, nd_b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    assert cli_main(["inventory", OPERATIONS, "-o", str(out_a), "--ndjson", str(nd_a)]) == 0
    screen = capsys.readouterr().out
    assert "leshan-client-01" in screen and "Eclipse Leshan" in screen
    assert cli_main(["inventory", str(events), "-o", str(out_b), "--ndjson", str(nd_b), "-q"]) == 0
    assert capsys.readouterr().out == ""
    pd.testing.assert_frame_equal(inventory.read_table(str(out_a)), inventory.read_table(str(out_b)))
    assert nd_a.read_text() == nd_b.read_text()


def test_cli_errors(tmp_path, capsys):
    assert cli_main(["inventory", str(tmp_path / "missing.pcap")]) == 3
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"event": {}}\n{not json\n')
    assert cli_main(["inventory", str(bad)]) == 3
    assert "bad.ndjson:2" in capsys.readouterr().err
    assert cli_main(["inventory", OPERATIONS, "-o", str(tmp_path / "inv.xlsx")]) == 2
    assert cli_main(["inventory", OPERATIONS, "-q", "-o", str(tmp_path / "no" / "dir" / "inv.csv")]) == 5


def test_documents_without_client_role_join_the_device_at_their_address():
    oscore = os.path.join(PCAPS, "oscore-lwm2m.pcap")
    good = docs(oscore, os.path.join(PCAPS, "oscore-lwm2m.keys.yaml"))
    # the same traffic with wrong keys: failures name only source/destination (no roles known)
    failed = [d for d in docs(oscore, os.path.join(PCAPS, "oscore-wrong.keys.yaml")) if "client" not in d]
    failed_alerts = Counter(d["rule"]["name"] for d in failed if d["event"]["kind"] == "alert")
    assert failed_alerts, "wrong OSCORE keys raise an alert"
    alone = inventory.build(failed)
    assert alone.devices == [] and alone.unattributed_alerts == failed_alerts
    (d,) = inventory.build(good + failed).devices
    own = Counter(x["rule"]["name"] for x in good if x["event"]["kind"] == "alert")
    assert dict(d.alerts) == dict(own + failed_alerts)


def test_cli_reads_gzip_ndjson_and_mixes_with_captures(tmp_path, capsys):
    import gzip
    events = tmp_path / "ops.events.ndjson"
    assert cli_main(["analyze", OPERATIONS, "--out", str(events), "-q"]) == 0
    gz = tmp_path / "ops.events.ndjson.gz"
    gz.write_bytes(gzip.compress(events.read_bytes()))
    plain, zipped, mixed = (tmp_path / f"{n}.csv" for n in ("plain", "zipped", "mixed"))
    assert cli_main(["inventory", str(events), "-q", "-o", str(plain)]) == 0
    assert cli_main(["inventory", str(gz), "-q", "-o", str(zipped)]) == 0
    pd.testing.assert_frame_equal(inventory.read_table(str(plain)), inventory.read_table(str(zipped)))
    # NDJSON of one capture plus another capture: both devices
    assert cli_main(["inventory", str(gz), PSK, "--keys", PSK_KEYS, "-q", "-o", str(mixed)]) == 0
    assert list(inventory.read_table(str(mixed))["endpoint"]) == ["leshan-client-01", "leshan-client-psk"]


def test_history_follows_packet_time_not_input_order():
    changed = docs(OPERATIONS)
    reads = [d for d in changed if d["event"]["action"] == "read" and d["lwm2m"]["path"] == "/3/0"]
    for v in reads[-1]["lwm2m"]["values"]:
        if v["path"] == "/3/0/3":
            v["value"] = "2.0.0"
    forward = inventory.build(changed).devices[0]
    backward = inventory.build(changed[::-1]).devices[0]
    assert forward == backward
    assert forward.firmware_version == "2.0.0" and forward.registered is False


def test_no_secret_in_inventory_outputs(tmp_path, capsys):
    # leshan-nosec-bootstrap writes the PSK to the client in clear (bootstrap-write /0/1)
    boot = os.path.join(PCAPS, "leshan-nosec-bootstrap.pcap")
    keys = os.path.join(PCAPS, "leshan-nosec-bootstrap.keys.yaml")
    import yaml
    secret = yaml.safe_load(open(keys))["psk"][0]["key"].lower()
    csv, nd = tmp_path / "b.csv", tmp_path / "b.ndjson"
    assert cli_main(["inventory", boot, "--keys", keys, "-o", str(csv), "--ndjson", str(nd)]) == 0
    screen = capsys.readouterr()
    for text in (csv.read_text(), nd.read_text(), screen.out, screen.err):
        assert secret not in text.lower() and bytes.fromhex(secret).hex(":") not in text.lower()


def test_the_table_to_standard_output(tmp_path):
    """`-o -`: the CSV (or, with --format, Parquet) on stdout, byte for byte the file `-o x.csv`
    writes; the readable table goes to stderr so a pipe gets the table only."""
    csv_file = tmp_path / "inv.csv"
    assert cli_main(["inventory", OPERATIONS, "-q", "-o", str(csv_file)]) == 0
    run = [sys.executable, "-m", "monitor.cli", "inventory", OPERATIONS, "-o", "-"]
    out = subprocess.run(run, cwd=ROOT, capture_output=True, check=True)
    assert out.stdout == csv_file.read_bytes()
    assert b"leshan-client-01" in out.stderr and b"endpoint" in out.stderr
    parquet = subprocess.run(run + ["--format", "parquet", "-q"], cwd=ROOT, capture_output=True, check=True)
    assert parquet.stderr == b""
    parquet_file = tmp_path / "inv.parquet"
    assert cli_main(["inventory", OPERATIONS, "-q", "-o", str(parquet_file)]) == 0
    import io
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(parquet.stdout)), pd.read_parquet(parquet_file))


def test_format_overrides_the_extension(tmp_path):
    odd = tmp_path / "inventory.table"
    assert cli_main(["inventory", OPERATIONS, "-q", "-o", str(odd)]) == 2
    assert cli_main(["inventory", OPERATIONS, "-q", "-o", str(odd), "--format", "csv"]) == 0
    assert odd.read_text().startswith("endpoint,first_seen,")
