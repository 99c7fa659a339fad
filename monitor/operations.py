"""Which LwM2M operation an exchange is (LwM2M TS 1.0-1.2 Transport §6, Core §6).

A table from (who sent it, method, path shape, options) to the operation; the LwM2M client
is whoever sends `POST /rd`, `POST /bs` or `POST /dp` (or starts DTLS), never simply the
requester, since servers send most requests.
"""
from __future__ import annotations

from dataclasses import dataclass

from parsers import coap

INTERFACE = {
    "bootstrap-request": "bootstrap", "bootstrap-read": "bootstrap", "bootstrap-write": "bootstrap",
    "bootstrap-discover": "bootstrap", "bootstrap-delete": "bootstrap", "bootstrap-finish": "bootstrap",
    "bootstrap-pack-request": "bootstrap",
    "register": "registration", "update": "registration", "deregister": "registration",
    "read": "device-management", "read-composite": "device-management", "write": "device-management",
    "write-composite": "device-management", "write-attributes": "device-management",
    "execute": "device-management", "create": "device-management", "delete": "device-management",
    "discover": "device-management",
    "observe": "information-reporting", "observe-composite": "information-reporting",
    "cancel-observation": "information-reporting", "notify": "information-reporting",
    "send": "information-reporting",
}

LINK_FORMAT = 40
# FETCH with Observe 0 / 1 (LwM2M 1.1 composite observation), else Read-Composite
_FETCH_ACTIONS: dict[int | None, str] = {0: "observe-composite", 1: "cancel-observation"}

# First Uri-Path segment of requests only an LwM2M client sends.
CLIENT_ROOTS = {"rd", "bs", "dp", "bspack"}
WRITE_ATTRIBUTE_NAMES = {"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax", "dim"}


@dataclass(slots=True, init=False)
class Operation:
    action: str | None          # None: CoAP traffic that is not an LwM2M operation
    interface: str | None
    path: str                   # LwM2M path (/O/I/R/RI) or "/" ; for client requests the CoAP path
    client_request: bool        # sent by the LwM2M client

    # one per exchange: a compiled __init__ (a frozen dataclass's runs interpreted, a call per field)
    def __init__(self, action: str | None, interface: str | None, path: str, client_request: bool) -> None:
        self.action = action
        self.interface = interface
        self.path = path
        self.client_request = client_request


def lwm2m_path(segments: tuple[str, ...]) -> str | None:
    """`('3','0','13')` -> `/3/0/13`; None when the segments are not an object path."""
    if not segments or (len(segments) == 1 and segments[0] == ""):
        return "/"
    if len(segments) > 4:
        return None
    canonical = True                 # ASCII digits without leading zeros are already int text
    for s in segments:
        if not s.isdigit():
            return None
        if not s.isascii() or (s[0] == "0" and len(s) > 1):
            canonical = False
    if canonical:
        return "/" + "/".join(segments)
    return "/" + "/".join(str(int(s)) for s in segments)


def strip_alternate(segments: tuple[str, ...], alternate: tuple[str, ...]) -> tuple[str, ...]:
    if alternate and segments[:len(alternate)] == alternate:
        return segments[len(alternate):]
    return segments


def is_client_request(msg: coap.Message) -> bool:
    """Only LwM2M clients send these; bootstrap-finish (POST /bs without ep) is the server's."""
    path = msg.uri_path
    if not path or path[0] not in CLIENT_ROOTS:
        return False
    return path[0] != "bs" or _has_query(msg, "ep")


def classify(msg: coap.Message, *, bootstrap_flow: bool, alternate: tuple[str, ...] = ()) -> Operation:
    """Classify a request. `bootstrap_flow`: the peer is a bootstrap server for this client."""
    segs = msg.uri_path
    code = msg.code
    if segs and segs[0] in CLIENT_ROOTS:
        root = segs[0]
        text = "/" + "/".join(segs)
        if root == "bs" and code == coap.POST:
            if _has_query(msg, "ep"):
                return Operation("bootstrap-request", "bootstrap", text, True)
            return Operation("bootstrap-finish", "bootstrap", "/", False)     # server -> client
        if root == "bspack" and code in (coap.GET, coap.FETCH):
            return Operation("bootstrap-pack-request", "bootstrap", text, True)
        if root == "dp" and code == coap.POST:
            return Operation("send", "information-reporting", "/", True)
        if root == "rd":
            if len(segs) == 1 and code == coap.POST:
                return Operation("register", "registration", text, True)
            if len(segs) >= 2 and code == coap.POST:
                return Operation("update", "registration", text, True)
            if len(segs) >= 2 and code == coap.DELETE:
                return Operation("deregister", "registration", text, True)
        return Operation(None, None, text, True)
    path = lwm2m_path(strip_alternate(segs, alternate))
    if path is None:
        return Operation(None, None, "/" + "/".join(segs), False)
    depth = 0 if path == "/" else path.count("/")
    observe = msg.observe
    if bootstrap_flow:
        if code == coap.GET:
            action = "bootstrap-discover" if msg.accept == LINK_FORMAT else "bootstrap-read"
        elif code == coap.PUT:
            action = "bootstrap-write"
        elif code == coap.DELETE:
            action = "bootstrap-delete"
        else:
            action = None
        return Operation(action, "bootstrap" if action else None, path, False)
    if code == coap.GET:
        if observe == 0:
            action = "observe"
        elif observe == 1:
            action = "cancel-observation"
        elif msg.accept == LINK_FORMAT:
            action = "discover"
        else:
            action = "read"
    elif code == coap.FETCH:
        action = _FETCH_ACTIONS.get(observe, "read-composite")
    elif code == coap.IPATCH:
        action = "write-composite"
    elif code == coap.PUT:
        if not msg.payload and _is_attribute_query(msg):
            action = "write-attributes"
        else:
            action = "write"
    elif code == coap.POST:
        if depth == 1:
            action = "create"
        elif depth == 3 or (depth == 4 and not msg.has_option(coap.CONTENT_FORMAT)):
            action = "execute"
        else:
            action = "write"                 # partial update of an instance
    elif code == coap.DELETE:
        action = "delete"
    else:
        action = None
    return Operation(action, INTERFACE.get(action) if action else None, path, False)


def _has_query(msg: coap.Message, name: str) -> bool:
    prefix = name + "="
    return any(q.startswith(prefix) for q in msg.uri_query)


def _is_attribute_query(msg: coap.Message) -> bool:
    queries = msg.uri_query
    return bool(queries) and all(q.split("=", 1)[0] in WRITE_ATTRIBUTE_NAMES for q in queries)


def query_params(msg: coap.Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for q in msg.uri_query:
        name, _, value = q.partition("=")
        out[name] = value
    return out
