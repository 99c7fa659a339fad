"""The CoAP reader: messages encoded by aiocoap (an independent implementation), RFC 7252
edge cases, and the sans-IO contract under Hypothesis."""
from __future__ import annotations

import warnings

import pytest
from aiocoap import message as M, numbers as N
from hypothesis import given, settings, strategies as st

from parsers import coap
from parsers.errors import Malformed, ParseError, Truncated

h = bytes.fromhex
warnings.filterwarnings("ignore", category=DeprecationWarning)


def encode(**kw) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = M.Message(mtype=kw.pop("mtype", N.CON), code=kw.pop("code", N.GET), mid=kw.pop("mid", 0x1234),
                      token=kw.pop("token", b"\x01\x02"), payload=kw.pop("payload", b""))
    for name, value in kw.items():
        setattr(m.opt, name, value)
    return m.encode()


def test_register_as_aiocoap_encodes_it():
    data = encode(code=N.POST, uri_path=("rd",), uri_query=("ep=node-1", "lt=300", "lwm2m=1.1", "b=U"),
                  content_format=40, payload=b"</1/0>,</3/0>")
    msg = coap.parse(data)
    assert (msg.type, msg.code_text, msg.mid, msg.token) == (coap.CON, "0.02", 0x1234, b"\x01\x02")
    assert msg.uri_path == ("rd",)
    assert msg.uri_query == ("ep=node-1", "lt=300", "lwm2m=1.1", "b=U")
    assert msg.content_format == 40 and msg.payload == b"</1/0>,</3/0>"
    assert coap.serialize(msg) == data


def test_observe_block_and_large_option_numbers():
    data = encode(mtype=N.NON, code=N.CONTENT, observe=70000, block2=(5, True, 6), size2=133165,
                  content_format=11542, payload=b"\xc8\x00\x01x")
    msg = coap.parse(data)
    assert msg.observe == 70000
    assert msg.block2 == coap.Block(num=5, more=True, szx=6) and msg.block2.offset == 5 * 1024
    assert msg.uint_option(coap.SIZE2) == 133165
    assert msg.content_format == 11542 and msg.code_text == "2.05"


def test_unknown_options_are_kept():
    # option 2048 (unknown, elective) with a 300-byte value: extended delta and length forms
    opts = coap.serialize_options([(2048, b"z" * 300), (11, b"a")])
    msg = coap.parse(bytes([0x40, 0x01, 0, 1]) + opts)
    assert (2048, b"z" * 300) in msg.options and msg.uri_path == ("a",)


def test_empty_ack_and_reset():
    assert coap.parse(h("60001234")).is_empty
    assert coap.parse(h("70001234")).type == coap.RST


@pytest.mark.parametrize("data,error", [
    (h("40"), Truncated),                       # header cut
    (h("80011234"), Malformed),                 # version 2
    (h("49011234") + b"123456789", Malformed),  # token length 9 is reserved
    (h("42011234") + b"\x01", Truncated),       # token shorter than TKL
    (h("40011234ff"), Malformed),               # payload marker with no payload
    (h("40011234f0"), Malformed),               # option delta nibble 15 outside the marker
    (h("40011234b5616263"), Truncated),         # option value cut
    (h("40211234"), Malformed),                 # code class 1 is reserved
    (h("60001234ff00"), Malformed),             # empty message with a payload
])
def test_malformed_and_truncated(data, error):
    with pytest.raises(error):
        coap.parse(data)


def test_token_with_ff_byte_is_not_a_payload_marker():
    # the trap of ../shared/corpus/wireshark-wiki coap-cbor.pcap frame 125 (token d19796ff)
    msg = coap.parse(h("4402abcdd19796ff") + h("c13c") + b"\xff" + h("a0"))
    assert msg.token == h("d19796ff") and msg.content_format == 60 and msg.payload == h("a0")


VALID = [
    encode(code=N.POST, uri_path=("rd",), uri_query=("ep=a",), content_format=40, payload=b"</3/0>"),
    encode(mtype=N.ACK, code=N.CONTENT, observe=3, content_format=110, payload=b'[{"n":"/3/0/0","vs":"x"}]'),
    encode(code=N.PUT, uri_path=("5", "0", "0"), block1=(2, True, 5), payload=b"\x00" * 64),
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.integers(min_value=0, max_value=200), st.binary(max_size=40))
def test_prefix_plus_garbage_gives_a_message_or_the_documented_error(valid, cut, tail):
    data = valid[:cut] + tail
    try:
        msg = coap.parse(data)
    except ParseError:
        return
    assert isinstance(msg, coap.Message)
    assert coap.parse(coap.serialize(msg)).options == tuple(sorted(msg.options, key=lambda o: o[0]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_else(data):
    try:
        coap.parse(data)
    except ParseError:
        pass
