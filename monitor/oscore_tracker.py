"""OSCORE state across messages: which context protects a message, request/response linking,
replay facts and the ID Context re-derivation of RFC 8613 Appendix B.2.

`OscoreTracker.unprotect(dgram, msg, from_client)` never raises for bad input: every outcome is
an `OscoreResult` whose `error` names what went wrong ("no context", "tag check failed", ...).
Context choice: a request's kid is matched against client_id (request from the LwM2M client)
or server_id (request from the LwM2M server), the caller's role guess first, and its kid context
(if any) is used as the ID Context; every candidate is tried and the one whose tag verifies is
accepted (its role is then `OscoreResult.from_client`). A response is
linked to its request by (requester, responder, token) and reuses the request's context, kid and
Partial IV (as AAD, and as nonce when it carries no Partial IV of its own).
Every table is bounded; evictions are counted in `stats`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from parsers import coap
from parsers import oscore as wire
from parsers.errors import ParseError

from . import oscore_events as events
from .datagram import Datagram
from .keys import KeyStore, OscoreContextConfig
from .oscore_context import AEADS, Context

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address

# Outer (Class U) options kept in the merged message; the outer value wins (Observe: the
# notification's outer value is the sequence number, RFC 8613 §4.1.3.5.2).
_OUTER_ONLY = frozenset({coap.URI_HOST, coap.OBSERVE, coap.URI_PORT, coap.PROXY_URI, coap.PROXY_SCHEME})
# Options that may be both inner and outer: the inner (end-to-end) one wins when present.
_EITHER = frozenset({coap.BLOCK2, coap.BLOCK1, coap.SIZE2, coap.SIZE1, coap.MAX_AGE, coap.NO_RESPONSE})

_REPLAY_WINDOW = 4096        # Partial IVs remembered per (context, sender)

# Errors (stable strings: they end up in documents and rules).
NO_CONTEXT = "no context"
TAG_FAILED = "tag check failed"
MALFORMED_OPTION = "malformed option"
MALFORMED_PLAINTEXT = "malformed plaintext"
NO_CIPHERTEXT = "no ciphertext"
NO_REQUEST = "request not seen"
MISSING_KID = "request without kid"
MISSING_PIV = "request without partial iv"
GROUP = "group oscore not supported"


@dataclass
class OscoreResult:
    inner: coap.Message | None
    kid: bytes | None              # on the wire; for a response without one, its request's kid
    kid_context: bytes | None      # on the wire
    piv: bytes | None              # on the wire (a response without one reuses the request's)
    decrypted: bool
    error: str | None
    replay: bool = False
    documents: list[dict] = field(default_factory=list)
    from_client: bool | None = None          # resolved sender role when a context verified
    id_context: bytes | None = None          # the ID Context that verified
    client_id: bytes | None = None           # the LwM2M client's Sender ID of that context
    fingerprint: str | None = None
    nonce: bytes | None = field(default=None, repr=False)   # AEAD nonce used; never in documents

    def lwm2m_fields(self) -> dict:
        """Fields merged into the LwM2M event of this message."""
        osc: dict = {"decrypted": self.decrypted}
        if self.kid is not None:
            osc["kid"] = self.kid.hex()
        if self.kid_context is not None:
            osc["kid_context"] = self.kid_context.hex()
        if self.piv is not None:
            osc["piv"] = int.from_bytes(self.piv, "big")
        if self.error is not None:
            osc["error"] = self.error
        if self.replay:
            osc["replayed"] = True
        if self.fingerprint is not None:
            osc["context"] = {"fingerprint": self.fingerprint}
        out: dict = {"oscore": osc}
        # Only a verified tag authenticates the sender; the identity is the client's Sender ID.
        if self.decrypted and self.client_id is not None:
            out["lwm2m"] = {"identity": {"value": self.client_id.hex(), "type": "oscore"}}
        return out


@dataclass(slots=True)
class _Candidate:
    cfg_index: int
    id_context: bytes | None
    client_sent: bool              # the request was sent by the LwM2M client


@dataclass(slots=True)
class _Request:
    kid: bytes
    piv: bytes
    candidates: list[_Candidate]   # the verified one first, alone, when the request verified
    verified: bool
    answered: bool = False


@dataclass(slots=True)
class _Flow:
    """Counts for one (endpoint pair, sender role, kid, ID Context): the summary document."""

    first: Datagram
    client: Address | None
    server: Address | None
    facts: events.Facts
    last_ts: int = 0
    decrypted: int = 0
    failed: int = 0
    replays: int = 0


class _Window:
    """Partial IVs seen for one (context, sender): PIV -> (source, MID, ciphertext hash) of first use."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: OrderedDict[int, tuple[Address, int, int]] = OrderedDict()

    def check(self, piv: int, src: Address, mid: int, ciphertext: bytes) -> str | None:
        """None when new; "retransmission" for the same CoAP message again; "replay" for the
        same ciphertext in another message; "nonce-reuse" for another ciphertext (a sender
        that restarted its sequence number: the AEAD's confidentiality is lost)."""
        first = self.seen.get(piv)
        digest = hash(ciphertext)
        if first is None:
            self.seen[piv] = (src, mid, digest)
            if len(self.seen) > _REPLAY_WINDOW:
                self.seen.popitem(last=False)
            return None
        if first[0] == src and first[1] == mid:
            return "retransmission"
        return "replay" if first[2] == digest else "nonce-reuse"


