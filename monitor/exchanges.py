"""CoAP messaging and request/response matching per UDP flow (RFC 7252 §4-5, 7641, 7959).

The messaging layer de-duplicates by (sender, MID) within EXCHANGE_LIFETIME, in one table for
all flows with a global bound (memory does not grow with the number of flows); the
request/response layer matches by (requester, token), piggy-backed or separate. Block-wise
transfers are folded into the exchange that started them, so one operation gives one event.
Everything here is bounded and driven by packet time only.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from parsers import coap

from .datagram import Datagram, datagram_of
from .ecs import community_id

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address

EXCHANGE_LIFETIME_NS = 247 * 1_000_000_000   # RFC 7252 §4.8.2
NON_LIFETIME_NS = 145 * 1_000_000_000
# A block that starts further than this beyond the body assembled so far is a gap, not zero-filled:
# a Block option's number alone (up to 2**20 blocks of 1 KiB) must not make one packet allocate
# up to a GiB. Memory then grows only with the bytes actually carried.
MAX_BLOCK_HOLE = 64 * 1024


@dataclass(slots=True, init=False)
class Carrier:
    """How a message was carried: its security layer and the facts of that layer."""

    security: str                           # nosec, dtls, oscore, dtls+oscore
    fields: dict | None                     # merged into events (tls.*, dtls.*, oscore.*, lwm2m.identity)

    # one per DTLS datagram: a compiled __init__ (a dataclass's generated one runs interpreted)
    def __init__(self, security: str = "nosec", fields: dict | None = None) -> None:
        self.security = security
        self.fields = fields


PLAIN = Carrier()                           # plain CoAP: one shared instance (never modified)


@dataclass(slots=True, eq=False, init=False)   # identity semantics: exchanges are tracked objects
class Exchange:
    """One request and what answered it. Its own `__init__`: one is built per exchange, and a
    dataclass's generated one runs interpreted even in the compiled build."""

    request: coap.Message
    req_dgram: Datagram
    carrier: Carrier
    response: coap.Message | None
    resp_dgram: Datagram | None
    resp_carrier: Carrier | None
    acked: bool
    reset: bool
    retransmissions: int
    request_body: bytes
    response_body: bytes
    request_blocks: int
    response_blocks: int
    is_notification: bool                   # a notification of an established observation
    reactive_cancel: bool                   # an RST answering a notification (RFC 7641 §3.6)
    orphan: bool                            # notifications of an observation registered before the capture

    def __init__(self, request: coap.Message, req_dgram: Datagram, carrier: Carrier,
                 response: coap.Message | None = None, resp_dgram: Datagram | None = None,
                 resp_carrier: Carrier | None = None, acked: bool = False, reset: bool = False,
                 retransmissions: int = 0, request_body: bytes = b"", response_body: bytes = b"",
                 request_blocks: int = 0, response_blocks: int = 0, is_notification: bool = False,
                 reactive_cancel: bool = False,
                 orphan: bool = False) -> None:
        self.request = request
        self.req_dgram = req_dgram
        self.carrier = carrier
        self.response = response
        self.resp_dgram = resp_dgram
        self.resp_carrier = resp_carrier
        self.acked = acked
        self.reset = reset
        self.retransmissions = retransmissions
        self.request_body = request_body
        self.response_body = response_body
        self.request_blocks = request_blocks
        self.response_blocks = response_blocks
        self.is_notification = is_notification
        self.reactive_cancel = reactive_cancel
        self.orphan = orphan

    @property
    def requester(self) -> Address:
        return self.req_dgram.src

    @property
    def responder(self) -> Address:
        return self.req_dgram.dst


@dataclass(slots=True)
class _Assembly:
    """A block-wise body being put together (RFC 7959); bodies are kept only until hashed."""

    exchange: Exchange
    body: bytearray = field(default_factory=bytearray)
    next_num: int = 0
    blocks: int = 0
    gaps: int = 0

    def add(self, block: coap.Block, payload: bytes) -> None:
        if block.num != self.next_num:
            self.gaps += 1
        offset = block.offset
        if offset == len(self.body):
            self.body += payload
        elif offset < len(self.body):               # retransmitted or overlapping block
            self.body[offset:offset + len(payload)] = payload
        elif offset - len(self.body) <= MAX_BLOCK_HOLE:
            self.body += b"\0" * (offset - len(self.body)) + payload
        else:                                       # far beyond the body: counted, not stored
            self.gaps += 1
            self.blocks += 1
            return
        self.next_num = block.num + 1
        self.blocks += 1


