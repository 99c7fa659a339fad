"""DTLS session tracking and decryption for a passive observer.

`DtlsTracker.feed(datagram)` takes one UDP datagram that `parsers.dtls.looks_like_dtls`
accepted and returns the decrypted application records (each one CoAP message), the session
they belong to, the `dtls.handshake`/`dtls.alert` documents the datagram completed, and named
anomalies. `close()` flushes sessions whose handshake never finished (outcome unknown).

Sessions are keyed by the address pair, and also by Connection ID (RFC 9146) so a client that
changes address keeps its session. Keys are looked up when first needed (a PSK harvested from
a cleartext bootstrap earlier in the run counts). Tables are bounded; evictions emit what
they held.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from parsers import dtls as p
from parsers.errors import ParseError
from parsers.tls_suites import suite as lookup_suite

from . import dtls_crypto as crypto
from .datagram import Datagram, flow_key
from .dtls_events import alert_document, handshake_document
from .dtls_session import HISTORY_LETTERS, UNKNOWN_LETTER, AlertFact, DtlsSessionFacts
from .keys import KeyStore

SERVER_PORTS = (5684, 5683, 5784, 5783, 4433, 443)   # best guess for mid-session role
MAX_MESSAGE = 1 << 16        # largest handshake message we reassemble
MAX_PARTIAL = 16             # handshake messages in reassembly per session
_REPLAY_WINDOW = 64
_WINDOW_MASK = (1 << _REPLAY_WINDOW) - 1

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address


@dataclass(init=False)
class DtlsResult:
    plaintexts: list[bytes]
    session: DtlsSessionFacts | None
    documents: list[dict]
    anomalies: list[str]

    # one per datagram: a compiled __init__ (a dataclass's generated one runs interpreted)
    def __init__(self, plaintexts: list[bytes] | None = None, session: DtlsSessionFacts | None = None,
                 documents: list[dict] | None = None, anomalies: list[str] | None = None) -> None:
        self.plaintexts = plaintexts if plaintexts is not None else []
        self.session = session
        self.documents = documents if documents is not None else []
        self.anomalies = anomalies if anomalies is not None else []


def _direction_epoch(from_client: bool, epoch: int) -> int:
    return epoch << 1 | from_client


class _Partial:
    """A handshake message arriving in fragments."""

    __slots__ = ("msg_type", "buf", "ranges")

    def __init__(self, msg_type: int, length: int) -> None:
        self.msg_type, self.buf = msg_type, bytearray(length)
        self.ranges: list[tuple[int, int]] = []

    def add(self, offset: int, data: bytes) -> bytes | None:
        self.buf[offset:offset + len(data)] = data
        self.ranges.append((offset, offset + len(data)))
        self.ranges.sort()
        covered = 0
        for a, b in self.ranges:
            if a > covered:
                return None
            covered = max(covered, b)
        return bytes(self.buf) if covered >= len(self.buf) else None


class _ReplayWindow:
    """Anti-replay window of one direction and epoch (RFC 6347 §4.1.2.6)."""

    __slots__ = ("top", "bits")

    def __init__(self, seq: int) -> None:
        self.top = seq
        self.bits = 1                       # bit n: top - n was seen

    def seen(self, seq: int) -> bool:
        """Record `seq`; True when it was seen before (a duplicate)."""
        top = self.top
        if seq > top:
            shift = seq - top
            self.bits = ((self.bits << shift) | 1) & _WINDOW_MASK if shift < _REPLAY_WINDOW else 1
            self.top = seq
            return False
        back = top - seq
        if back >= _REPLAY_WINDOW:
            return False
        bits = self.bits
        if bits >> back & 1:
            return True
        self.bits = bits | (1 << back)
        return False


class _Session:
    __slots__ = ("facts", "transcript", "ems_upto", "done", "partial", "master", "client_cipher",
                 "server_cipher", "ccs", "saw_server_hello_done", "client_window", "server_window",
                 "windows", "ticket", "key", "ch_cids")

    def __init__(self, facts: DtlsSessionFacts, key: tuple) -> None:
        self.facts = facts
        self.key = key
        self.transcript: list[bytes] = []
        self.ems_upto: int | None = None
        self.done: set[tuple[bool, int, int]] = set()
        self.partial: dict[tuple[bool, int, int], _Partial] = {}
        self.master: bytes | None = None
        # epoch 1's, the only one decrypted (attributes: read for every record)
        self.client_cipher: crypto.RecordDecryptor | None = None
        self.server_cipher: crypto.RecordDecryptor | None = None
        self.ccs: set[bool] = set()
        self.saw_server_hello_done = False
        # epoch 1's windows as attributes; other epochs' by _direction_epoch(from_client, epoch)
        self.client_window: _ReplayWindow | None = None
        self.server_window: _ReplayWindow | None = None
        self.windows: dict[int, _ReplayWindow] = {}
        self.ticket: bytes | None = None
        self.ch_cids: dict[int, bytes] = {}   # connection_id extension -> CID the client asked for


class DtlsTracker:
    def __init__(self, keys: KeyStore, *, max_sessions: int = 100_000,
                 max_resumable: int = 10_000) -> None:
        self.keys = keys
        self.max_sessions = max_sessions
        self.max_resumable = max_resumable
        self._flows: OrderedDict[tuple, _Session] = OrderedDict()
        self._newest: _Session | None = None      # the last entry of `_flows` (None: unknown)
        self._by_cid: dict[bytes, _Session] = {}
        self._cid_lengths: dict[int, int] = {}
        # session_id / ticket -> (master secret, key source): lives across files of one run.
        self._resumable: OrderedDict[bytes, tuple[bytes, str]] = OrderedDict()
        # per-datagram and per-record counters are attributes (a dict increment each cost more
        # than the anti-replay check); `stats` puts them first, before the rarer ones
        self._datagrams = self._records = self._decrypted = 0
        self._counts: dict[str, int] = dict.fromkeys(
            ("failed_mac", "undecryptable", "malformed",
             "truncated", "retransmissions", "duplicates", "sessions", "evictions", "handshakes",
             "alerts", "dtls13_records", "cid_address_changes"), 0)

    # ------------------------------------------------------------------ public interface

    @property
    def stats(self) -> dict[str, int]:
        """Counters so far (a copy)."""
        return {"datagrams": self._datagrams, "records": self._records, "decrypted": self._decrypted,
                **self._counts}

    def __len__(self) -> int:
        """Sessions held (for the sensor's state sizes)."""
        return len(self._flows)

    def feed(self, dgram: Datagram) -> DtlsResult:
        res = DtlsResult()
        self._datagrams += 1
        src, dst = dgram.src, dgram.dst
        sess = self._flows.get(dgram.flow)
        records = self._parse(dgram.payload, sess, src, res)
        if records is None:
            return res
        if sess is None and records and isinstance(records[0], p.Record) \
                and records[0].content_type == p.TLS12_CID:
            sess = self._by_cid.get(records[0].cid)
            if sess is not None:
                self._roam(sess, dgram, records[0].cid)
        for rec in records:
            if isinstance(rec, p.UnifiedRecord):
                self._counts["dtls13_records"] += 1
                res.anomalies.append("dtls.dtls13_record")
                if sess is not None:
                    sess.facts.wire_version = p.DTLS13
                    sess.facts.decrypt_error = sess.facts.decrypt_error or "DTLS 1.3 is not decrypted"
                continue
            if sess is None:
                sess = self._new_session(dgram, rec)
            elif rec.epoch == 0 and rec.content_type == p.HANDSHAKE:
                sess = self._maybe_restart(sess, dgram, rec, res)
            self._record(sess, rec, dgram, res)
        if sess is not None:
            if sess is not self._newest:     # a reply in the same session: already last
                self._flows.move_to_end(sess.key)
                self._newest = sess
            sess.facts.end_ts_ns, sess.facts.end_frame = dgram.ts_ns, dgram.frame
            res.session = sess.facts
            self._evict(res)
        return res

    def close(self) -> list[dict]:
        docs = []
        for sess in list(self._flows.values()):
            if not sess.facts.emitted:
                docs.append(self._emit(sess, "unknown"))
        self._flows.clear()
        self._newest = None
        self._by_cid.clear()
        self._cid_lengths.clear()
        return docs

    # ------------------------------------------------------------------ sessions

    def _parse(self, payload: bytes, sess: _Session | None, src: Address,
               res: DtlsResult) -> list | None:
        cid_len = None
        if sess is not None:
            cid = sess.facts.cid_to_server if src == sess.facts.client else sess.facts.cid_to_client
            cid_len = None if cid is None else len(cid)
        try:
            return p.parse_records(payload, cid_len)
        except ParseError as exc:
            if sess is None and payload[:1] == b"\x19":
                for n in self._cid_lengths:
                    try:
                        records = p.parse_records(payload, n)
                    except ParseError:
                        continue
                    if records and getattr(records[0], "cid", None) in self._by_cid:
                        return records
            self._counts[exc.kind] += 1
            res.anomalies.append(f"dtls.record_{exc.kind}")
            return None

    def _new_session(self, dgram: Datagram, rec: p.Record) -> _Session:
        src, dst = dgram.src, dgram.dst
        client, server, mid = src, dst, True
        if rec.content_type == p.HANDSHAKE and rec.epoch == 0 and rec.fragment:
            first = rec.fragment[0]
            if first == p.CLIENT_HELLO:
                mid = False
            elif first in (p.SERVER_HELLO, p.HELLO_VERIFY_REQUEST):
                client, server, mid = dst, src, False
        if mid and (src[1] in SERVER_PORTS and dst[1] not in SERVER_PORTS
                    or (src[1] < dst[1] and dst[1] not in SERVER_PORTS)):
            client, server = dst, src
        facts = DtlsSessionFacts(client=client, server=server, observer=dgram.source,
                                 live=dgram.live, start_ts_ns=dgram.ts_ns, start_frame=dgram.frame,
                                 end_ts_ns=dgram.ts_ns, end_frame=dgram.frame, mid_session=mid,
                                 wire_version=rec.version)
        if mid:
            facts.decrypt_error = "handshake not seen (session picked up mid-way)"
        sess = _Session(facts, dgram.flow)
        self._flows[sess.key] = sess
        self._newest = sess
        self._counts["sessions"] += 1
        return sess

    def _maybe_restart(self, sess: _Session, dgram: Datagram, rec: p.Record,
                       res: DtlsResult) -> _Session:
        """A ClientHello with a new random on a known flow starts a new session."""
        frag = rec.fragment
        if len(frag) < 12 + 34 or frag[0] != p.CLIENT_HELLO or frag[6:9] != b"\x00\x00\x00":
            return sess
        random = frag[14:46]
        if sess.facts.client_random is None or sess.facts.client_random == random:
            return sess
        if sess.facts.server_random is None and not sess.facts.established:
            return sess            # a new ClientHello before any ServerHello: same attempt
        if not sess.facts.emitted:
            res.documents.append(self._emit(sess, "unknown"))
        self._drop(sess)
        return self._new_session(dgram, rec)

    def _roam(self, sess: _Session, dgram: Datagram, cid: bytes) -> None:
        """RFC 9146: a CID record from a new address belongs to the CID's session."""
        f = sess.facts
        if cid == f.cid_to_server:
            f.client = dgram.src
        elif cid == f.cid_to_client:
            f.client = dgram.dst
        self._flows.pop(sess.key, None)
        sess.key = flow_key(f.client, f.server)
        self._flows[sess.key] = sess
        self._newest = sess
        self._counts["cid_address_changes"] += 1

    def _drop(self, sess: _Session) -> None:
        self._flows.pop(sess.key, None)
        if sess is self._newest:
            self._newest = None
        for cid in (sess.facts.cid_to_server, sess.facts.cid_to_client):
            if cid and self._by_cid.get(cid) is sess:
                del self._by_cid[cid]
                self._cid_lengths[len(cid)] -= 1
                if not self._cid_lengths[len(cid)]:
                    del self._cid_lengths[len(cid)]

    def _evict(self, res: DtlsResult) -> None:
        while len(self._flows) > self.max_sessions:
            _, old = next(iter(self._flows.items()))
            if not old.facts.emitted:
                res.documents.append(self._emit(old, "unknown"))
            self._drop(old)
            self._counts["evictions"] += 1
            res.anomalies.append("dtls.session_evicted")

    def _emit(self, sess: _Session, outcome: str) -> dict:
        f = sess.facts
        f.emitted = True
        self._counts["handshakes"] += 1
        return handshake_document(f, outcome)

    # ------------------------------------------------------------------ records

    def _record(self, sess: _Session, rec: p.Record, dgram: Datagram, res: DtlsResult) -> None:
        f = sess.facts
        f.records += 1
        self._records += 1
        from_client = dgram.src == f.client
        ctype = rec.content_type
        if rec.epoch == 0:
            if ctype == p.HANDSHAKE:
                self._handshake(sess, from_client, rec.fragment, dgram, res)
            elif ctype == p.CHANGE_CIPHER_SPEC:
                self._ccs(sess, from_client)
            elif ctype == p.ALERT:
                self._alert(sess, from_client, rec.fragment, False, dgram, res)
            else:
                res.anomalies.append("dtls.unprotected_" + p.CONTENT_NAMES.get(ctype, str(ctype)))
            return
        if self._duplicate(sess, from_client, rec):
            self._counts["duplicates"] += 1
            res.anomalies.append("dtls.duplicate_record")
            return
        dec = self._decryptor(sess, from_client, rec.epoch)
        opened = dec.open(rec) if dec is not None else None
        if opened is None:
            if dec is not None:
                f.failed_records += 1
                self._counts["failed_mac"] += 1
                res.anomalies.append("dtls.bad_mac")
                if not f.decrypted:
                    f.decrypt_error = "record authentication failed: wrong key or corrupted records"
            else:
                self._counts["undecryptable"] += 1
            self._opaque(sess, from_client, ctype, dgram, res)
            return
        f.decrypted = True
        f.decrypted_records += 1
        self._decrypted += 1
        if f.decrypt_error and f.decrypt_error.startswith("record authentication"):
            f.decrypt_error = None
        inner, plain = opened
        if inner == p.APPLICATION_DATA:
            res.plaintexts.append(plain)
        elif inner == p.HANDSHAKE:
            self._handshake(sess, from_client, plain, dgram, res)
        elif inner == p.ALERT:
            self._alert(sess, from_client, plain, True, dgram, res)
        elif inner == p.CHANGE_CIPHER_SPEC:
            self._ccs(sess, from_client)
        else:
            res.anomalies.append("dtls.unexpected_content_type")

    def _opaque(self, sess: _Session, from_client: bool, ctype: int, dgram: Datagram,
                res: DtlsResult) -> None:
        """A protected record we cannot open: still tells us the handshake's progress."""
        f = sess.facts
        finished_pending = not (f.client_finished if from_client else f.server_finished)
        if ctype == p.HANDSHAKE or (ctype == p.TLS12_CID and finished_pending and from_client in sess.ccs):
            # The first protected handshake message after CCS is Finished (RFC 6347 §4.2.6);
            # with a CID the content type is hidden, but the first record after CCS is it too.
            if from_client and not f.client_finished:
                f.client_finished = True
                f.history += "F"
            elif not from_client and not f.server_finished:
                f.server_finished = True
                f.history += "f"
            else:
                f.retransmissions += 1
                self._counts["retransmissions"] += 1
            self._check_complete(sess, dgram, res)
        elif ctype == p.ALERT:
            self._alert(sess, from_client, None, True, dgram, res)

    def _duplicate(self, sess: _Session, from_client: bool, rec: p.Record) -> bool:
        """Anti-replay window (RFC 6347 §4.1.2.6) so a duplicated datagram is reported once."""
        epoch = rec.epoch
        if epoch == 1:
            w = sess.client_window if from_client else sess.server_window
        else:
            w = sess.windows.get(_direction_epoch(from_client, epoch))
        if w is not None:
            return w.seen(rec.seq)
        w = _ReplayWindow(rec.seq)
        if epoch != 1:
            sess.windows[_direction_epoch(from_client, epoch)] = w
        elif from_client:
            sess.client_window = w
        else:
            sess.server_window = w
        return False

    # ------------------------------------------------------------------ keys

    def _decryptor(self, sess: _Session, from_client: bool, epoch: int) -> crypto.RecordDecryptor | None:
        if epoch == 1:
            dec = sess.client_cipher if from_client else sess.server_cipher
            if dec is not None:
                return dec
        f = sess.facts
        if epoch != 1:
            f.decrypt_error = f.decrypt_error or "renegotiated epoch not decrypted"
            return None
        if f.suite is None or not crypto.can_decrypt(f.suite):
            if f.suite is not None:
                f.decrypt_error = f"cipher {f.suite.name} is not supported for decryption"
            return None
        if not self._ensure_master(sess):
            return None
        # _ensure_master saw to the randoms and the master secret, the ServerHello to the version
        version, master, c_random, s_random = f.wire_version, sess.master, f.client_random, f.server_random
        if version is None or master is None or c_random is None or s_random is None:
            return None
        kb = crypto.key_block(version, f.suite, master, c_random, s_random)
        etm = f.encrypt_then_mac and not f.suite.aead
        sess.client_cipher = crypto.RecordDecryptor(
            f.suite, version, kb.client_key, kb.client_iv, kb.client_mac,
            encrypt_then_mac=etm, cid_draft=f.cid_draft)
        sess.server_cipher = crypto.RecordDecryptor(
            f.suite, version, kb.server_key, kb.server_iv, kb.server_mac,
            encrypt_then_mac=etm, cid_draft=f.cid_draft)
        return sess.client_cipher if from_client else sess.server_cipher

    def _ensure_master(self, sess: _Session) -> bool:
        """Find the master secret: keylog, resumed session, or PSK (looked up now, not earlier)."""
        if sess.master is not None:
            return True
        f = sess.facts
        if f.client_random is None or f.server_random is None:
            f.decrypt_error = "handshake not seen (session picked up mid-way)"
            return False
        logged = self.keys.keylog.get(f.client_random)
        if logged is not None:
            sess.master, f.key_source, f.decrypt_error = logged, "keylog", None
            return True
        if f.resumed:
            entry = self._resumable.get(b"id:" + f.offered_session_id) if f.offered_session_id else None
            if entry is None and f.offered_ticket:
                entry = self._resumable.get(b"ticket:" + f.offered_ticket)
            if entry is None:
                f.decrypt_error = "resumed session whose full handshake was not seen"
                return False
            sess.master, f.key_source = entry
            f.decrypt_error = None
            return True
        suite, version = f.suite, f.wire_version
        if suite is None or version is None:
            f.decrypt_error = "no ServerHello seen"
            return False
        kx = suite.kx
        if kx != "psk":
            if kx in ("ecdhe_psk", "dhe_psk", "rsa_psk"):
                f.decrypt_error = f"{kx} key exchange: the PSK is not enough, needs a keylog entry"
            else:
                f.decrypt_error = f"{kx} key exchange is not PSK: needs a keylog entry"
            return False
        if f.psk_identity is None:
            f.decrypt_error = "no ClientKeyExchange seen"
            return False
        psk = self.keys.psk(f.psk_identity)
        if psk is None:
            f.decrypt_error = "no PSK for this identity"
            return False
        session_hash = None
        if f.extended_master_secret:
            if sess.ems_upto is None:
                f.decrypt_error = "extended master secret: handshake transcript incomplete"
                return False
            session_hash = crypto.transcript_hash(version, suite.prf, sess.transcript[:sess.ems_upto])
        sess.master = crypto.master_secret(version, suite.prf,
                                           crypto.psk_premaster(psk.key), f.client_random,
                                           f.server_random, session_hash)
        f.key_source, f.decrypt_error = psk.source, None
        return True

    def _remember(self, sess: _Session) -> None:
        """Keep the master secret for later abbreviated handshakes (bounded, LRU)."""
        f = sess.facts
        if sess.master is None or f.key_source is None:
            return
        for key in ((b"id:" + f.session_id) if f.session_id else None,
                    (b"ticket:" + sess.ticket) if sess.ticket else None):
            if key is not None:
                self._resumable[key] = (sess.master, f.key_source)
                self._resumable.move_to_end(key)
        while len(self._resumable) > self.max_resumable:
            self._resumable.popitem(last=False)

    # ------------------------------------------------------------------ handshake

    def _handshake(self, sess: _Session, from_client: bool, data: bytes, dgram: Datagram,
                   res: DtlsResult) -> None:
        try:
            frags = p.parse_handshake(data)
        except ParseError as exc:
            res.anomalies.append(f"dtls.handshake_{exc.kind}")
            self._counts[exc.kind] += 1
            return
        for fr in frags:
            key = (from_client, fr.message_seq, fr.msg_type)
            if key in sess.done:
                sess.facts.retransmissions += 1
                self._counts["retransmissions"] += 1
                continue
            if fr.whole:
                body: bytes | None = fr.body
            else:
                if fr.length > MAX_MESSAGE:
                    res.anomalies.append("dtls.handshake_too_large")
                    continue
                part = sess.partial.get(key)
                if part is None and len(sess.partial) >= MAX_PARTIAL:
                    res.anomalies.append("dtls.handshake_fragments_overflow")
                    continue
                if part is None:
                    part = sess.partial[key] = _Partial(fr.msg_type, fr.length)
                body = part.add(fr.fragment_offset, fr.body)
                if body is None:
                    continue
                del sess.partial[key]
            sess.done.add(key)
            assert body is not None
            try:
                self._message(sess, from_client, fr.msg_type, fr.message_seq, body, dgram, res)
            except ParseError as exc:
                res.anomalies.append(f"dtls.{p.HANDSHAKE_NAMES.get(fr.msg_type, 'handshake')}_{exc.kind}")
                self._counts[exc.kind] += 1

    def _message(self, sess: _Session, from_client: bool, mtype: int, mseq: int, body: bytes,
                 dgram: Datagram, res: DtlsResult) -> None:
        f = sess.facts
        letter = HISTORY_LETTERS.get(mtype, UNKNOWN_LETTER)
        f.history += letter if from_client else letter.lower()
        wire = p.handshake_bytes(mtype, mseq, body)
        if mtype == p.CLIENT_HELLO:
            self._client_hello(sess, p.parse_client_hello(body))
            sess.transcript = [wire]       # the cookie-less first ClientHello is not hashed
            sess.ems_upto = None
            return
        if mtype == p.HELLO_VERIFY_REQUEST:
            p.parse_hello_verify_request(body)
            f.cookie_exchange = True
            sess.transcript = []
            return
        if mtype == p.HELLO_REQUEST:
            return
        if mtype == p.FINISHED:
            self._finished(sess, from_client, body)
            sess.transcript.append(wire)
            self._check_complete(sess, dgram, res)
            return
        if mtype == p.SERVER_HELLO:
            self._server_hello(sess, p.parse_server_hello(body))
        elif mtype == p.CERTIFICATE:
            self._certificate(sess, from_client, body)
        elif mtype == p.SERVER_KEY_EXCHANGE and f.suite is not None:
            ske = p.parse_server_key_exchange(body, f.suite.kx)
            f.psk_identity_hint, f.curve = ske.psk_identity_hint, ske.curve
            f.dh_bits, f.server_signature_scheme = ske.dh_prime_bits, ske.signature_scheme
        elif mtype == p.CERTIFICATE_REQUEST:
            f.certificate_requested = True
        elif mtype == p.SERVER_HELLO_DONE:
            sess.saw_server_hello_done = True
        elif mtype == p.CLIENT_KEY_EXCHANGE and f.suite is not None:
            f.psk_identity = p.parse_client_key_exchange(body, f.suite.kx).psk_identity
            sess.transcript.append(wire)
            sess.ems_upto = len(sess.transcript)
            return
        elif mtype == p.NEW_SESSION_TICKET:
            sess.ticket = p.parse_new_session_ticket(body).ticket or None
        sess.transcript.append(wire)

    def _client_hello(self, sess: _Session, ch: p.ClientHello) -> None:
        f = sess.facts
        f.wire_version = f.wire_version if f.wire_version == p.DTLS10_OPENSSL_PRE else ch.version
        f.client_random = ch.random
        f.offered_suites = ch.cipher_suites
        f.client_compression = ch.compression_methods
        f.client_extensions = tuple(e.type for e in ch.extensions)
        f.offered_session_id = ch.session_id
        ticket = ch.ext(p.EXT_SESSION_TICKET)
        f.offered_ticket = ticket if ticket else None
        data = ch.ext(p.EXT_SUPPORTED_GROUPS)
        f.supported_groups = p.ext_u16_list(data) if data else ()
        data = ch.ext(p.EXT_SIGNATURE_ALGORITHMS)
        f.signature_algorithms = p.ext_u16_list(data) if data else ()
        data = ch.ext(p.EXT_SERVER_NAME)
        f.server_name = p.ext_server_name(data) if data else None
        data = ch.ext(p.EXT_SUPPORTED_VERSIONS)
        f.offered_versions = p.ext_supported_versions(data, server=False) if data else ()
        sess.ch_cids = {}
        for ext_type in (p.EXT_CONNECTION_ID, p.EXT_CONNECTION_ID_DRAFT):
            data = ch.ext(ext_type)
            if data is not None:
                sess.ch_cids[ext_type] = p.ext_connection_id(data)

    def _server_hello(self, sess: _Session, sh: p.ServerHello) -> None:
        f = sess.facts
        # OpenSSL before 0.9.8f writes 0x0100 everywhere; keep what the records say then.
        if f.wire_version != p.DTLS10_OPENSSL_PRE:
            f.wire_version = sh.version
        data = sh.ext(p.EXT_SUPPORTED_VERSIONS)
        if data and p.ext_supported_versions(data, server=True)[0] == p.DTLS13:
            f.wire_version = p.DTLS13
            f.decrypt_error = "DTLS 1.3 is not decrypted"
        f.server_random = sh.random
        f.session_id = sh.session_id
        f.suite_code = sh.cipher_suite
        f.suite = lookup_suite(sh.cipher_suite)
        f.compression_method = sh.compression_method
        f.server_extensions = tuple(e.type for e in sh.extensions)
        ch_ext = set(f.client_extensions)
        f.extended_master_secret = (p.EXT_EXTENDED_MASTER_SECRET in ch_ext
                                    and sh.ext(p.EXT_EXTENDED_MASTER_SECRET) is not None)
        f.encrypt_then_mac = (p.EXT_ENCRYPT_THEN_MAC in ch_ext
                              and sh.ext(p.EXT_ENCRYPT_THEN_MAC) is not None)
        if sh.session_id and sh.session_id == f.offered_session_id:
            f.resumed, f.resumption = True, ("ticket" if f.offered_ticket else "session_id")
        for ext_type, draft in ((p.EXT_CONNECTION_ID, False), (p.EXT_CONNECTION_ID_DRAFT, True)):
            data = sh.ext(ext_type)
            if data is not None and ext_type in ch_ext:
                f.cid_to_server = p.ext_connection_id(data)
                f.cid_draft = draft
                self._cid_to_client_from_hello(sess, ext_type)
        for ext_type in (p.EXT_CLIENT_CERT_TYPE, p.EXT_SERVER_CERT_TYPE):
            data = sh.ext(ext_type)
            if data and len(data) == 1:
                if ext_type == p.EXT_CLIENT_CERT_TYPE:
                    f.client_cert_type = data[0]
                else:
                    f.server_cert_type = data[0]

    def _cid_to_client_from_hello(self, sess: _Session, ext_type: int) -> None:
        f = sess.facts
        # The ClientHello's CID is what the server puts in records to the client.
        f.cid_to_client = sess.ch_cids.get(ext_type)
        for cid in (f.cid_to_server, f.cid_to_client):
            if cid:
                self._by_cid[cid] = sess
                self._cid_lengths[len(cid)] = self._cid_lengths.get(len(cid), 0) + 1

    def _certificate(self, sess: _Session, from_client: bool, body: bytes) -> None:
        f = sess.facts
        rpk = (f.client_cert_type if from_client else f.server_cert_type) == 2
        items = p.parse_certificate(body, raw_public_key=rpk)
        if rpk:
            from .dtls_certs import rpk_facts       # cryptography.x509: imported when first needed
            facts = rpk_facts(items[0])
            if from_client:
                f.client_rpk = facts
            else:
                f.server_rpk = facts
            return
        from .dtls_certs import x509_facts          # (30 ms of every run's start-up otherwise)
        certs = [x509_facts(der) for der in items]
        if from_client:
            f.client_certs = certs
        else:
            f.server_certs = certs

    def _finished(self, sess: _Session, from_client: bool, body: bytes) -> None:
        f = sess.facts
        if from_client:
            f.client_finished = True
        else:
            f.server_finished = True
        if sess.master is None or f.suite is None or f.wire_version is None:
            return
        expected = crypto.verify_data(f.wire_version, f.suite.prf, sess.master, from_client,
                                      crypto.transcript_hash(f.wire_version, f.suite.prf, sess.transcript))
        ok = expected == body
        f.finished_verified = ok if f.finished_verified is None else (f.finished_verified and ok)
        if not ok:
            f.decrypt_error = "Finished verify_data mismatch (handshake transcript incomplete?)"

    def _ccs(self, sess: _Session, from_client: bool) -> None:
        f = sess.facts
        if from_client in sess.ccs:
            return
        sess.ccs.add(from_client)
        if not from_client and not sess.saw_server_hello_done and f.server_random and not f.resumed:
            f.resumed, f.resumption = True, ("ticket" if f.offered_ticket else "session_id")

    def _check_complete(self, sess: _Session, dgram: Datagram, res: DtlsResult) -> None:
        f = sess.facts
        if f.emitted or not (f.client_finished and f.server_finished):
            return
        f.established = True
        f.end_ts_ns, f.end_frame = dgram.ts_ns, dgram.frame
        self._remember(sess)
        res.documents.append(self._emit(sess, "success"))

    def _alert(self, sess: _Session, from_client: bool, data: bytes | None, encrypted: bool,
               dgram: Datagram, res: DtlsResult) -> None:
        f = sess.facts
        level = description = None
        if data is not None:
            try:
                a = p.parse_alert(data)
                level, description = a.level, a.description
            except ParseError as exc:
                res.anomalies.append(f"dtls.alert_{exc.kind}")
                return
        fact = AlertFact(dgram.ts_ns, dgram.frame, from_client, level, description, encrypted)
        f.alerts.append(fact)
        self._counts["alerts"] += 1
        res.documents.append(alert_document(f, fact, dgram))
        # An alert we cannot read during a handshake we watched is almost always fatal; in a
        # session picked up mid-way it is more likely a close_notify, so it decides nothing.
        fatal = level == 2 or (level is None and not f.mid_session
                               and not (f.client_finished and f.server_finished))
        if fatal:
            f.fatal_alert = True
            if not f.emitted:
                f.failed = True
                f.end_ts_ns, f.end_frame = dgram.ts_ns, dgram.frame
                res.documents.append(self._emit(sess, "failure"))