class OscoreTracker:
    def __init__(self, keys: KeyStore, *, max_contexts: int = 100_000):
        self.keys = keys
        self.max_contexts = max_contexts
        self.stats: dict[str, int] = dict.fromkeys((
            "messages", "decrypted", "tag_failed", "no_context", "malformed", "no_request",
            "replays", "nonce_reuses", "retransmissions", "contexts_derived", "context_evictions",
            "pending_evictions", "flow_evictions", "window_evictions", "rederived", "role_hint_wrong"), 0)
        self._indexed = 0
        self._by_sender: dict[bytes, list[tuple[int, bool]]] = {}   # Sender ID -> [(cfg, is client)]
        self._contexts: OrderedDict[tuple[int, bytes | None], Context | None] = OrderedDict()
        self._pending: OrderedDict[tuple[Address, Address, bytes], _Request] = OrderedDict()
        self._windows: OrderedDict[tuple[int, bytes | None, bool], _Window] = OrderedDict()
        self._active: OrderedDict[tuple[tuple, int], bytes | None] = OrderedDict()  # B.2 current ID Context
        self._flows: OrderedDict[tuple, _Flow] = OrderedDict()
        self._failed_flows: OrderedDict[tuple, _Flow] = OrderedDict()   # (flow, kid, error)
        self._seq = 0

    # --- configuration -----------------------------------------------------------------
    def add_harvested(self, config: OscoreContextConfig) -> bool:
        """A context learnt from cleartext bootstrap (object 21); True if it is new."""
        added = self.keys.add_harvested_oscore(config)
        self._index()
        return added

    def reload(self, keys: KeyStore) -> None:
        """A new keys file (SIGHUP): forget derived keys and all state tied to old contexts."""
        self.keys = keys
        self._indexed = 0
        self._by_sender.clear()
        self._contexts.clear()
        self._windows.clear()     # indexed by configuration position, which may have changed
        self._active.clear()
        for req in self._pending.values():
            req.candidates, req.verified = [], False
        self._index()

    def _index(self) -> None:
        # KeyStore.oscore only grows (harvesting appends), so index the new tail lazily.
        configs = self.keys.oscore
        while self._indexed < len(configs):
            cfg = configs[self._indexed]
            if cfg.aead in AEADS:
                self._by_sender.setdefault(cfg.client_id, []).append((self._indexed, True))
                self._by_sender.setdefault(cfg.server_id, []).append((self._indexed, False))
            self._indexed += 1

    def _context(self, cfg_index: int, id_context: bytes | None) -> Context | None:
        key = (cfg_index, id_context)
        ctx = self._contexts.get(key)
        if ctx is None and key not in self._contexts:
            cfg = self.keys.oscore[cfg_index]
            try:
                ctx = Context.derive(cfg, id_context)
            except ValueError:          # key length/algorithm mismatch in the configuration
                ctx = None
            self.stats["contexts_derived"] += 1
            self._contexts[key] = ctx
            if len(self._contexts) > self.max_contexts:
                self._contexts.popitem(last=False)
                self.stats["context_evictions"] += 1
        return ctx

    # --- per message -------------------------------------------------------------------
    def __len__(self) -> int:
        """Security contexts held (for the sensor's state sizes)."""
        return len(self._contexts)

    def unprotect(self, dgram: Datagram, msg: coap.Message, from_client: bool | None) -> OscoreResult:
        self.stats["messages"] += 1
        value = msg.oscore
        try:
            opt = wire.parse_option(value if value is not None else b"")
        except ParseError:
            self.stats["malformed"] += 1
            return self._failed(dgram, None, None, None, MALFORMED_OPTION, from_client)
        if not msg.payload:
            # Every OSCORE message carries at least the AEAD tag (§8.1 step 7).
            self.stats["malformed"] += 1
            return self._failed(dgram, opt.kid, opt.kid_context, opt.piv, NO_CIPHERTEXT, from_client)
        if opt.group:
            return self._failed(dgram, opt.kid, opt.kid_context, opt.piv, GROUP, from_client)
        self._index()
        if msg.is_request:
            return self._request(dgram, msg, opt, from_client)
        return self._response(dgram, msg, opt)

    def _request(self, dgram: Datagram, msg: coap.Message, opt: wire.Option, from_client: bool | None) -> OscoreResult:
        if opt.kid is None or opt.piv is None:
            self.stats["malformed"] += 1
            return self._failed(dgram, opt.kid, opt.kid_context, opt.piv,
                                MISSING_KID if opt.kid is None else MISSING_PIV, from_client)
        flow = dgram.flow
        candidates: list[_Candidate] = []
        rederive: list[_Candidate] = []
        for cfg_index, is_client in self._by_sender.get(opt.kid, ()):
            cfg = self.keys.oscore[cfg_index]
            if opt.kid_context is not None:
                # The kid context names the ID Context (§5.1). Configured contexts with that ID
                # Context go first; deriving it from another one is B.2 re-derivation.
                (candidates if cfg.id_context == opt.kid_context else rederive).append(
                    _Candidate(cfg_index, opt.kid_context, is_client))
            else:
                active = self._active.get((flow, cfg_index), cfg.id_context)
                candidates.append(_Candidate(cfg_index, active, is_client))
                if active != cfg.id_context:
                    candidates.append(_Candidate(cfg_index, cfg.id_context, is_client))
        candidates += rederive
        if from_client is not None:
            # The caller's role guess goes first; the other role is still tried, since a verified
            # tag proves who sent it better than a guess from addresses.
            candidates.sort(key=lambda c: c.client_sent != from_client)
        key = (dgram.src, dgram.dst, msg.token)
        for cand in candidates:
            ctx = self._context(cand.cfg_index, cand.id_context)
            if ctx is None:
                continue
            nonce = ctx.nonce(opt.kid, opt.piv)
            if nonce is None:
                continue
            plain = ctx.open(cand.client_sent, nonce, wire.aad(ctx.alg.number, opt.kid, opt.piv), msg.payload)
            if plain is not None:
                if from_client is not None and cand.client_sent != from_client:
                    self.stats["role_hint_wrong"] += 1
                self._remember(key, _Request(opt.kid, opt.piv, [cand], True))
                return self._verified(dgram, msg, opt, ctx, cand, cand.client_sent, plain, opt.piv, nonce=nonce)
        self._remember(key, _Request(opt.kid, opt.piv, candidates, False))
        error = TAG_FAILED if candidates else NO_CONTEXT
        self.stats["tag_failed" if candidates else "no_context"] += 1
        return self._failed(dgram, opt.kid, opt.kid_context, opt.piv, error, from_client)

    def _response(self, dgram: Datagram, msg: coap.Message, opt: wire.Option) -> OscoreResult:
        req = self._pending.get((dgram.dst, dgram.src, msg.token))
        if req is None:
            self.stats["no_request"] += 1
            return self._failed(dgram, opt.kid, opt.kid_context, opt.piv, NO_REQUEST, None)
        aad_kid, aad_piv = req.kid, req.piv
        for cand in req.candidates:
            responder_is_client = not cand.client_sent
            if opt.kid_context is not None:
                # B.2 response #1: protected with ID Context = R2 || ID1, R2 in the kid context.
                id_contexts = [opt.kid_context + (cand.id_context or b""), opt.kid_context]
            else:
                id_contexts = [cand.id_context]
            for idc in id_contexts:
                ctx = self._context(cand.cfg_index, idc)
                if ctx is None:
                    continue
                if opt.piv is not None:
                    nonce_id, nonce_piv = ctx.sender_id(responder_is_client), opt.piv
                else:
                    nonce_id, nonce_piv = aad_kid, aad_piv
                nonce = ctx.nonce(nonce_id, nonce_piv)
                if nonce is None:
                    continue
                plain = ctx.open(responder_is_client, nonce, wire.aad(ctx.alg.number, aad_kid, aad_piv),
                                 msg.payload)
                if plain is not None:
                    if not msg.has_option(coap.OBSERVE):
                        req.answered = True
                    used = _Candidate(cand.cfg_index, idc, cand.client_sent)
                    return self._verified(dgram, msg, opt, ctx, used, responder_is_client, plain,
                                          opt.piv, request_kid=aad_kid, nonce=nonce)
        error = TAG_FAILED if req.candidates else NO_CONTEXT
        self.stats["tag_failed" if req.candidates else "no_context"] += 1
        return self._failed(dgram, opt.kid if opt.kid is not None else req.kid, opt.kid_context, opt.piv,
                            error, None)

    def _remember(self, key: tuple, req: _Request) -> None:
        self._pending[key] = req
        self._pending.move_to_end(key)
        if len(self._pending) > self.max_contexts:
            _, old = self._pending.popitem(last=False)
            if not old.answered:
                self.stats["pending_evictions"] += 1

    # --- outcomes ----------------------------------------------------------------------
    def _verified(self, dgram: Datagram, msg: coap.Message, opt: wire.Option, ctx: Context, cand: _Candidate,
                  sender_is_client: bool, plain: bytes, piv: bytes | None,
                  request_kid: bytes | None = None, nonce: bytes | None = None) -> OscoreResult:
        cfg = ctx.config
        kid = opt.kid if opt.kid is not None else request_kid
        result = OscoreResult(None, kid, opt.kid_context, piv, False, None, from_client=sender_is_client,
                              id_context=cand.id_context, client_id=cfg.client_id, fingerprint=cfg.fingerprint, nonce=nonce)
        try:
            inner = wire.parse_plaintext(plain)
        except ParseError:
            # Authentic but not a valid inner message: a peer bug, not an attacker's noise.
            self.stats["malformed"] += 1
            result.error = MALFORMED_PLAINTEXT
            return result
        self.stats["decrypted"] += 1
        result.decrypted = True
        result.inner = _merge(msg, inner)
        client, server = (dgram.src, dgram.dst) if sender_is_client else (dgram.dst, dgram.src)
        facts = events.Facts(kid=cfg.client_id if sender_is_client else cfg.server_id,
                             kid_context=opt.kid_context, id_context=cand.id_context,
                             sender="client" if sender_is_client else "server",
                             aead=ctx.alg.name, fingerprint=cfg.fingerprint, source=cfg.source,
                             client_id=cfg.client_id)
        if piv is not None:
            verdict = self._window(cand.cfg_index, cand.id_context, sender_is_client).check(
                int.from_bytes(piv, "big"), dgram.src, msg.mid, msg.payload)
            if verdict == "retransmission":
                self.stats["retransmissions"] += 1
            elif verdict is not None:
                self.stats["replays"] += 1
                self.stats["nonce_reuses"] += verdict == "nonce-reuse"
                result.replay = True
        flow = self._flow(dgram, facts, client, server, result.documents)
        flow.decrypted += 1
        if result.replay:
            flow.replays += 1
            rf = replace(facts, piv=int.from_bytes(piv, "big"),
                         extra={"replay": {"kind": verdict, "count": flow.replays}})
            result.documents.append(self._doc(dgram, "replay", "failure", rf, client, server))
        if msg.is_request and opt.kid_context is not None:
            fkey = (dgram.flow, cand.cfg_index)
            previous = self._active.get(fkey, cfg.id_context)
            self._active[fkey] = cand.id_context
            self._active.move_to_end(fkey)
            if len(self._active) > self.max_contexts:
                self._active.popitem(last=False)
            if previous != cand.id_context:
                self.stats["rederived"] += 1
                rf = replace(facts, extra={"previous_id_context": previous.hex() if previous is not None else None})
                result.documents.append(self._doc(dgram, "context-rederived", "success", rf, client, server))
        return result

    def _window(self, cfg_index: int, id_context: bytes | None, sender_is_client: bool) -> _Window:
        key = (cfg_index, id_context, sender_is_client)
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window()
            if len(self._windows) > self.max_contexts:
                self._windows.popitem(last=False)
                self.stats["window_evictions"] += 1
        return win

    def _flow(self, dgram: Datagram, facts: events.Facts, client: Address | None, server: Address | None,
              out: list[dict]) -> _Flow:
        key = (dgram.flow, facts.sender, facts.kid, facts.id_context, facts.fingerprint)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = _Flow(dgram, client, server, facts)
            out.append(self._doc(dgram, "context-seen", "success", facts, client, server))
            if len(self._flows) > self.max_contexts:
                _, old = self._flows.popitem(last=False)
                self.stats["flow_evictions"] += 1
                out.append(self._summary(old))
        flow.last_ts = dgram.ts_ns
        return flow

    def _failed(self, dgram: Datagram, kid: bytes | None, kid_context: bytes | None, piv: bytes | None,
                error: str, from_client: bool | None) -> OscoreResult:
        result = OscoreResult(None, kid, kid_context, piv, False, error, from_client=from_client)
        # One document per (flow, kid, error) on first occurrence; the count comes in its summary.
        key = (dgram.flow, kid, error)
        flow = self._failed_flows.get(key)
        if flow is None:
            client, server = _roles(dgram, from_client)
            facts = events.Facts(kid=kid, kid_context=kid_context,
                                 piv=None if piv is None else int.from_bytes(piv, "big"), error=error)
            flow = self._failed_flows[key] = _Flow(dgram, client, server, facts)
            result.documents.append(self._doc(dgram, "decryption-failed", "failure", facts, client, server))
            if len(self._failed_flows) > self.max_contexts:
                _, old = self._failed_flows.popitem(last=False)
                self.stats["flow_evictions"] += 1
                result.documents.append(self._summary(old))
        flow.failed += 1
        flow.last_ts = dgram.ts_ns
        return result

    def _doc(self, dgram: Datagram, action: str, outcome: str, facts: events.Facts,
             client: Address | None, server: Address | None, ts_ns: int | None = None) -> dict:
        self._seq += 1
        return events.document(dgram, action=action, outcome=outcome, facts=facts, client=client,
                               server=server, seq=self._seq, ts_ns=ts_ns)

    def _summary(self, flow: _Flow) -> dict:
        if flow.failed:
            counts = {"failed": flow.failed}
            facts = replace(flow.facts, piv=None, extra={"messages": counts})
        else:
            counts = {"decrypted": flow.decrypted, "replays": flow.replays}
            facts = replace(flow.facts, extra={"messages": counts})
        return self._doc(flow.first, "context-summary", "failure" if flow.failed else "success", facts,
                         flow.client, flow.server, ts_ns=flow.last_ts)

    def close(self) -> list[dict]:
        """Summary documents of every flow still held (Zeek-style flush at the end)."""
        docs = [self._summary(flow) for flow in self._flows.values()]
        docs += [self._summary(flow) for flow in self._failed_flows.values()]
        self._flows.clear()
        self._failed_flows.clear()
        return docs


def _roles(dgram: Datagram, from_client: bool | None) -> tuple[Address | None, Address | None]:
    if from_client is None:
        return None, None
    return (dgram.src, dgram.dst) if from_client else (dgram.dst, dgram.src)


def _merge(outer: coap.Message, inner: wire.Inner) -> coap.Message:
    """The message as the endpoints meant it: outer header, inner code/options/payload."""
    inner_numbers = {n for n, _ in inner.options}
    kept_outer = [(n, v) for n, v in outer.options
                  if n in _OUTER_ONLY or (n in _EITHER and n not in inner_numbers)]
    outer_numbers = {n for n, _ in kept_outer}
    # An inner OSCORE option (seen from one Interop6 peer) is dropped too: the merged message is
    # plain CoAP for the LwM2M layer.
    outer_numbers.add(coap.OSCORE)
    options = kept_outer + [(n, v) for n, v in inner.options if n not in outer_numbers]
    options.sort(key=lambda o: o[0])      # stable: repeated options keep their order
    return coap.Message(outer.type, inner.code, outer.mid, outer.token, tuple(options), inner.payload)