class FlowState:
    """CoAP state between two UDP endpoints; the LwM2M client side is learnt, not assumed."""

    __slots__ = ("a", "b", "fid", "community_id", "client", "pending", "pending_mid", "observations",
                 "block1", "block2", "last_ts")

    def __init__(self, a: Address, b: Address):
        self.a, self.b = a, b
        self.community_id = community_id(a, b)      # every document of the flow carries it
        self.fid = next(_FLOW_IDS)          # names the flow in the matcher's compact integer keys
        self.client: Address | None = None
        self.pending: OrderedDict[tuple[Address, bytes], Exchange] = OrderedDict()
        self.pending_mid: dict[tuple[Address, int], Exchange] = {}
        self.observations: OrderedDict[tuple[Address, bytes], Exchange] = OrderedDict()
        self.block1: dict[tuple, _Assembly] = {}
        self.block2: dict[tuple, _Assembly] = {}
        self.last_ts = 0


_FLOW_IDS = itertools.count()


def _sender_mid(flow: FlowState, addr: Address, mid: int) -> int:
    """(which side of the flow, MID) as one small int: a table entry without a tuple."""
    return (addr[1] == flow.a[1] and addr[0] == flow.a[0]) << 16 | mid


def code_class_2(msg: coap.Message) -> bool:
    return msg.code >> 5 == 2


@dataclass
class MatcherStats:
    messages: int = 0
    requests: int = 0
    responses: int = 0
    empty: int = 0
    retransmissions: int = 0
    unmatched_responses: int = 0
    exchanges: int = 0
    expired: int = 0
    evicted: int = 0
    orphan_observations: int = 0


