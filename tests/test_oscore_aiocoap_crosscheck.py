"""Frames where Wireshark 4.0.17 and our tracker disagree, settled by a third implementation:
aiocoap 0.4.17's own OSCORE code (`aiocoap.oscore.FilesystemSecurityContext.unprotect`)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import aiocoap
import pytest
from aiocoap import oscore as aiocoap_oscore
from aiocoap.message import Direction
from scapy.all import UDP, rdpcap

from parsers import oscore

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "corpus"


def _aiocoap_context(tmp_path: Path, settings: dict, secret: dict):
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "settings.json").write_text(json.dumps(settings))
    (d / "secret.json").write_text(json.dumps(secret))
    return aiocoap_oscore.FilesystemSecurityContext(str(d))


def _unprotect_response(ctx, request: bytes, response: bytes) -> aiocoap.Message:
    req = aiocoap.Message.decode(request)
    resp = aiocoap.Message.decode(response)
    resp.direction = Direction.INCOMING
    opt = oscore.parse_option(req.opt.oscore)
    plain, _ = ctx.unprotect(resp, aiocoap_oscore.RequestIdentifiers(opt.kid, opt.piv, True, req.code))
    return plain


@pytest.mark.parametrize("request_frame,response_frame", [(31, 32), (39, 40), (47, 48), (67, 68)])
def test_jim_cs_observe_4_04_verified_by_aiocoap(tmp_path, request_frame, response_frame):
    # The plugtest client context "a" (MANIFEST §6 context A), copied because aiocoap writes to it.
    shutil.copytree(CORPUS / "aiocoap-oscore" / "plugtest-common-context" / "a", tmp_path / "a")
    ctx = aiocoap_oscore.FilesystemSecurityContext(str(tmp_path / "a"))
    packets = rdpcap(gzip.open(CORPUS / "ericsson-oscore-interop" / "Interop6-jim-cs.pcapng.gz"))
    plain = _unprotect_response(ctx, bytes(packets[request_frame - 1][UDP].payload),
                                bytes(packets[response_frame - 1][UDP].payload))
    assert str(plain.code) == "4.04 Not Found"      # what tests/test_oscore_interop.py reads too


def test_leshan_frame_22_verified_by_aiocoap(tmp_path):
    # LwM2M server's view (Sender 02, Recipient 01): it unprotects the client's response.
    ctx = _aiocoap_context(tmp_path, {"algorithm": "AES-CCM-16-64-128", "sender-id_hex": "02",
                                      "recipient-id_hex": "01"},
                           {"secret_hex": "0102030405060708090a0b0c0d0e0f10", "salt_hex": "9e7ca92223786340"})
    packets = rdpcap(str(ROOT / "pcaps" / "leshan-oscore.pcap"))
    plain = _unprotect_response(ctx, bytes(packets[20][UDP].payload), bytes(packets[21][UDP].payload))
    assert str(plain.code) == "2.05 Content"
    assert json.loads(plain.payload) == [{"bn": "/3/0/9", "v": 84}]
