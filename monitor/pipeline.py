"""The sans-IO pipeline: `feed(datagram) -> documents`, `close() -> documents`.

UDP → (DTLS) → CoAP → (OSCORE) → exchange matching → LwM2M operation → event documents →
rules. Capture sources (files, live) and sinks live outside; the same code serves both.
The documents returned are read-only: some namespaces are shared between documents (see
`monitor.ecs`), and the rule engine's folded alerts hold on to documents it has seen.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator

from parsers import coap, linkformat
from parsers.dtls import looks_like_dtls
from parsers.errors import ParseError

from . import lwm2m_events as events
from .datagram import Datagram
from .ecs import Address
from .exchanges import PLAIN, Carrier, Exchange, ExchangeMatcher, FlowState
from .keys import KeyStore, OscoreContextConfig
from .objects import is_secret_path
from .operations import INTERFACE, classify, is_client_request, lwm2m_path, query_params
from .oscore_tracker import MALFORMED_PLAINTEXT
from .registrations import DEFAULT_LIFETIME, Registration, Registry
from .secret_screen import SecretScreen

LWM2M_SERVER_PORTS = frozenset({5683, 5684, 5685, 5686})
FLOW_IDLE_NS = 600 * 1_000_000_000
SWEEP_EVERY_NS = 10 * 1_000_000_000
ANOMALY_DOCS_PER_REASON = 5          # per flow; the rest are counted (rate limit)
MAX_INLINE_OPAQUE = 256              # bytes of an opaque value shown as hex; larger ones hashed
VALUE_CACHE_SIZE = 8192
MAX_ENDPOINT_SUMMARIES = 100_000
OTHER_ENDPOINTS = "(other endpoints)"
MAX_ANOMALY_KEYS = 65_536
# Operations whose values travel in the request body (the others: in the response).
REQUEST_BODY_ACTIONS = frozenset({"write", "write-composite", "create", "bootstrap-write", "send"})
# Operations whose payload provisions Security (0) / OSCORE (21) instances in clear.
HARVEST_ACTIONS = frozenset({"bootstrap-write", "bootstrap-pack-request", "write", "create"})
VALUE_CACHE_MAX_BODY = 512


@dataclass
class _DecodedValues:
    """Event values of one payload, as the event builder wants them."""

    values: list[dict] = field(default_factory=list)
    credential_paths: list[str] = field(default_factory=list)
    instances: dict[str, dict[int, object]] = field(default_factory=dict)   # /0/i, /21/i resources
    firmware_uri: str | None = None
    error: str | None = None

CONTENT_FORMAT_TEXT = 0
CONTENT_FORMAT_LINK = 40
_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,15}")     # a Uri-Query parameter name


@dataclass
class PipelineStats:
    datagrams: int = 0
    dtls_datagrams: int = 0
    dtls_non_coap: int = 0
    coap_messages: int = 0
    other_udp: int = 0
    decode_errors: Counter = field(default_factory=Counter)     # "coap.malformed", "payload", ...
    operations: int = 0
    coap_exchanges: int = 0
    oscore_messages: int = 0
    oscore_undecrypted: int = 0
    flows_evicted: int = 0
    harvested_psks: int = 0
    harvested_oscore: int = 0
    documents: int = 0
    alerts: int = 0


@dataclass
class PipelineConfig:
    keys: KeyStore = field(default_factory=KeyStore)
    objects: Any = None           # monitor.objects.ObjectModel
    rules: Any = None             # monitor.rule_engine.RuleEngine
    max_flows: int = 65_536
    # Ports where every non-DTLS datagram is taken as CoAP (failures are reported anomalies);
    # elsewhere CoAP is recognised by content and non-CoAP UDP is ignored silently.
    coap_ports: frozenset[int] = frozenset({5683, 5685, 5783})
    coaps_ports: frozenset[int] = frozenset({5684, 5686})
    harvest: bool = True
    # Called with (datagram, message) for every CoAP message parsed, after DTLS and before
    # OSCORE; the differential tests against Wireshark use it. None on the hot path.
    coap_observer: Any = None


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.keys = self.config.keys
        self.stats = PipelineStats()
        self.matcher = ExchangeMatcher()
        self.registry = Registry()
        self.flows: OrderedDict[tuple, FlowState] = OrderedDict()
        # the last entry of `flows` and its key (shared per flow, compared by identity: about
        # 40 % of datagrams follow one of the same flow); None after anything is removed
        self._newest_key: tuple | None = None
        self._newest_flow: FlowState | None = None
        self.endpoint_stats: dict[str, dict[str, int]] = {}       # endpoint -> action/_errors/_security:* -> count
        self._anomaly_counts: OrderedDict[tuple, int] = OrderedDict()
        self._next_sweep = 0
        self._evicted: list[dict] = []
        self._coap_ports = self.config.coap_ports
        self._coaps_ports = self.config.coaps_ports
        self._value_cache: dict[tuple, _DecodedValues] = {}
        self._value_cache_generation = 0          # the SecretScreen generation its values were screened in
        self._model = self.config.objects
        if self._model is None:
            from .objects import ObjectModel
            self._model = ObjectModel.load()
        from .dtls_tracker import DtlsTracker
        from .oscore_tracker import OscoreTracker
        self.dtls = DtlsTracker(self.keys)
        self.oscore = OscoreTracker(self.keys)
        from .payload_decoder import decode_payload, redact
        self._decode = decode_payload
        self._redact = redact
        self._screen = SecretScreen(self.keys)

    # --- entry points -------------------------------------------------------------------
    def feed(self, dgram: Datagram) -> list[dict]:
        self.stats.datagrams += 1
        out: list[dict] = []
        ts = dgram.ts_ns
        if ts >= self._next_sweep:
            if self._next_sweep:
                self._sweep(ts, out)
            self._next_sweep = ts + SWEEP_EVERY_NS
        payload = dgram.payload
        if looks_like_dtls(payload):
            self.stats.dtls_datagrams += 1
            res = self.dtls.feed(dgram)
            out.extend(res.documents)
            for name in res.anomalies:
                self.stats.decode_errors[name] += 1
            if res.plaintexts:
                session = res.session
                carrier = Carrier("dtls", session.lwm2m_fields() if session is not None else None)
                flow = self._flow(dgram)
                if session is not None and flow.client is None:
                    flow.client = session.client
                coaps_port = dgram.dst_port in self._coaps_ports or dgram.src_port in self._coaps_ports
                for plain in res.plaintexts:
                    if coaps_port or (coap.looks_like_coap(plain) and self._parses(plain)):
                        self._coap(dgram, plain, carrier, out, flow)
                    else:
                        self.stats.dtls_non_coap += 1        # other applications over DTLS
        elif dgram.dst_port in self._coap_ports or dgram.src_port in self._coap_ports:
            self._coap(dgram, payload, PLAIN, out)         # CoAP port: anything else is malformed
        elif coap.looks_like_coap(payload) and self._parses(payload):
            self._coap(dgram, payload, PLAIN, out)         # CoAP found by content on another port
        else:
            self.stats.other_udp += 1
        if self._evicted:
            out.extend(self._evicted)
            self._evicted = []
        return self._finish(out)

    def close(self) -> list[dict]:
        docs: list[dict] = []
        for batch in self.close_batches():
            docs.extend(batch)
        return docs

    def close_batches(self, size: int = 256) -> Iterator[list[dict]]:
        """End of input: what every flow, session and rule fold still holds, in the order of
        `close()`, about `size` documents at a time (a capture's end can hold one pending
        exchange or folded alert per client; they go out as they are made)."""
        out: list[dict] = []
        flows = self.flows
        self._newest_key = self._newest_flow = None
        while flows:
            _, flow = flows.popitem(last=False)
            for ex in self.matcher.drain(flow):
                self._emit(flow, ex, out)
            if len(out) >= size:
                yield self._finish(out)
                out = []
        out.extend(self.dtls.close())
        out.extend(self.oscore.close())
        if out:
            yield self._finish(out)
        rules = self.config.rules
        if rules is not None:
            for tail in rules.close_batches(size):
                self.stats.alerts += len(tail)
                self.stats.documents += len(tail)
                yield tail

    def _finish(self, docs: list[dict]) -> list[dict]:
        if not docs:
            return docs
        rules = self.config.rules
        self.stats.documents += len(docs)
        if rules is None:
            return docs
        out: list[dict] = []
        for doc in docs:
            out.append(doc)
            alerts = rules.process(doc)
            if alerts:
                self.stats.alerts += len(alerts)
                self.stats.documents += len(alerts)
                out.extend(alerts)
        return out

    # --- flows --------------------------------------------------------------------------
    def _flow(self, dgram: Datagram) -> FlowState:
        key = dgram.flow
        if key is self._newest_key:          # the flow of the datagram before (a reply): already last
            newest = self._newest_flow
            assert newest is not None
            return newest
        flow = self.flows.get(key)
        if flow is None:
            flow = FlowState(key[0], key[1])
            self.flows[key] = flow
            if len(self.flows) > self.config.max_flows:
                _, old = self.flows.popitem(last=False)
                self.stats.flows_evicted += 1
                for ex in self.matcher.drain(old):       # an evicted flow emits what it held
                    self._emit(old, ex, self._evicted)
        else:
            self.flows.move_to_end(key)
        self._newest_key, self._newest_flow = key, flow
        return flow

    def _sweep(self, now: int, out: list[dict]) -> None:
        """Expire unanswered requests and idle flows; everything held is emitted, not dropped."""
        idle = []
        for key, flow in self.flows.items():
            for ex in self.matcher.expire(flow, now):
                self._emit(flow, ex, out)
            if now - flow.last_ts > FLOW_IDLE_NS:
                idle.append(key)
        if idle:
            self._newest_key = self._newest_flow = None
        for key in idle:
            flow = self.flows.pop(key)
            for ex in self.matcher.drain(flow):
                self._emit(flow, ex, out)
        self.registry.sweep(now)

    def tick(self, now_ns: int) -> list[dict]:
        """Time passes with no packet (live, quiet link): expire what is due, emit what it held."""
        out: list[dict] = []
        if now_ns >= self._next_sweep:
            self._sweep(now_ns, out)
            self._next_sweep = now_ns + SWEEP_EVERY_NS
        return self._finish(out)

    def reconfigure(self, config: PipelineConfig) -> list[dict]:
        """New keys, objects and rules (SIGHUP) without losing state: keys harvested from the
        wire so far are kept; the old rule engine's pending folded alerts are returned."""
        old = self.keys
        keys = config.keys
        for psk in old.psks.values():
            if psk.source == "harvested":
                keys.add_harvested_psk(psk.identity, psk.key)
        for ctx in old.oscore:
            if ctx.source == "harvested":
                keys.add_harvested_oscore(ctx)
        tail: list[dict] = []
        if self.config.rules is not None:
            tail = self.config.rules.close()
            self.stats.alerts += len(tail)
            self.stats.documents += len(tail)
        config.max_flows = self.config.max_flows
        config.coap_ports, config.coaps_ports = self.config.coap_ports, self.config.coaps_ports
        config.harvest = self.config.harvest
        self.config = config
        self.keys = keys
        self.dtls.keys = keys
        self.oscore.reload(keys)
        self._screen.keys = keys
        if config.objects is not None:
            self._model = config.objects
            self._value_cache.clear()
        return tail

    def state_sizes(self) -> dict[str, int]:
        """Sizes of the bounded tables and their eviction counters (monitor.stats)."""
        reg = self.registry
        return {
            "flows": len(self.flows), "flows_evicted": self.stats.flows_evicted,
            "pending_requests": sum(len(f.pending) for f in self.flows.values()),
            "coap_dedup_entries": self.matcher.dedup_entries,
            "registrations": len(reg.by_client), "registrations_expired": reg.stats.expired,
            "registrations_evicted": reg.stats.evicted,
            "dtls_sessions": len(self.dtls), "dtls_evictions": self.dtls.stats.get("evictions", 0),
            "oscore_contexts": len(self.oscore),
            "oscore_context_evictions": self.oscore.stats.get("context_evictions", 0),
            "endpoints": len(self.endpoint_stats), "anomaly_keys": len(self._anomaly_counts),
        }

    # --- CoAP ---------------------------------------------------------------------------
    def _coap(self, dgram: Datagram, data: bytes, carrier: Carrier, out: list[dict],
              flow: FlowState | None = None) -> None:
        """One CoAP message; `flow` when the caller already looked it up (DTLS)."""
        try:
            msg = coap.parse(data)
        except ParseError as exc:
            self._anomaly(dgram, f"coap-{exc.kind}", str(exc), out)
            return
        self.stats.coap_messages += 1
        if self.config.coap_observer is not None:
            self.config.coap_observer(dgram, msg)
        if flow is None:
            flow = self._flow(dgram)
        if msg.is_request and flow.client is None and is_client_request(msg):
            flow.client = dgram.src
        if msg.code == 0 and msg.type in (coap.CON, coap.NON):
            return                                      # CoAP ping / invalid empty: nothing to match
        if msg.oscore is not None and not msg.is_empty:
            inner, carrier = self._unprotect(dgram, msg, carrier, flow, out)
            if inner is None:
                return
            msg = inner
        for ex in self.matcher.feed(flow, msg, dgram, carrier):
            self._emit(flow, ex, out)

    def _unprotect(self, dgram: Datagram, msg: coap.Message, carrier: Carrier, flow: FlowState,
                   out: list[dict]) -> tuple[coap.Message | None, Carrier]:
        self.stats.oscore_messages += 1
        from_client = None if flow.client is None else dgram.src == flow.client
        res = self.oscore.unprotect(dgram, msg, from_client)
        out.extend(res.documents)
        if res.inner is None:
            self.stats.oscore_undecrypted += 1
            if res.error == MALFORMED_PLAINTEXT:           # authentic, yet no valid CoAP inside
                self._anomaly(dgram, "oscore-malformed-plaintext", "an OSCORE message verified, but its "
                              "decrypted inner CoAP message is malformed", out)
            return None, carrier
        if flow.client is None and res.from_client is not None:
            flow.client = dgram.src if res.from_client else dgram.dst
        fields = [carrier.fields] if carrier.fields else []
        fields.append(res.lwm2m_fields())
        merged: dict = {}
        for f in fields:
            events.merge_layer(merged, f)
        security = "dtls+oscore" if carrier.security == "dtls" else "oscore"
        return res.inner, Carrier(security, merged)

    @staticmethod
    def _parses(payload: bytes) -> bool:
        try:
            coap.parse(payload)
        except ParseError:
            return False
        return True

    def _anomaly(self, dgram: Datagram, reason: str, detail: str, out: list[dict]) -> None:
        self.stats.decode_errors[reason] += 1
        key = (dgram.flow, reason)
        counts = self._anomaly_counts
        n = counts.get(key, 0) + 1
        counts[key] = n
        if len(counts) > MAX_ANOMALY_KEYS:
            counts.popitem(last=False)               # oldest flow/reason forgets its rate limit
        if n <= ANOMALY_DOCS_PER_REASON or n % 1000 == 0:
            out.append(events.anomaly_document(dgram=dgram, reason=reason, detail=detail, count=n))

    # --- LwM2M --------------------------------------------------------------------------
    def _roles(self, flow: FlowState, ex: Exchange) -> tuple[Address, Address]:
        requester, responder = ex.requester, ex.responder
        if flow.client is not None:
            client = flow.client
        elif is_client_request(ex.request):
            client = requester
        elif self.registry.by_client.get(requester) is not None:
            client = requester
        elif self.registry.by_client.get(responder) is not None:
            client = responder
        elif requester[1] in LWM2M_SERVER_PORTS and responder[1] not in LWM2M_SERVER_PORTS:
            client = responder
        elif lwm2m_path(ex.request.uri_path) is not None:
            client = responder                          # object paths are served by clients
        else:
            client = requester
        server = responder if client == requester else requester
        return client, server

    def _emit(self, flow: FlowState, ex: Exchange, out: list[dict]) -> None:
        client, server = self._roles(flow, ex)
        req = ex.request
        now = (ex.resp_dgram or ex.req_dgram).ts_ns
        reg = self.registry.lookup(client, now)
        bootstrap_flow = self.registry.is_bootstrap_server(client, server)
        op = classify(req, bootstrap_flow=bootstrap_flow, alternate=reg.alternate if reg else ())
        carrier = ex.carrier
        layer_fields = [carrier.fields] if carrier.fields else []
        if op.action is None:
            self.stats.coap_exchanges += 1
            doc = events.coap_request_document(ex, client, server, carrier.security, layer_fields)
            if self._screen.active():
                if req.uri_query:
                    self._screen_query(doc, None)
                self._screen_path(doc, req, None)
            out.append(doc)
            return
        action = op.action
        if ex.is_notification:
            action = "notify"
        elif ex.reactive_cancel:
            action = "cancel-observation"
        facts = events.OperationFacts(
            exchange=ex, action=action, interface=INTERFACE[action], path=op.path,
            client=client, server=server, security=carrier.security, outcome=events.outcome_of(ex),
            layer_fields=layer_fields, community_id=flow.community_id)
        if op.client_request:
            facts.path = "/"
        self._registration(facts, reg, bootstrap_flow)
        self._payload(facts)
        self._identity(facts)
        self.stats.operations += 1
        ep = facts.endpoint or "(unknown)"
        counts = self.endpoint_stats.get(ep)
        if counts is None:
            if len(self.endpoint_stats) >= MAX_ENDPOINT_SUMMARIES:
                ep = OTHER_ENDPOINTS                 # the summary is bounded; events are not
                counts = self.endpoint_stats.get(ep)
            if counts is None:
                counts = self.endpoint_stats[ep] = {}
        # plain dicts: `[]` on a dict subclass (Counter) goes through a method lookup every time
        counts[action] = counts.get(action, 0) + 1
        if facts.outcome == "failure":
            counts["_errors"] = counts.get("_errors", 0) + 1
        sec = "_security:" + facts.security
        counts[sec] = counts.get(sec, 0) + 1
        doc = events.operation_document(facts)
        if self._screen.active():
            if req.uri_query:
                self._screen_query(doc, facts)
            self._screen_path(doc, req, facts)
        out.append(doc)

    def _screen_query(self, doc: dict, facts: events.OperationFacts | None) -> None:
        """Uri-Query options that hold a key the run knows (a vendor's `?psk=...`) are shown as
        their name and the key's digest, and count as credentials sent in clear."""
        queries = doc["coap"].get("uri_query")
        if not queries:
            return
        screen = self._screen
        hits = []
        for i, q in enumerate(queries):
            raw = q.encode("utf-8", "surrogateescape")
            if screen.hits(raw, q):
                # the parameter's name is kept when it is one (not base64 text up to its padding)
                name = q.split("=", 1)[0] if "=" in q else ""
                if not _QUERY_NAME.fullmatch(name) or screen.hits(name.encode(), name):
                    name = ""
                queries[i] = (name + "=" if name else "") + "redacted sha256_8=" + self._redact(raw)["sha256_8"]
                hits.append(name)
        if not hits or facts is None:
            return
        lw = doc["lwm2m"]
        for v in lw.get("values") or ():              # write-attributes: the query is the value
            if v.get("type") == "attributes":
                v["value"] = "&".join(queries)
        path = doc["coap"].get("uri_path", "")
        cred = lw.setdefault("credentials", {}).setdefault("paths", [])
        cred.extend(f"{path}?{name}" for name in hits)

    def _screen_path(self, doc: dict, req: coap.Message, facts: events.OperationFacts | None) -> None:
        """Uri-Path segments, and those of a registration's location (the register reply's
        Location-Path), that hold a key the run knows (a vendor's `/prov/<psk>`) are shown as
        the key's digest wherever the document has the path, and count as credentials sent in
        clear. The caller has checked `self._screen.active()`."""
        lw = doc.get("lwm2m") if facts is not None else None
        reg = lw.get("registration") if lw is not None else None
        location = reg.get("location") if reg else None
        shown: dict[str, str] = {}
        self._screen_segments(req.uri_path, shown)
        if location:
            self._screen_segments(location.split("/"), shown)
        if not shown:
            return

        def clean(path: str) -> str:
            return "/".join(shown.get(s, s) for s in path.split("/"))

        flagged: list[str] = []
        coap_ns = doc["coap"]
        path = coap_ns.get("uri_path")
        if path is not None and clean(path) != path:
            coap_ns["uri_path"] = clean(path)
            flagged.append(coap_ns["uri_path"])
        if lw is None:
            return
        if "path" in lw:
            lw["path"] = clean(lw["path"])
        if reg and location and clean(location) != location:
            lw["registration"] = {**reg, "location": clean(location)}
            flagged.append(lw["registration"]["location"])
        cred = lw.setdefault("credentials", {}).setdefault("paths", [])
        cred.extend(p for p in dict.fromkeys(flagged) if p not in cred)

    def _screen_segments(self, segments: tuple[str, ...] | list[str], shown: dict[str, str]) -> None:
        """Adds the segments that hold a known key to `shown`, with their redacted form. Most
        segments (`3`, `0`, `rd`) are shorter than any secret: those are not searched."""
        limit = self._screen.shortest
        for seg in segments:
            # a non-ASCII character is up to 4 bytes
            if (len(seg) >= limit or (len(seg) * 4 >= limit and not seg.isascii())) and seg not in shown:
                text = self._screen_text(seg)
                if text != seg:
                    shown[seg] = text

    def _screen_text(self, text: str) -> str:
        """`text` itself, or `redacted sha256_8=...` when it holds a key the run knows (the
        caller has checked `self._screen.active()`)."""
        raw = text.encode("utf-8", "surrogateescape")
        if self._screen.hits(raw, text):
            return "redacted sha256_8=" + self._redact(raw)["sha256_8"]
        return text

    def _query_params(self, req: coap.Message) -> dict[str, str]:
        """`query_params`, a value that holds a known key shown as its digest: the endpoint name
        and registration facts are copies of these values (`_screen_query` sees to the query)."""
        q = query_params(req)
        if q and self._screen.active():
            for name, value in q.items():
                q[name] = self._screen_text(value)
        return q

    def _registration(self, f: events.OperationFacts, reg: Registration | None, bootstrap_flow: bool) -> None:
        ex, req = f.exchange, f.exchange.request
        resp = ex.response
        now = (ex.resp_dgram or ex.req_dgram).ts_ns
        ok = resp is not None and resp.code >> 5 == 2
        action = f.action
        if action == "bootstrap-request":
            q = self._query_params(req)
            f.endpoint = q.get("ep")
            if f.endpoint:
                self.registry.note_bootstrap(f.endpoint, f.client, f.server)
            return
        if action == "register":
            q = self._query_params(req)
            f.endpoint = q.get("ep")
            info = self._registration_fields(req, q)
            location = "/" + "/".join(resp.location_path) if resp is not None and ok and resp.location_path else None
            if location:
                info = {"location": location, **info}
            f.registration = info
            if f.endpoint:
                other = self.registry.others_live(f.endpoint, f.client, now)
                if other is not None:
                    f.duplicate_from = f"{other.client[0]}:{other.client[1]}"
                    f.registration["duplicate_from"] = f.duplicate_from
            if ok and f.endpoint:
                new = Registration(endpoint=f.endpoint, client=f.client, server=f.server, location=location,
                                   lifetime=int(info.get("lifetime", DEFAULT_LIFETIME)),
                                   binding=info.get("binding"), version=info.get("version"),
                                   objects=info.get("objects", []), alternate=self._alternate(req),
                                   registered_ns=now, updated_ns=now)
                self.registry.register(new)
            return
        if action in ("update", "deregister"):
            location = "/" + "/".join(req.uri_path)
            found = self.registry.find_location(f.server, location) or reg
            if found is not None:
                f.endpoint = found.endpoint
                if action == "update":
                    q = self._query_params(req)
                    info = self._registration_fields(req, q)
                    f.registration = {"location": location, **info}
                    if ok:
                        if "lifetime" in info:
                            found.lifetime = int(info["lifetime"])
                        if "binding" in info:
                            found.binding = info["binding"]
                        if info.get("objects"):
                            found.objects = info["objects"]
                        self.registry.update(found, f.client, now)
                elif ok:
                    f.registration = {"location": location}
                    self.registry.deregister(found)
            else:
                f.registration = {"location": location}
            return
        if f.interface == "bootstrap" or bootstrap_flow:
            f.endpoint = self.registry.bootstrap_endpoint(f.client)
            if action == "bootstrap-finish" and ok:
                self.registry.end_bootstrap(f.client)
            return
        if reg is not None:
            f.endpoint = reg.endpoint

    @staticmethod
    def _registration_fields(req: coap.Message, q: dict[str, str]) -> dict:
        info: dict = {}
        if "lt" in q and q["lt"].isdigit():
            info["lifetime"] = int(q["lt"])
        if "b" in q:
            info["binding"] = q["b"]
        if "lwm2m" in q:
            info["version"] = q["lwm2m"]
        if "sms" in q:
            info["sms"] = q["sms"]
        if "Q" in q:
            info["queue_mode"] = True
        if req.payload:
            objects = [link for link in _link_targets(req.payload) if lwm2m_path(tuple(link.strip("/").split("/"))) not in (None, "/")]
            if objects:
                info["objects"] = objects
        return info

    @staticmethod
    def _alternate(req: coap.Message) -> tuple[str, ...]:
        """`</lwm2m>;rt="oma.lwm2m"` announces an alternate path for object URIs."""
        for link in req.payload.split(b","):
            if b'rt="oma.lwm2m"' in link or b"rt=oma.lwm2m" in link:
                target = link.split(b">", 1)[0].strip().lstrip(b"<").decode("utf-8", "replace")
                segs = tuple(s for s in target.split("/") if s)
                return segs
        return ()

    def _payload(self, f: events.OperationFacts) -> None:
        ex, req, resp = f.exchange, f.exchange.request, f.exchange.response
        action = f.action
        if action in ("register", "update", "deregister", "bootstrap-request", "bootstrap-finish",
                      "cancel-observation", "delete", "bootstrap-delete", "write-attributes"):
            f.content_format = req.content_format if req.payload else (resp.content_format if resp is not None else None)
            if action == "write-attributes":
                f.values = [{"path": f.path, "type": "attributes", "value": "&".join(req.uri_query)}]
            return
        if action == "execute":
            f.content_format = req.content_format
            if ex.request_body:
                if is_secret_path(f.path, self._model) or self._screened(ex.request_body):
                    # an Execute aimed at a key resource (or carrying a known key): its body is
                    # treated as that key's value
                    f.execute_arguments = "redacted sha256_8=" + self._redact(ex.request_body)["sha256_8"]
                    f.credential_paths = [f.path]
                else:
                    f.execute_arguments = ex.request_body.decode("utf-8", "replace")
            return
        from_request = action in REQUEST_BODY_ACTIONS
        if action in ("read-composite", "observe-composite") and ex.request_body:
            decoded = self._decode(ex.request_body, req.content_format, "/", self._model)
            f.paths = list(decoded.paths) or [v.path for v in decoded.values]
        if from_request:
            body, cf = ex.request_body, req.content_format
        else:
            if resp is None:
                return
            body, cf = ex.response_body, resp.content_format
        f.content_format = cf
        blocks = ex.request_blocks if from_request else ex.response_blocks
        if blocks > 1:
            digest = hashlib.sha256(body).hexdigest()
            f.body = {"sha256": digest, "size": len(body), "blocks": blocks}
        if not body:
            return
        if blocks > 1 and cf in (None, 42):
            # firmware images and other large opaque bodies are hashed, not decoded or stored
            f.values = [{"path": f.path, "type": "opaque", "value": {"sha256": digest, "size": len(body)}}]
            return
        if cf == CONTENT_FORMAT_LINK or action in ("discover", "bootstrap-discover"):
            f.links = _link_targets(body)
            return
        dv = self._decoded_values(body, cf, "/" if ex.orphan else f.path)
        if dv.error:
            f.decode_error = dv.error
            self.stats.decode_errors["payload-no-request" if ex.orphan else "payload"] += 1
        f.values = list(dv.values)
        f.credential_paths = list(dv.credential_paths)
        f.firmware_uri = dv.firmware_uri
        if action in ("send", "write-composite") and not f.paths:
            f.paths = [v["path"] for v in dv.values]
        if dv.instances and self.config.harvest and action in HARVEST_ACTIONS:
            self._harvest(dv.instances)

    def _screened(self, data: bytes) -> bool:
        """Whether `data` (or its text) holds a key the run knows (`SecretScreen`)."""
        screen = self._screen
        return screen.active() and screen.hits(data, data.decode("utf-8", "replace"))

    def _decoded_values(self, body: bytes, cf: int | None, path: str) -> "_DecodedValues":
        """Decode a payload into event values; small repeated payloads (telemetry) are cached."""
        key = (body, cf, path)
        screen = self._screen
        screen.stale()
        if screen.generation != self._value_cache_generation:   # a key learnt since: cached values
            self._value_cache.clear()                            # were not screened for it
            self._value_cache_generation = screen.generation
        cached = self._value_cache.get(key)
        if cached is not None:
            return cached
        decoded = self._decode(body, cf, path, self._model)
        error = decoded.error
        if error is not None and screen.hits(error.encode("utf-8", "surrogateescape"), error):
            error = "payload does not decode (the message quoted a known key)"
        out = _DecodedValues(error=error)
        for v in decoded.values:
            entry: dict[str, Any] = {"path": v.path, "type": v.type}
            if v.name:
                entry["name"] = v.name
            hidden = v.secret or (not screen.empty and screen.hits_value(v.raw, v.value))
            if hidden:
                entry["value"] = self._redact(v)
                if v.raw is None or v.raw:                      # an empty key carries nothing
                    out.credential_paths.append(v.path)
            elif v.type == "opaque" and isinstance(v.value, str) and len(v.value) > 2 * MAX_INLINE_OPAQUE:
                raw = bytes.fromhex(v.value)
                entry["value"] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
            else:
                entry["value"] = v.value
            if v.timestamp is not None:
                entry["timestamp"] = v.timestamp
            out.values.append(entry)
            p = v.path
            if p.startswith(("/0/", "/21/")):
                parts = p.strip("/").split("/")
                if len(parts) >= 3:
                    inst = "/" + "/".join(parts[:2])
                    keep = v.raw if (v.secret or v.type == "opaque") and v.raw is not None else v.value
                    out.instances.setdefault(inst, {})[int(parts[2])] = keep
            if p == "/5/0/1" and isinstance(v.value, str) and not hidden:
                out.firmware_uri = v.value            # (copied out of the values: never a key)
        if not out.instances and len(body) <= VALUE_CACHE_MAX_BODY:
            if len(self._value_cache) >= VALUE_CACHE_SIZE:
                self._value_cache.clear()
            self._value_cache[key] = out          # key material is never cached
        return out

    def _harvest(self, instances: dict[str, dict[int, object]]) -> None:
        """Keys provisioned in clear become usable for the rest of the run (never output)."""
        for inst, res in instances.items():
            if inst.startswith("/0/"):
                mode, identity, key = res.get(2), res.get(3), res.get(5)
                if _as_int(mode) == 0 and isinstance(identity, (bytes, bytearray)) and isinstance(key, (bytes, bytearray)) and key:
                    if self.keys.add_harvested_psk(bytes(identity), bytes(key)):
                        self.stats.harvested_psks += 1
            elif inst.startswith("/21/"):
                secret = res.get(0)
                if isinstance(secret, (bytes, bytearray)) and secret:
                    cfg = OscoreContextConfig(
                        master_secret=bytes(secret), master_salt=_as_bytes(res.get(5)),
                        id_context=_as_bytes(res.get(6)) or None, client_id=_as_bytes(res.get(1)),
                        server_id=_as_bytes(res.get(2)), aead=_as_int(res.get(3)) or 10,
                        source="harvested")
                    if self.keys.add_harvested_oscore(cfg):
                        self.stats.harvested_oscore += 1

    def _identity(self, f: events.OperationFacts) -> None:
        ident: Any = None                    # the first layer's, as merging the layers would keep
        for layer in f.layer_fields:
            lw = layer.get("lwm2m")
            if isinstance(lw, dict) and lw.get("identity"):
                ident = lw["identity"]
                break
        if not ident:
            return
        f.identity = ident                   # the session's {value, type}: read-only, as the layer
        if f.endpoint is not None:
            expected = self.keys.expected_endpoint(str(ident["value"]))
            f.matches_endpoint = f.endpoint == (expected if expected is not None else ident["value"])


def _link_targets(body: bytes) -> list[str]:
    try:
        return [link.target for link in linkformat.parse(body)]
    except ParseError:
        return []


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, bytearray)) and 0 < len(value) <= 8:
        return int.from_bytes(value, "big", signed=True)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _as_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value.encode()
    if isinstance(value, int):
        return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return b""
