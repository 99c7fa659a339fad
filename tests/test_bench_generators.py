"""The benchmark's DTLS capture is real DTLS: Wireshark decrypts it, and so do we, record for record.

bench/gen_dtls_traffic.py writes its own key schedule and CCM_8 or CBC-SHA256 record protection
from the RFCs;
if it were wrong, tshark (an independent implementation) would not decrypt it, and the DTLS
benchmark's figures would mean nothing. Small capture, generated at test time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from monitor import keys as keysfile
from monitor.analyze import collect
from monitor.keys import KeyStore
from monitor.pipeline import PipelineConfig
from tests.captures import ROOT


SUITE_NAMES = {"ccm8": "TLS_PSK_WITH_AES_128_CCM_8", "cbc": "TLS_PSK_WITH_AES_128_CBC_SHA256"}


@pytest.fixture(scope="module", params=sorted(SUITE_NAMES))
def dtls_capture(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("gen") / "dtls.pcap"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_dtls_traffic.py"), str(out),
                    "--packets", "1500", "--clients", "40", "--suite", request.param],
                   check=True, capture_output=True)
    stem = str(out)[:-5]
    with open(stem + ".json") as f:
        meta = json.load(f)
    assert meta["suite"] == request.param
    return str(out), stem + ".keys.yaml", meta


def tshark_codes(pcap: str, psk_hex: str) -> dict[int, str]:
    out = subprocess.run(["tshark", "-r", pcap, "-o", f"dtls.psk:{psk_hex}", "-T", "fields",
                          "-e", "frame.number", "-e", "coap.code", "-e", "coap.opt.uri_path_recon"],
                         check=True, capture_output=True, text=True).stdout
    codes = {}
    for line in out.splitlines():
        frame, code, path = (line.split("\t") + ["", ""])[:3]
        if code:
            codes[int(frame)] = (int(code), path)
    return codes


def test_tshark_and_we_decrypt_every_record_the_same(dtls_capture):
    pcap, keys_path, meta = dtls_capture
    theirs = tshark_codes(pcap, meta["psk_hex"])
    assert len(theirs) == meta["app_records"] > 1000
    ours = {}

    def observe(dgram, msg):
        ours[dgram.frame] = (msg.code, "/" + "/".join(msg.uri_path) if msg.uri_path else "")

    docs, res = collect([pcap], PipelineConfig(keys=keysfile.load(keys_path), coap_observer=observe))
    assert {f: c for f, (c, _) in ours.items()} == {f: c for f, (c, _) in theirs.items()}
    # tshark repeats the request's path on responses; compare the requests' own Uri-Path
    requests = {f for f, (c, _) in ours.items() if 0 < c < 32}
    assert len(requests) > 300
    assert {f: ours[f][1] for f in requests} == {f: theirs[f][1] for f in requests}
    handshakes = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    assert len(handshakes) == meta["handshakes"]
    assert all(h["dtls"]["finished_verified"] and h["tls"]["cipher"] == SUITE_NAMES[meta["suite"]]
               for h in handshakes)
    ops = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert {d["lwm2m"]["security"] for d in ops} == {"dtls"}
    assert all(d["lwm2m"]["endpoint"] == d["lwm2m"]["identity"]["value"] for d in ops)


def test_wrong_key_decrypts_nothing(dtls_capture, tmp_path):
    pcap, keys_path, meta = dtls_capture
    with open(keys_path) as f:
        data = yaml.safe_load(f)
    for entry in data["psk"]:
        entry["key"] = "00" * 16
    wrong = tmp_path / "wrong.keys.yaml"
    wrong.write_text(yaml.safe_dump(data))
    docs, res = collect([pcap], PipelineConfig(keys=keysfile.load(str(wrong))))
    assert res.pipeline.stats.coap_messages == 0
    handshakes = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    assert len(handshakes) == meta["handshakes"]
    assert not any(h["dtls"]["decrypted"] for h in handshakes)
    assert not [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    docs, res = collect([pcap], PipelineConfig(keys=KeyStore()))
    assert res.pipeline.stats.coap_messages == 0
