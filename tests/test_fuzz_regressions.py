"""Inputs found by the pipeline fuzz campaign (scripts/fuzz_pipeline.py) that crashed the
pipeline, each kept as its (minimised) reproducer bytes. Every run goes through the full
pipeline with the rule engine and through the NDJSON encoder, as the campaign does."""
from __future__ import annotations

import os
import struct

from monitor.analyze import ListSink, analyze_files
from monitor.datagram import Datagram
from monitor.keys import KeyStore, OscoreContextConfig
from monitor.oscore_context import Context
from monitor.pipeline import Pipeline, PipelineConfig
from monitor.rule_engine import RuleEngine
from monitor.sinks import dumps_line
from parsers import coap, oscore
from parsers.pcapfile import Packet, Reader

from captures import PCAPS

h = bytes.fromhex
CLIENT, SERVER = ("127.0.0.1", 59918), ("127.0.0.1", 5683)


def dgram(src, dst, payload: bytes, frame: int, ts_ns: int = 1_438_467_350_183_321_000) -> Datagram:
    return Datagram(ts_ns + frame * 1000, src[0], src[1], dst[0], dst[1], payload, frame, "fuzz")


def run(datagrams, keys: KeyStore | None = None) -> tuple[Pipeline, list[dict]]:
    p = Pipeline(PipelineConfig(keys=keys or KeyStore(), rules=RuleEngine.from_cli()))
    docs: list[dict] = []
    for d in datagrams:
        docs += p.feed(d)
    docs += p.close()
    for doc in docs:
        assert doc["event"]["dataset"]
        dumps_line(doc)
    return p, docs


def anomalies(docs: list[dict]) -> list[str]:
    return [d["event"]["reason"] for d in docs if d["event"]["dataset"] == "coap.anomaly"]


# ------------------------------------------------------------------ Block options (RFC 7959)

def test_block2_option_of_20_bytes_is_an_anomaly_not_an_overflow():
    """coap-cbor.pcap frames 79/80, the response given a 20-byte Block2 option: its block
    number made `_Assembly.add` zero-fill to an offset beyond any index (OverflowError)."""
    request = h("44020c63d19796e8c13cfffbfff0000000000000")
    answer = h("64850c63d19796e8dd0a076c062b4279b653a2f7c54c14e024022222476561")
    p, docs = run([dgram(CLIENT, SERVER, request, 79), dgram(SERVER, CLIENT, answer, 80)])
    assert anomalies(docs) == ["Block2 option of 20 bytes (at most 3)"]
    assert p.stats.decode_errors["coap-malformed"] == 1


def test_block1_option_of_4_bytes_is_an_anomaly_not_a_memory_error():
    """rules-oscore-replay.pcap frame 1 mutated: Block1 ffffffff asked for a 256 GiB body."""
    payload = h("4202f3ba081ad40effffffffff4e05a6281512986c37778ad6649def924848eb142081dd086ff77c3ea120c3e1cc"
                "ec88f0fd0695993f2153ead04fcfa2f973533dfbffb9cf6a118fb941c49347c705bf90b8")
    p, docs = run([dgram(("127.0.0.1", 57130), ("127.0.0.1", 5713), payload, 1)])
    assert docs == [] and p.stats.other_udp == 1          # not CoAP on another port: ignored
    _, docs = run([dgram(("127.0.0.1", 57130), ("127.0.0.1", 5683), payload, 1)])
    assert anomalies(docs) == ["Block1 option of 4 bytes (at most 3)"]      # on a CoAP port: reported


