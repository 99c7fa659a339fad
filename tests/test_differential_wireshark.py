"""Our CoAP decoding against Wireshark's, message by message, on every capture we have.

Wireshark (through pyshark) and our pipeline each list the CoAP messages of a capture per
frame: type, code, MID, token, Uri-Path, Uri-Query, Content-Format, Observe, Block numbers.
DTLS captures are decrypted by both with the same PSK. CoAP found by content on ports
Wireshark does not know is handed to Wireshark with decode-as, so both see the same datagrams.
"""
from __future__ import annotations

import collections
import os

import pyshark
import pytest

from monitor.analyze import ListSink, analyze_files
from monitor.keys import KeyStore, load
from monitor.pipeline import PipelineConfig

from captures import corpus_captures, keylog_file, keys_file, project_captures, psk_hex

CAPTURES = project_captures() + corpus_captures()
STANDARD_COAP, STANDARD_DTLS = {5683}, {5684}
# Wireshark 4.0's ChaCha20-Poly1305 DTLS decryption fails its own tag check on these captures
# (pcaps/README.md); our decryption of them is checked against the peers' bytes instead.
TSHARK_CANNOT_DECRYPT = {
    name: "tshark 4.0 cannot decrypt DTLS ChaCha20-Poly1305 (see pcaps/README.md)"
    for name in ("dtls-mbedtls-ecdhe-psk-chacha20-poly1305.pcap", "dtls-mbedtls-psk-chacha20-poly1305.pcap",
                 "dtls-openssl-psk-chacha20-poly1305.pcap")}


def ours(path: str):
    sink = ListSink()
    seen: dict[int, list[tuple]] = collections.defaultdict(list)
    ports = {"coap": set(), "dtls": set()}

    def observe(dgram, msg):
        seen[dgram.frame].append((
            msg.type, msg.code, msg.mid, msg.token.hex(),
            "/" + "/".join(msg.uri_path) if msg.is_request and msg.uri_path else None,
            tuple(msg.uri_query), msg.content_format, msg.observe,
            msg.block1.num if msg.block1 else None, msg.block2.num if msg.block2 else None))
    kf = keys_file(path)
    keys = load(kf) if kf else KeyStore()
    psk = psk_hex(path)
    config = PipelineConfig(keys=keys, coap_observer=observe, rules=None)
    if os.path.basename(path) in ("golioth_basics_psk.pcapng", "golioth_ota_download.pcapng"):
        from monitor.keys import Psk
        ident = b"20230614151602-linux@blush-unexpected-fox"
        keys.psks[ident] = Psk(ident, bytes.fromhex(psk))
    if os.path.basename(path).startswith("dtls12-aes128ccm8"):
        from monitor.keys import Psk
        keys.psks[b"test"] = Psk(b"test", bytes.fromhex(psk))
    res = analyze_files([path], config, [sink])
    anomalies = {d["anomaly"]["frame"] for d in sink.docs if d["event"]["dataset"] == "coap.anomaly"}
    return seen, res, anomalies


def wireshark(path: str, coap_ports: set[int], dtls_ports: set[int]):
    decode_as = {}
    for port in sorted(coap_ports - STANDARD_COAP):
        decode_as[f"udp.port=={port}"] = "coap"
    for port in sorted(dtls_ports - STANDARD_DTLS):
        decode_as[f"udp.port=={port}"] = "dtls"
    prefs = {}
    keylog = keylog_file(path)
    if keylog:
        prefs["tls.keylog_file"] = keylog
    psk = psk_hex(path)
    if psk:
        prefs["dtls.psk"] = psk
    cap = pyshark.FileCapture(path, display_filter="coap", decode_as=decode_as or None,
                              override_prefs=prefs or None, keep_packets=False)
    seen: dict[int, list[tuple]] = collections.defaultdict(list)
    try:
        for pkt in cap:
            frame = int(pkt.frame_info.number)
            for layer in pkt.layers:
                if layer.layer_name != "coap":
                    continue
                seen[frame].append(_ws_message(layer))
    finally:
        cap.close()
    return seen


def _all(layer, name):
    field = layer.get_field(name)
    if field is None:
        return []
    return [f.get_default_value() for f in field.all_fields]