class ExchangeMatcher:
    """Feed CoAP messages of one direction at a time; get back completed exchanges."""

    def __init__(self, *, max_pending_per_flow: int = 4096, max_observations_per_flow: int = 1024,
                 max_dedup: int = 1 << 19, max_notification_mids: int = 1 << 16):
        self.stats = MatcherStats()
        self.max_pending = max_pending_per_flow
        self.max_observations = max_observations_per_flow
        self.max_dedup = max_dedup
        # (flow, sender, type, MID) → time last seen, all flows together, in two generations:
        # messages go into `_seen`; once it holds max_dedup / 2 or spans EXCHANGE_LIFETIME it
        # becomes `_seen_old` and the previous old one is forgotten whole (two plain dicts: an
        # OrderedDict's per-entry bookkeeping was a few per cent of a plain run)
        self._seen: dict[int, int] = {}
        self._seen_old: dict[int, int] = {}
        self._seen_since = 0
        # (flow, notifier, MID) of recent notifications → their observation, so that an RST
        # answering one cancels it (RFC 7641 §3.6); all flows share it, newest kept
        self.max_notification_mids = max_notification_mids
        self._notification_mids: OrderedDict[int, tuple[Address, bytes]] = OrderedDict()

    # --- messaging layer ----------------------------------------------------------------
    def _duplicate(self, flow: FlowState, msg: coap.Message, dgram: Datagram) -> bool:
        """Same sender, MID and type within EXCHANGE_LIFETIME: a retransmission (RFC 7252 §4.5).
        The table for every flow holds at most `max_dedup` recent messages and always the
        newest `max_dedup` / 2: at 10,000 messages/s the default (524,288) still spans the 45 s
        over which a CON is retransmitted (MAX_TRANSMIT_SPAN)."""
        ts = dgram.ts_ns
        key = flow.fid << 19 | msg.type << 17 | _sender_mid(flow, dgram.src, msg.mid)
        seen = self._seen
        prev = seen.get(key)
        if prev is None:
            prev = self._seen_old.get(key)
        if prev is not None and ts - prev <= EXCHANGE_LIFETIME_NS:
            return True
        if not seen:
            self._seen_since = ts
        elif len(seen) >= self.max_dedup >> 1 or ts - self._seen_since > EXCHANGE_LIFETIME_NS:
            # everything in the old generation is older than this one's start: past its
            # lifetime when the rotation is by time, the oldest beyond the bound when by size
            self._seen_old = seen
            seen = self._seen = {}
            self._seen_since = ts
        seen[key] = ts
        return False

    @property
    def dedup_entries(self) -> int:
        return len(self._seen) + len(self._seen_old)

    def feed(self, flow: FlowState, msg: coap.Message, dgram: Datagram, carrier: Carrier) -> list[Exchange]:
        """Process one message; return exchanges it completes (zero, one, or an expired batch)."""
        self.stats.messages += 1
        flow.last_ts = dgram.ts_ns
        if self._duplicate(flow, msg, dgram):
            self.stats.retransmissions += 1
            if msg.is_request:
                ex = flow.pending.get((dgram.src, msg.token))
                if ex is not None:
                    ex.retransmissions += 1
            return []
        if msg.is_request:
            return self._request(flow, msg, dgram, carrier)
        if msg.is_empty:
            self.stats.empty += 1
            return self._empty(flow, msg, dgram)
        self.stats.responses += 1
        return self._response(flow, msg, dgram, carrier)

    # --- request/response layer ---------------------------------------------------------
    def _request(self, flow: FlowState, msg: coap.Message, dgram: Datagram, carrier: Carrier) -> list[Exchange]:
        self.stats.requests += 1
        done: list[Exchange] = []
        ex = Exchange(msg, dgram, carrier, request_body=msg.payload)
        key: tuple = (dgram.src, msg.token)       # boxed once (see datagram.Address)
        old = flow.pending.pop(key, None)
        if old is not None and old.response is None:
            done.append(old)                      # token reused before an answer: emit unanswered
        b1 = msg.block1
        if b1 is not None:
            akey = (dgram.src, msg.code, msg.uri_path, msg.uri_query)
            asm = flow.block1.get(akey)
            if b1.num == 0 or asm is None:
                asm = _Assembly(ex)
                flow.block1[akey] = asm
            asm.add(b1, msg.payload)
            ex = asm.exchange if b1.num else ex
        b2 = msg.block2
        if b2 is not None and b2.num > 0:
            akey = (dgram.src, msg.code, msg.uri_path, msg.uri_query)
            asm2 = flow.block2.get(akey)
            if asm2 is not None:
                ex = asm2.exchange                # a continuation: its response extends the body
        flow.pending[key] = ex
        if msg.type == coap.CON:
            flow.pending_mid[(dgram.src, msg.mid)] = ex
        if len(flow.pending) > self.max_pending:
            _, evicted = flow.pending.popitem(last=False)
            self.stats.evicted += 1
            done.append(evicted)
        return done

    def _empty(self, flow: FlowState, msg: coap.Message, dgram: Datagram) -> list[Exchange]:
        ex = flow.pending_mid.pop((dgram.dst, msg.mid), None)
        if ex is None:
            # An RST answering a notification cancels that observation (RFC 7641 §3.6).
            obs_key = self._notification_mids.pop(flow.fid << 17 | _sender_mid(flow, dgram.dst, msg.mid), None)
            if msg.type == coap.RST and obs_key is not None:
                obs = flow.observations.pop(obs_key, None)
                if obs is not None:
                    return [Exchange(obs.request, obs.req_dgram, obs.carrier, resp_dgram=dgram,
                                     reset=True, reactive_cancel=True)]
            return []
        if msg.type == coap.ACK:
            ex.acked = True
            return []
        ex.reset = True
        flow.pending.pop((ex.requester, ex.request.token), None)
        return [ex]

    def _response(self, flow: FlowState, msg: coap.Message, dgram: Datagram, carrier: Carrier) -> list[Exchange]:
        requester = dgram.dst
        key: tuple = (requester, msg.token)
        ex = flow.pending.get(key)
        if ex is None:
            obs = flow.observations.get(key)
            if obs is None and msg.observe is not None and code_class_2(msg):
                obs = self._orphan_observation(flow, key, msg, dgram, carrier)
            if obs is not None:
                mids = self._notification_mids
                mids[flow.fid << 17 | _sender_mid(flow, dgram.src, msg.mid)] = key
                if len(mids) > self.max_notification_mids:
                    mids.popitem(last=False)
                if msg.code >> 5 != 2 or msg.observe is None:
                    del flow.observations[key]     # an error or Observe-less answer ends it
                return [self._notification(obs, msg, dgram, carrier)]
            self.stats.unmatched_responses += 1
            return []
        flow.pending_mid.pop((requester, msg.mid), None)
        flow.pending_mid.pop((requester, ex.request.mid), None)
        code = msg.code
        # Block1: 2.31 Continue keeps the assembly open.
        if code == 0x5F:                                 # 2.31 Continue
            ex.response, ex.resp_dgram, ex.resp_carrier = msg, dgram, carrier
            del flow.pending[key]
            return []
        b2 = msg.block2
        if b2 is not None:
            akey = (requester, ex.request.code, ex.request.uri_path, ex.request.uri_query)
            asm = flow.block2.get(akey)
            if asm is None or b2.num == 0:
                asm = _Assembly(ex)
                flow.block2[akey] = asm
            asm.add(b2, msg.payload)
            if b2.more:
                del flow.pending[key]
                ex.response, ex.resp_dgram, ex.resp_carrier = msg, dgram, carrier
                return []
            del flow.block2[akey]
            ex = asm.exchange
            ex.response_body = bytes(asm.body)
            ex.response_blocks = asm.blocks
        else:
            ex.response_body = msg.payload
        b1 = ex.request.block1
        if b1 is not None or ex.request_blocks:
            akey = (requester, ex.request.code, ex.request.uri_path, ex.request.uri_query)
            asm1 = flow.block1.pop(akey, None)
            if asm1 is not None:
                ex = asm1.exchange
                ex.request_body = bytes(asm1.body)
                ex.request_blocks = asm1.blocks
                if b2 is None:
                    ex.response_body = msg.payload
        flow.pending.pop(key, None)
        ex.response, ex.resp_dgram, ex.resp_carrier = msg, dgram, carrier
        if ex.request.observe == 0 and msg.observe is not None and code >> 5 == 2:
            # Its notifications repeat only the request side: keeping the whole exchange would
            # hold the response's message, datagram and carrier for as long as the observation
            # lives (a fleet's observations were most of the objects a young collection scanned).
            flow.observations[key] = Exchange(ex.request, ex.req_dgram, ex.carrier, orphan=ex.orphan)
            if len(flow.observations) > self.max_observations:
                flow.observations.popitem(last=False)
                self.stats.evicted += 1
        elif ex.request.observe == 1:
            flow.observations.pop(key, None)
        self.stats.exchanges += 1
        return [ex]

    def _orphan_observation(self, flow: FlowState, key, msg: coap.Message, dgram: Datagram,
                            carrier: Carrier) -> Exchange:
        """A notification whose Observe request came before the capture began: an observation
        with an unknown request, so its notifications are still reported (with no path)."""
        request = coap.Message(coap.CON, coap.GET, msg.mid, msg.token, ((coap.OBSERVE, b""),), b"")
        origin = datagram_of(dgram.ts_ns, (dgram.dst, dgram.src, dgram.flow), b"", dgram.frame,
                             dgram.source, dgram.live)
        obs = Exchange(request, origin, carrier, orphan=True)
        flow.observations[key] = obs
        if len(flow.observations) > self.max_observations:
            flow.observations.popitem(last=False)
            self.stats.evicted += 1
        self.stats.orphan_observations += 1
        return obs

    def _notification(self, obs: Exchange, msg: coap.Message, dgram: Datagram, carrier: Carrier) -> Exchange:
        ex = Exchange(obs.request, obs.req_dgram, obs.carrier, response=msg, resp_dgram=dgram,
                      resp_carrier=carrier, response_body=msg.payload, is_notification=True,
                      orphan=obs.orphan)
        self.stats.exchanges += 1
        return ex

    def expire(self, flow: FlowState, now_ns: int) -> list[Exchange]:
        """Requests older than EXCHANGE_LIFETIME with no answer: emitted as outcome unknown."""
        done = []
        while flow.pending:
            key, ex = next(iter(flow.pending.items()))
            if now_ns - ex.req_dgram.ts_ns <= EXCHANGE_LIFETIME_NS:
                break
            del flow.pending[key]
            flow.pending_mid.pop((ex.requester, ex.request.mid), None)
            self.stats.expired += 1
            done.append(ex)
        return done

    def drain(self, flow: FlowState) -> list[Exchange]:
        """Everything still pending (end of input)."""
        done = list(dict.fromkeys(flow.pending.values()))
        flow.pending.clear()
        flow.pending_mid.clear()
        for asm in list(flow.block1.values()) + list(flow.block2.values()):
            if asm.exchange not in done and asm.exchange.response is not None:
                ex = asm.exchange
                done.append(ex)
        flow.block1.clear()
        flow.block2.clear()
        return done