def _block_exchange(first_num_second: int) -> list[Datagram]:
    """GET /5/0/0 answered block-wise: block 0 (more) then block `first_num_second` (last)."""
    path = [(coap.URI_PATH, b"5"), (coap.URI_PATH, b"0"), (coap.URI_PATH, b"0")]
    out = []
    for k, num in enumerate((0, first_num_second)):
        more = 8 if k == 0 else 0
        block = coap.encode_option_uint(num << 4 | more | 6)          # SZX 6: 1024-byte blocks
        req = coap.Message(coap.CON, coap.GET, 10 + k, b"\x07" + bytes([k]), tuple(path)
                           + (((coap.BLOCK2, coap.encode_option_uint(num << 4 | 6)),) if k else ()), b"")
        resp = coap.Message(coap.ACK, 0x45, 10 + k, req.token,
                            ((coap.CONTENT_FORMAT, coap.encode_option_uint(42)), (coap.BLOCK2, block)),
                            bytes([k + 1]) * (1024 if k == 0 else 10))
        out += [dgram(CLIENT, SERVER, coap.serialize(req), 2 * k + 1),
                dgram(SERVER, CLIENT, coap.serialize(resp), 2 * k + 2)]
    return out


def _option(delta: int, value: bytes) -> bytes:
    """One CoAP option (RFC 7252 §3.1) of 269 bytes or more: a 2-byte extended length."""
    length = (len(value) - 269).to_bytes(2, "big")
    if delta < 13:
        return bytes([delta << 4 | 14]) + length + value
    return bytes([13 << 4 | 14, delta - 13]) + length + value


def test_observe_of_2000_bytes_is_an_anomaly_not_an_unencodable_number():
    """seed 22 case 5772 (dtls-mbedtls-identity-mismatch.pcap mutated): a 2,000-byte Observe
    option in a 2.05 notification became a 4,800-digit `coap.response.observe` that no JSON
    encoder would write (orjson refuses it, the stdlib's digit limit too): the operation and its
    alert were lost at the sink."""
    get = h("42010001abcd") + bytes([0x60, 0x51]) + b"3"                # GET /3, Observe: 0
    notify = h("62450001abcd") + _option(6, b"\x01" * 2000) + b"\xffx"
    p, docs = run([dgram(CLIENT, SERVER, get, 1), dgram(SERVER, CLIENT, notify, 2)])
    assert anomalies(docs) == ["Observe option of 2000 bytes (at most 3)"]
    assert p.stats.decode_errors["coap-malformed"] == 1


def test_a_number_beyond_the_digit_limit_is_written_as_hex_not_lost():
    """The sink's last resort: whatever builds such a number, the document is still written."""
    huge = 1 << 20_000
    line = dumps_line({"a": {"n": huge, "small": 1 << 70}, "b": [huge, True]})
    assert line == ('{"a":{"n":"%s","small":%d},"b":["%s",true]}\n' % (hex(huge), 1 << 70, hex(huge))).encode()


def test_content_format_and_accept_beyond_two_bytes_are_malformed():
    for number, name in ((coap.CONTENT_FORMAT, "Content-Format"), (coap.ACCEPT, "Accept")):
        msg = h("42010001abcd") + _option(number, b"\x07" * 300)
        try:
            coap.parse(msg)
        except coap.Malformed as exc:
            assert str(exc) == f"{name} option of 300 bytes (at most 2)"
        else:
            raise AssertionError(f"a 300-byte {name} parsed")
    assert coap.parse(h("42010001abcd") + bytes([0xc3]) + h("00002a")).content_format == 42   # long, small: kept


def test_a_block_far_beyond_the_body_is_not_zero_filled():
    """A valid 3-byte Block2 number (here 4096: a 4 MiB hole; up to 2**20 blocks = 1 GiB) made
    one packet allocate the hole as zeros. Now such a block is a gap: not stored."""
    _, docs = run(_block_exchange(4096))
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert op["file"]["size"] == 1024
    assert op["lwm2m"]["values"][0]["value"]["size"] == 1024


def test_a_block_just_after_a_small_gap_is_still_placed_at_its_offset():
    _, docs = run(_block_exchange(3))
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert op["file"]["size"] == 3 * 1024 + 10


