"""The LwM2M conversation carried inside the DTLS captures, encoded by aiocoap.

aiocoap is the independent encoder here: none of lwm2m-monitor's own code builds these
bytes, so a capture decoded by our parsers checks them against another implementation.
A conversation is a list of steps (who sends, the CoAP datagram); both peers play it in
order, each sending its own steps and receiving the other's.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import aiocoap
from aiocoap import numbers

CLIENT = "client"  # the LwM2M client (device), which is also the DTLS client
SERVER = "server"  # the LwM2M server, which is also the DTLS server

TEXT_PLAIN = 0
LINK_FORMAT = 40
SENML_JSON = 110


@dataclass(frozen=True)
class Step:
    sender: str
    datagram: bytes
    summary: str  # one line, as tshark would name it (for README/diagnostics)


def _encode(mtype, mid: int, token: bytes, code, **options) -> bytes:
    # aiocoap wants the messaging layer to assign mtype/MID/token; we set them by hand
    # because a scripted exchange over our own sockets has no aiocoap messaging layer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        message = aiocoap.Message(code=code, **options)
        message.mtype = mtype
        message.mid = mid
        message.token = token
    return message.encode()


def registration(endpoint: str, registration_id: str, model: str) -> list[Step]:
    """Register, server-initiated Read/Write/Execute/Observe (+2 notifications), Update,
    De-register: the LwM2M operations the monitor must classify."""
    CON, ACK = numbers.CON, numbers.ACK
    c = numbers.codes.Code
    rd = ("rd", registration_id)
    obs_token = bytes.fromhex("0b5e7a11")
    steps = [
        Step(CLIENT, _encode(CON, 0x4A01, bytes.fromhex("c1a0"), c.POST, uri_path=("rd",),
                             uri_query=(f"ep={endpoint}", "lt=300", "lwm2m=1.1", "b=U"),
                             content_format=LINK_FORMAT, payload=b"</1/0>,</3/0>"),
             f"CON POST /rd?ep={endpoint}&lt=300&lwm2m=1.1&b=U"),
        Step(SERVER, _encode(ACK, 0x4A01, bytes.fromhex("c1a0"), c.CREATED, location_path=rd),
             f"ACK 2.01 Location-Path /rd/{registration_id}"),
        Step(SERVER, _encode(CON, 0x7101, bytes.fromhex("5e01"), c.GET, uri_path=("3", "0", "0")),
             "CON GET /3/0/0"),
        Step(CLIENT, _encode(ACK, 0x7101, bytes.fromhex("5e01"), c.CONTENT,
                             content_format=TEXT_PLAIN, payload=model.encode()),
             "ACK 2.05 text/plain"),
        Step(SERVER, _encode(CON, 0x7102, bytes.fromhex("5e02"), c.PUT, uri_path=("3", "0", "14"),
                             content_format=TEXT_PLAIN, payload=b"+02"),
             "CON PUT /3/0/14"),
        Step(CLIENT, _encode(ACK, 0x7102, bytes.fromhex("5e02"), c.CHANGED), "ACK 2.04"),
        Step(SERVER, _encode(CON, 0x7103, bytes.fromhex("5e03"), c.POST, uri_path=("3", "0", "4")),
             "CON POST /3/0/4 (Execute)"),
        Step(CLIENT, _encode(ACK, 0x7103, bytes.fromhex("5e03"), c.CHANGED), "ACK 2.04"),
        Step(SERVER, _encode(CON, 0x7104, obs_token, c.GET, uri_path=("3", "0"), observe=0,
                             accept=SENML_JSON),
             "CON GET /3/0 Observe=0"),
    ]
    for index, (battery, observe) in enumerate(((87, 11), (86, 12), (85, 13))):
        senml = ('[{"bn":"/3/0/","n":"0","vs":"%s"},{"n":"9","v":%d}]' % (model, battery)).encode()
        if index == 0:  # the Observe response piggy-backed on the ACK
            steps.append(Step(CLIENT, _encode(ACK, 0x7104, obs_token, c.CONTENT, observe=observe,
                                              content_format=SENML_JSON, payload=senml),
                              f"ACK 2.05 Observe={observe} SenML-JSON"))
        else:  # confirmable notifications, each ACKed by the server
            mid = 0x4A01 + index
            steps.append(Step(CLIENT, _encode(CON, mid, obs_token, c.CONTENT, observe=observe,
                                              content_format=SENML_JSON, payload=senml),
                              f"CON 2.05 Observe={observe} notification"))
            steps.append(Step(SERVER, _encode(ACK, mid, b"", c.EMPTY), "ACK (empty)"))
    steps += [
        Step(CLIENT, _encode(CON, 0x4A04, bytes.fromhex("c1a1"), c.POST, uri_path=rd,
                             uri_query=("lt=300",)),
             f"CON POST /rd/{registration_id}?lt=300 (Update)"),
        Step(SERVER, _encode(ACK, 0x4A04, bytes.fromhex("c1a1"), c.CHANGED), "ACK 2.04"),
        Step(CLIENT, _encode(CON, 0x4A05, bytes.fromhex("c1a2"), c.DELETE, uri_path=rd),
             f"CON DELETE /rd/{registration_id} (De-register)"),
        Step(SERVER, _encode(ACK, 0x4A05, bytes.fromhex("c1a2"), c.DELETED), "ACK 2.02"),
    ]
    return steps
