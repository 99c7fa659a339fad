"""Builds `lwm2m.operation` (and `coap.request`, `coap.anomaly`) documents.

The one place that writes the LwM2M/CoAP ECS field names; the pipeline hands it typed
facts. Key order is fixed by construction, so the same capture gives byte-identical NDJSON.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from parsers import coap

from .datagram import Datagram
from .ecs import Address, base_document, event_id, text_id
from .exchanges import Exchange


@dataclass(slots=True, init=False)
class OperationFacts:
    """Everything the pipeline learnt about one LwM2M operation. Its own `__init__`: one is built
    per operation, and a dataclass's generated one runs interpreted even in the compiled build."""

    exchange: Exchange
    action: str
    interface: str
    path: str
    client: Address
    server: Address
    security: str
    outcome: str
    endpoint: str | None
    paths: list[str]
    values: list[dict]
    credential_paths: list[str]
    registration: dict | None
    content_format: int | None
    decode_error: str | None
    links: list[str]
    body: dict | None                        # {"sha256":..., "size":..., "blocks":...} of block-wise bodies
    identity: dict | None                    # {"value":..., "type":...}
    matches_endpoint: bool | None
    layer_fields: list[dict]                 # tls/dtls/oscore facts of the carrier
    firmware_uri: str | None
    execute_arguments: str | None
    duplicate_from: str | None
    community_id: str | None                 # the flow's, computed once per flow

    def __init__(self, exchange: Exchange, action: str, interface: str, path: str, client: Address,
                 server: Address, security: str, outcome: str, endpoint: str | None = None,
                 layer_fields: list[dict] | None = None, community_id: str | None = None) -> None:
        self.exchange = exchange
        self.action = action
        self.interface = interface
        self.path = path
        self.client = client
        self.server = server
        self.security = security
        self.outcome = outcome
        self.endpoint = endpoint
        self.paths = []
        self.values = []
        self.credential_paths = []
        self.registration = None
        self.content_format = None
        self.decode_error = None
        self.links = []
        self.body = None
        self.identity = None
        self.matches_endpoint = None
        self.layer_fields = layer_fields if layer_fields is not None else []
        self.firmware_uri = None
        self.execute_arguments = None
        self.duplicate_from = None
        self.community_id = community_id


# event.category / event.type of every operation: shared lists (documents are read-only once built)
NETWORK_CATEGORY = ["network"]
PROTOCOL_TYPE = ["protocol"]


def outcome_of(ex: Exchange) -> str:
    if ex.reactive_cancel:
        return "success"
    if ex.response is None:
        return "failure" if ex.reset else "unknown"
    return "success" if ex.response.code >> 5 == 2 else "failure"


def _first_packet(ex: Exchange) -> Datagram:
    """Notifications and reactive cancels start with their own packet."""
    if (ex.is_notification or ex.reactive_cancel) and ex.resp_dgram is not None:
        return ex.resp_dgram
    return ex.req_dgram


def _last_packet(ex: Exchange) -> Datagram:
    return ex.resp_dgram if ex.resp_dgram is not None else ex.req_dgram


def operation_document(f: OperationFacts) -> dict:
    ex = f.exchange
    start, end = _first_packet(ex), _last_packet(ex)
    req = ex.request
    rmid = ex.response.mid if ex.response is not None else ""
    eid = text_id(f"lwm2m|{f.action}|{end.ts_ns}|{start.src_ip}|{start.src_port}|{start.dst_ip}|"
                  f"{start.dst_port}|{req.mid}|{req.token.hex()}|{rmid}")
    doc = base_document(dataset="lwm2m.operation", action=f.action, ts_ns=end.ts_ns, src=start.src,
                        dst=start.dst, client=f.client, server=f.server, observer=end.source,
                        live=end.live, eid=eid, outcome=f.outcome, community=f.community_id)
    doc["event"]["category"] = NETWORK_CATEGORY
    doc["event"]["type"] = PROTOCOL_TYPE
    if ex.resp_dgram is not None and not ex.is_notification and not ex.reactive_cancel:
        doc["event"]["duration"] = max(0, ex.resp_dgram.ts_ns - ex.req_dgram.ts_ns)
    lw: dict = {"interface": f.interface}
    if f.endpoint is not None:
        lw["endpoint"] = f.endpoint
    if not ex.orphan:
        lw["path"] = f.path                  # an orphan notification's path is unknown
    if f.paths:
        lw["paths"] = f.paths
    if f.values:
        lw["values"] = f.values
    if f.links:
        lw["links"] = f.links
    if f.credential_paths:
        lw["credentials"] = {"paths": f.credential_paths}
    if f.registration:
        lw["registration"] = f.registration
    if f.firmware_uri is not None:
        lw["firmware"] = {"package_uri": f.firmware_uri}
    if f.execute_arguments:
        lw["execute"] = {"arguments": f.execute_arguments}
    lw["security"] = f.security
    if f.identity is not None:
        ident = dict(f.identity)
        if f.matches_endpoint is not None:
            ident["matches_endpoint"] = f.matches_endpoint
        lw["identity"] = ident
    if f.decode_error:
        lw["decode_error"] = f.decode_error
    doc["lwm2m"] = lw
    doc["coap"] = coap_fields(ex, f.content_format)
    if f.body is not None:
        doc["file"] = {**doc.get("file", {}), "hash": {"sha256": f.body["sha256"]}, "size": f.body["size"]}
    layers = f.layer_fields
    for layer in layers:
        merge_layer(doc, layer, share=len(layers) == 1)
    return doc