def test_oscore_inner_block2_of_4_bytes_is_a_malformed_plaintext_not_a_crash():
    """The same Block option check applies to the inner (decrypted) message of OSCORE, which
    the pipeline merges into the CoAP message without going through `coap.parse`."""
    cfg = OscoreContextConfig(h("00112233445566778899aabbccddeeff"), h("a1a2a3a4"), None, client_id=h("c1"),
                              server_id=h("5e"))
    ctx = Context.derive(cfg)
    piv = b"\x01"
    aad = oscore.aad(10, cfg.client_id, piv)
    inner = bytes([coap.GET]) + coap.serialize_options([(coap.URI_PATH, b"5"), (coap.URI_PATH, b"0")])
    req = coap.Message(coap.CON, coap.FETCH, 1, b"\x01",
                       ((coap.OSCORE, oscore.encode_option(oscore.Option(piv, cfg.client_id, None))),),
                       ctx.seal(True, ctx.nonce(cfg.client_id, piv), aad, inner))
    inner_resp = bytes([0x45]) + coap.serialize_options([(coap.BLOCK2, h("ffffff0e"))]) + b"\xff" + b"x" * 16
    resp = coap.Message(coap.ACK, 0x44, 1, b"\x01", ((coap.OSCORE, b""),),
                        ctx.seal(False, ctx.nonce(cfg.client_id, piv), aad, inner_resp))
    p, docs = run([dgram(CLIENT, SERVER, coap.serialize(req), 1), dgram(SERVER, CLIENT, coap.serialize(resp), 2)],
                  KeyStore(oscore=[cfg]))
    assert (p.oscore.stats["decrypted"], p.oscore.stats["malformed"]) == (1, 1)
    assert p.stats.oscore_undecrypted == 1
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert (op["event"]["action"], op["event"]["outcome"]) == ("read", "unknown")   # request kept, answer unread
    # and the analyst sees why: a (rate-limited) anomaly on the flow, not only a counter
    (anomaly,) = [d for d in docs if d["event"]["dataset"] == "coap.anomaly"]
    assert anomaly["event"]["action"] == "oscore-malformed-plaintext" and anomaly["anomaly"]["frame"] == 2
    assert p.stats.decode_errors["oscore-malformed-plaintext"] == 1


# ------------------------------------------------------------------ capture timestamps

def _pcapng(packets: list[tuple[int, bytes]], tsoffset_s: int = 0) -> bytes:
    """A little-endian pcapng: one Ethernet interface (with if_tsoffset when given), one EPB per
    (microseconds, frame)."""
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    opts = struct.pack("<HHq", 14, 8, tsoffset_s) + struct.pack("<HH", 0, 0) if tsoffset_s else b""
    idb_len = 20 + len(opts)
    idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, 0) + opts + struct.pack("<I", idb_len)
    out = shb + idb
    for ts_us, frame in packets:
        pad = b"\0" * (-len(frame) % 4)
        blen = 32 + len(frame) + len(pad)
        out += struct.pack("<IIIIIII", 6, blen, 0, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame))
        out += frame + pad + struct.pack("<I", blen)
    return out


def _frames() -> list[Packet]:
    with open(os.path.join(PCAPS, "leshan-nosec-operations.pcap"), "rb") as fh:
        return [r for r in Reader().feed(fh.read()) if isinstance(r, Packet)][:2]  # Register, 2.01


def _analyze(tmp_path, data: bytes):
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(data)
    sink = ListSink()
    res = analyze_files([str(path)], PipelineConfig(rules=RuleEngine.from_cli()), [sink])
    for doc in sink.docs:
        dumps_line(doc)
    return res, sink.docs