def _one_int(layer, name):
    v = layer.get_field_value(name)
    return None if v is None else int(v)


def _ws_message(layer) -> tuple:
    code = int(layer.get_field_value("code"))
    token = (layer.get_field_value("token") or "").replace(":", "")
    path = layer.get_field_value("opt_uri_path_recon") if code and code >> 5 == 0 else None
    queries = tuple(_all(layer, "opt_uri_query"))
    field = layer.get_field("opt_ctype")
    ctype = int(field.raw_value or "0", 16) if field is not None else None
    if path and "://" in path:                      # Wireshark prefixes Uri-Host as coap://host
        path = "/" + path.split("://", 1)[1].split("/", 1)[1] if "/" in path.split("://", 1)[1] else "/"
    block_nums = _all(layer, "opt_block_number")
    opt_names = _all(layer, "opt_name")
    b1 = b2 = None
    blocks = iter(block_nums)
    for name in opt_names:
        if "Block1" in name:
            b1 = int(next(blocks, -1))
        elif "Block2" in name:
            b2 = int(next(blocks, -1))
    observe = _one_int(layer, "opt_observe")
    return (int(layer.get_field_value("type")), code, int(layer.get_field_value("mid")), token,
            path, queries, ctype, observe, b1, b2)


def _norm(messages):
    # Wireshark shows content formats by name for some numbers; compare numbers where it gives them.
    return sorted(messages, key=repr)


@pytest.mark.parametrize("path", CAPTURES, ids=[os.path.basename(p) for p in CAPTURES])
def test_coap_messages_match_wireshark(path):
    our, res, anomalies = ours(path)
    p = res.pipeline
    coap_ports, dtls_ports = set(), set()
    # the ports our content detection found CoAP/DTLS on, for Wireshark's decode-as
    from monitor.capture import CaptureStats, read_files
    from parsers import coap
    from parsers.dtls import looks_like_dtls
    for d in read_files([path], CaptureStats()):
        if looks_like_dtls(d.payload):
            dtls_ports.update((d.src_port, d.dst_port))
        elif coap.looks_like_coap(d.payload) and d.frame in our:
            coap_ports.update((d.src_port, d.dst_port))
    dtls_ports = {min(dtls_ports, key=lambda x: x)} if dtls_ports and not dtls_ports & STANDARD_DTLS else set()
    coap_ports = {port for port in coap_ports if port < 49152} - STANDARD_COAP
    if os.path.basename(path) in TSHARK_CANNOT_DECRYPT:
        pytest.skip(TSHARK_CANNOT_DECRYPT[os.path.basename(path)])
    ws = wireshark(path, coap_ports, dtls_ports)
    # Wireshark is lenient where RFC 7252 is not (reserved token lengths, code classes, option
    # nibbles): it shows such datagrams as CoAP, we count them as malformed. Every message
    # only Wireshark shows must be one of our reported anomalies, and nothing else may differ.
    only_ws = {f for f, ms in ws.items() if ms and not our.get(f)}
    assert only_ws <= anomalies, f"frames Wireshark decodes and we neither decode nor report: {sorted(only_ws - anomalies)[:10]}"
    ws = {f: ms for f, ms in ws.items() if f not in only_ws}
    assert sum(map(len, ws.values())) == sum(map(len, our.values())), (
        f"Wireshark saw {sum(map(len, ws.values()))} CoAP messages, we saw {sum(map(len, our.values()))}")
    mismatches = []
    for frame in sorted(set(ws) | set(our)):
        a = _norm(our.get(frame, []))
        b = _norm(ws.get(frame, []))
        if [_comparable(m) for m in a] != [_comparable(m) for m in b]:
            mismatches.append((frame, a, b))
    assert not mismatches, f"{len(mismatches)} frames differ, first: {mismatches[0]}"


def _reserved(m: tuple) -> bool:
    return len(m[3]) > 16 or m[1] >> 5 in (1, 6, 7)


def _comparable(m: tuple) -> tuple:
    mtype, code, mid, token, path, queries, ctype, observe, b1, b2 = m
    return (mtype, code, mid, token, None if path == "/" else path, queries, ctype, observe, b1, b2)