def coap_fields(ex: Exchange, content_format: int | None) -> dict:
    req = ex.request
    if ex.orphan:                            # the request was never seen
        out: dict = {"token": req.token.hex(), "orphan_notification": True}
    else:
        out = {"type": req.type_name, "mid": req.mid, "token": req.token.hex(),
               "request": {"code": req.code_text}, "uri_path": "/" + "/".join(req.uri_path)}
    if req.uri_query:
        out["uri_query"] = list(req.uri_query)
    resp = ex.response
    if resp is not None:
        r: dict = {"code": resp.code_text, "type": resp.type_name, "mid": resp.mid}
        if resp.observe is not None:
            r["observe"] = resp.observe
        out["response"] = r
    elif ex.reset:
        out["response"] = {"type": "RST"}
    if content_format is not None:
        out["content_format"] = content_format
    if req.observe is not None and not ex.orphan:
        out["observe"] = req.observe
    if ex.retransmissions:
        out["retransmissions"] = ex.retransmissions
    if ex.request_blocks > 1:
        out["block1"] = {"blocks": ex.request_blocks}
    if ex.response_blocks > 1:
        out["block2"] = {"blocks": ex.response_blocks}
    if req.oscore is not None:
        out["oscore_option"] = True
    return out


def merge_layer(doc: dict, layer: dict, share: bool = False) -> None:
    """Carrier facts (tls.*, dtls.*, oscore.*); never overwrite what the operation set. With
    `share` (the only layer of an operation), a top-level namespace the document lacks is the
    layer's own dict, not a copy (documents are read-only once built); deeper merges copy."""
    for key, value in layer.items():
        if isinstance(value, dict):
            cur = doc.get(key, _ABSENT)
            if cur is _ABSENT:              # the common case: a namespace the operation left alone
                doc[key] = value if share else _copy_dicts(value)
            elif isinstance(cur, dict):
                merge_layer(cur, value)
        elif key not in doc:
            doc[key] = value


_ABSENT = object()


def _copy_dicts(tree: dict) -> dict:
    """What merging into an empty dict gives: nested dicts copied, other values shared."""
    return {k: _copy_dicts(v) if isinstance(v, dict) else v for k, v in tree.items()}


def coap_request_document(ex: Exchange, client: Address | None, server: Address | None,
                          security: str, layer_fields: list[dict]) -> dict:
    """A CoAP exchange that is not an LwM2M operation (other CoAP services on the wire)."""
    start, end = ex.req_dgram, _last_packet(ex)
    req = ex.request
    method = {1: "get", 2: "post", 3: "put", 4: "delete", 5: "fetch", 6: "patch", 7: "ipatch"}.get(req.code, req.code_text)
    eid = event_id("coap", method, end.ts_ns, start.src, start.dst, req.mid, req.token.hex())
    doc = base_document(dataset="coap.request", action=method, ts_ns=end.ts_ns, src=start.src, dst=start.dst,
                        client=client, server=server, observer=end.source, live=end.live, eid=eid,
                        outcome=outcome_of(ex))
    cf = (ex.response.content_format if ex.response is not None else None) or req.content_format
    doc["coap"] = coap_fields(ex, cf)
    doc["coap"]["security"] = security
    if ex.response_blocks > 1 or ex.request_blocks > 1:
        body = ex.response_body if ex.response_blocks > 1 else ex.request_body
        doc["file"] = {**doc.get("file", {}), "hash": {"sha256": hashlib.sha256(body).hexdigest()}, "size": len(body)}
    for layer in layer_fields:
        merge_layer(doc, layer)
    return doc


def anomaly_document(*, dgram, reason: str, detail: str, count: int, layer: str = "coap") -> dict:
    eid = event_id("anomaly", layer, reason, dgram.ts_ns, dgram.src, dgram.dst)
    doc = base_document(dataset=f"{layer}.anomaly", action=reason, ts_ns=dgram.ts_ns, src=dgram.src,
                        dst=dgram.dst, client=None, server=None, observer=dgram.source, live=dgram.live,
                        eid=eid, kind="event")
    doc["event"]["reason"] = detail
    doc["anomaly"] = {"name": reason, "layer": layer, "count": count, "frame": dgram.frame}
    return doc