def test_frame_time_after_year_9999_is_a_malformed_frame_not_a_crash(tmp_path):
    """leshan-thermostat-readings.pcapng with damaged blocks gave a packet of the year 216664:
    building the document's @timestamp raised ValueError and ended the run."""
    register, created = _frames()
    damaged = (0xFFFFFFFF << 32) | 0x12345678                  # a damaged high timestamp word
    res, docs = _analyze(tmp_path, _pcapng([(damaged, register.data), (register.ts_ns // 1000, register.data),
                                            (created.ts_ns // 1000, created.data)]))
    assert res.capture.malformed == {"timestamp out of range (before 1970 or after 9998)": 1}
    assert res.capture.frames == 3
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]   # the run goes on
    assert (op["event"]["action"], op["event"]["outcome"]) == ("register", "success")


def test_negative_interface_time_offset_is_a_malformed_frame_not_a_crash(tmp_path):
    """if_tsoffset is signed: a damaged one put packets before year 1 (ValueError/OverflowError)."""
    register, created = _frames()
    res, docs = _analyze(tmp_path, _pcapng([(register.ts_ns // 1000, register.data),
                                            (created.ts_ns // 1000, created.data)], tsoffset_s=-(1 << 62)))
    assert res.capture.malformed == {"timestamp out of range (before 1970 or after 9998)": 2}
    assert docs == []


# ------------------------------------------------------------------ peer certificates

def test_certificate_with_an_undecodable_issuer_is_a_parse_error_not_a_crash():
    """dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.pcap with one byte of the server certificate's
    issuer CN changed (UTF8String 'lwm2m-s\\xe4rver.test'): `cryptography` loads the
    certificate and raises ValueError only when the issuer is read, which escaped
    `x509_facts` and ended the run."""
    from monitor.capture import CaptureStats, read_files
    from monitor.keys import load

    path = os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.pcap")
    dgrams = list(read_files([path], CaptureStats()))
    issuer = b"\x0c\x11lwm2m-server.test0\x1e"        # UTF8String CN, then the validity SEQUENCE
    (i,) = [k for k, d in enumerate(dgrams) if issuer in d.payload]                 # the Certificate
    dgrams[i] = dgrams[i]._replace(payload=dgrams[i].payload.replace(issuer, b"\x0c\x11lwm2m-s\xe4rver.test0\x1e"))
    _, docs = run(dgrams, load(os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.keys.yaml")))
    (hs,) = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    x509 = hs["tls"]["server"]["x509"]
    assert "issuer" in x509["parse_error"] and len(x509["hash"]["sha256"]) == 64



def test_certificate_whose_issuer_has_an_unknown_string_tag_is_a_parse_error_not_a_crash():
    """The same certificate with the issuer CN's UTF8String tag (0x0c) changed to 0x2e, a tag no
    ASN.1 string type has: `cryptography` 48 raises KeyError (not ValueError) on reading the
    issuer, 51 a ValueError at parsing (found on the corpus snakeoil capture, fuzz seed 11)."""
    from monitor.capture import CaptureStats, read_files
    from monitor.keys import load

    path = os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.pcap")
    dgrams = list(read_files([path], CaptureStats()))
    issuer = b"\x0c\x11lwm2m-server.test0\x1e"
    (i,) = [k for k, d in enumerate(dgrams) if issuer in d.payload]
    dgrams[i] = dgrams[i]._replace(payload=dgrams[i].payload.replace(issuer, b"\x2e" + issuer[1:]))
    _, docs = run(dgrams, load(os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.keys.yaml")))
    (hs,) = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    x509 = hs["tls"]["server"]["x509"]
    assert x509["parse_error"].split(":")[0] in ("KeyError", "ValueError"), x509
    assert len(x509["hash"]["sha256"]) == 64


def test_certificate_with_a_negative_serial_number_gives_its_facts_without_a_warning():
    """The same certificate with its serial number made negative (first byte's top bit set):
    `cryptography` still parses it but printed a CryptographyDeprecationWarning to stderr in
    the middle of the user's run (fuzz seed 26)."""
    import warnings

    from monitor.capture import CaptureStats, read_files
    from monitor.keys import load

    path = os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.pcap")
    dgrams = list(read_files([path], CaptureStats()))
    version = b"\xa0\x03\x02\x01\x02\x02"           # [0] v3, then the serial number INTEGER
    (i,) = [k for k, d in enumerate(dgrams) if version in d.payload]
    at = dgrams[i].payload.index(version) + len(version) + 1     # past the INTEGER's length byte
    payload = bytearray(dgrams[i].payload)
    payload[at] |= 0x80
    dgrams[i] = dgrams[i]._replace(payload=bytes(payload))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, docs = run(dgrams, load(os.path.join(PCAPS, "dtls-mbedtls-ecdhe-ecdsa-aes128-ccm8.keys.yaml")))
    assert [str(w.message) for w in seen] == []
    (hs,) = [d for d in docs if d["event"]["dataset"] == "dtls.handshake"]
    x509 = [c for side in ("server", "client") for c in [hs["tls"].get(side, {}).get("x509")] if c]
    assert any(c.get("serial_number", "").startswith("-") for c in x509), x509


# ------------------------------------------------------------------ secrets in output

def test_secret_sent_as_senml_object_link_is_redacted_not_quoted_in_the_decode_error():
    """A bootstrap write of /0/1/5 (Secret Key) whose SenML record carries the key as an object
    link ("vlo") that is not OID:IID: the decode error quoted the value, so the key reached
    `lwm2m.decode_error` in clear. It is now redacted like any other encoding of the key."""
    psk = b"canary-PSK-q8XzW3"
    req = coap.Message(coap.CON, coap.PUT, 7, b"\x42",
                       ((coap.URI_PATH, b"0"), (coap.URI_PATH, b"1"), (coap.CONTENT_FORMAT, coap.encode_option_uint(110))),
                       b'[{"bn": "/0/1/", "n": "5", "vlo": "' + psk + b'"}]')
    resp = coap.Message(coap.ACK, 0x44, 7, b"\x42", (), b"")
    _, docs = run([dgram(CLIENT, SERVER, coap.serialize(req), 1), dgram(SERVER, CLIENT, coap.serialize(resp), 2)])
    out = b"".join(dumps_line(d) for d in docs)
    assert psk not in out and psk.hex().encode() not in out
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    (value,) = op["lwm2m"]["values"]
    assert value["path"] == "/0/1/5" and value["value"]["redacted"] is True


def _write_and_ack(path: tuple[bytes, ...], code: int, cf: int | None, body: bytes) -> list[Datagram]:
    opts = tuple((coap.URI_PATH, seg) for seg in path)
    if cf is not None:
        opts += ((coap.CONTENT_FORMAT, coap.encode_option_uint(cf)),)
    req = coap.Message(coap.CON, code, 9, b"\x43", opts, body)
    resp = coap.Message(coap.ACK, 0x44, 9, b"\x43", (), b"")
    return [dgram(SERVER, CLIENT, coap.serialize(req), 1), dgram(CLIENT, SERVER, coap.serialize(resp), 2)]


def test_a_security_object_resource_the_model_does_not_know_is_redacted():
    """A TLV write whose damaged resource id put a PSK at /0/1/168: a resource of a credential
    object (Security 0, OSCORE 21) the model does not define is redacted like a known key."""
    psk = b"canary-PSK-unknown-168"
    tlv = bytes([0xC8, 168, len(psk)]) + psk + bytes([0xC1, 10, 7])     # /0/1/168 = psk, /0/1/10 = 7
    _, docs = run(_write_and_ack((b"0", b"1"), coap.PUT, 11542, tlv))
    out = b"".join(dumps_line(d) for d in docs)
    assert psk not in out and psk.hex().encode() not in out
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    values = {v["path"]: v["value"] for v in op["lwm2m"]["values"]}
    assert values["/0/1/168"]["redacted"] is True and values["/0/1/10"] == 7     # a known one stays
    assert op["lwm2m"]["credentials"]["paths"] == ["/0/1/168"]


def test_execute_aimed_at_a_key_resource_has_its_arguments_redacted():
    """POST to a resource path is an Execute; its body shows in lwm2m.execute.arguments. Aimed at
    a key (OSCORE Master Secret /21/0/0) that body is the key's value: redacted, a credential."""
    secret = b"canary-master-secret-0"
    _, docs = run(_write_and_ack((b"21", b"0", b"0"), coap.POST, None, secret))
    out = b"".join(dumps_line(d) for d in docs)
    assert secret not in out and secret.hex().encode() not in out
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert op["event"]["action"] == "execute"
    assert op["lwm2m"]["execute"]["arguments"].startswith("redacted sha256_8=")
    assert op["lwm2m"]["credentials"]["paths"] == ["/21/0/0"]
    # an ordinary Execute keeps its arguments
    _, docs = run(_write_and_ack((b"3", b"0", b"4"), coap.POST, None, b"0='x'"))
    (op,) = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert op["lwm2m"]["execute"]["arguments"] == "0='x'" and "credentials" not in op["lwm2m"]
