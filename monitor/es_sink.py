"""Elasticsearch sink: bulk indexing that loses nothing and duplicates nothing.

- One index / data stream per dataset, `logs-<event.dataset>-<namespace>`; data streams where
  the server has them (detected with GET /_data_stream), plain indices otherwise. Either way
  the op type is `create` with `_id = event.id`, so a resent document answers 409 "already
  there": counted as delivered (`duplicates`), never stored twice.
- `write()` only queues; one delivery thread batches by size and by time (a quiet network
  still gets its last documents out after `flush_seconds`), so a slow node or a backoff never
  stalls the caller's capture loop. `close()` delivers what is left and joins the thread.
- Transient failures (connection errors, timeouts, 429, 5xx, 401/403) are retried with bounded
  exponential backoff, then the documents go to an append-only NDJSON spool on disk. While the
  spool holds anything, new documents queue behind it and the node is probed at most every
  `probe_seconds`; on recovery the spool is replayed in order before new documents. A spool
  left by an earlier run is replayed first too.
- Per-document rejections (400 mapping errors, ...) go to the dead-letter NDJSON file with the
  status and reason. Nothing is dropped silently.
- Secrets (password, API key) never appear in reports or errors.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch.helpers import streaming_bulk

from . import es_template
from .sinks import SinkReport, dumps

# Statuses that say "try again later", not "this document is wrong".
TRANSIENT_STATUS = frozenset({401, 403, 408, 429, 500, 502, 503, 504})
DUPLICATE_STATUS = 409
_BAD_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:\-]+')


class EsConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EsConfig:
    url: str
    api_key: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: str | None = None
    namespace: str = "default"
    spool_dir: str = "lwm2m-es-spool"
    dead_letter: str | None = None          # default: <spool_dir>/dead-letter.ndjson
    batch_docs: int = 1000
    batch_bytes: int = 5_000_000
    flush_seconds: float = 2.0              # a partial batch waits at most this long
    max_retries: int = 4                    # per batch, before spooling
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    probe_seconds: float = 5.0              # while spooling: how often to try the node again
    max_pending: int = 100_000              # queued documents before write() waits (node up) or spools (down)
    timeout: float = 30.0
    replicas: int | None = None             # index template number_of_replicas (None: server default)

    ENV = {"url": "LWM2M_ES_URL", "api_key": "LWM2M_ES_API_KEY", "user": "LWM2M_ES_USER",
           "password": "LWM2M_ES_PASSWORD", "ca": "LWM2M_ES_CA"}

    @classmethod
    def from_env_and_args(cls, url: str | None = None, *, api_key: str | None = None,
                          user: str | None = None, password: str | None = None, ca: str | None = None,
                          env: dict | None = None, **options) -> "EsConfig":
        """Command-line values win over LWM2M_ES_* environment variables."""
        env = os.environ if env is None else env
        given = {"url": url, "api_key": api_key, "user": user, "password": password, "ca": ca}
        v = {k: (given[k] if given[k] else env.get(name) or None) for k, name in cls.ENV.items()}
        if not v["url"]:
            raise EsConfigError("no Elasticsearch URL: give --es URL or set LWM2M_ES_URL")
        parts = urlsplit(v["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EsConfigError("Elasticsearch URL must be http(s)://host[:port]")
        if parts.username is not None:          # credentials in the URL: move them out of it
            v["user"] = v["user"] or unquote(parts.username)
            v["password"] = v["password"] or unquote(parts.password or "")
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            v["url"] = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        if v["api_key"] and (v["user"] or v["password"]):
            raise EsConfigError("give either an Elasticsearch API key or a user and password, not both")
        if bool(v["user"]) != bool(v["password"]):
            raise EsConfigError("Elasticsearch user and password go together")
        if v["ca"] and not os.path.isfile(v["ca"]):
            raise EsConfigError(f"Elasticsearch CA file not found: {v['ca']}")
        return cls(**v, **options)

    def client(self) -> Elasticsearch:
        kw: dict = {"request_timeout": self.timeout, "max_retries": 0, "retry_on_timeout": False}
        if self.api_key:
            kw["api_key"] = self.api_key
        elif self.user:
            kw["basic_auth"] = (self.user, self.password)
        if self.ca:
            kw["ca_certs"] = self.ca
        return Elasticsearch(self.url, **kw)


@dataclass(frozen=True, slots=True)
class _Item:
    index: str
    id: str
    line: str           # the document as its NDJSON line (bulk body, spool and dead-letter share it)


class Spool:
    """Append-only NDJSON segments `spool-<n:06d>.ndjson`; `<segment>.done` holds how many leading
    lines of a segment were delivered (so a half-replayed segment is not resent)."""

    def __init__(self, directory: str):
        self.dir = directory
        self._lock = threading.Lock()       # the caller (overflow) and the delivery thread append
        os.makedirs(directory, exist_ok=True)
        self.pending = sum(self._remaining(s) for s in self.segments())
        self.seal()     # a spool left by a crashed run may end in a torn line: never append to it

    def segments(self) -> list[str]:
        names = sorted(n for n in os.listdir(self.dir) if n.startswith("spool-") and n.endswith(".ndjson"))
        return [os.path.join(self.dir, n) for n in names]

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            segs = self.segments()
            target = segs[-1] if segs else os.path.join(self.dir, "spool-000001.ndjson")
            with open(target, "a", encoding="utf-8", newline="\n") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())
            self.pending += len(lines)

    def seal(self) -> list[str]:
        """Later appends go to a new segment; returns the sealed segments, oldest first, which
        nobody appends to any more and a replay may read and delete."""
        with self._lock:
            segs = self.segments()
            if segs and os.path.getsize(segs[-1]):
                n = int(os.path.basename(segs[-1])[6:12]) + 1
                open(os.path.join(self.dir, f"spool-{n:06d}.ndjson"), "a").close()
                return segs
            return segs[:-1]

    def read(self, segment: str) -> tuple[list[str], int]:
        with open(segment, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        return lines, self._done(segment)

    def mark(self, segment: str, done: int, delivered_now: int) -> None:
        tmp = segment + ".done.tmp"
        with open(tmp, "w") as f:
            f.write(str(done))
        os.replace(tmp, segment + ".done")
        with self._lock:
            self.pending -= delivered_now

    def remove(self, segment: str, delivered_now: int) -> None:
        os.remove(segment)
        if os.path.exists(segment + ".done"):
            os.remove(segment + ".done")
        with self._lock:
            self.pending -= delivered_now

    def _done(self, segment: str) -> int:
        try:
            with open(segment + ".done") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _remaining(self, segment: str) -> int:
        lines, done = self.read(segment)
        return max(0, len(lines) - done)


class EsSink:
    def __init__(self, config: EsConfig, client: Elasticsearch | None = None):
        self.config = config
        self.client = client or config.client()
        self.spool = Spool(config.spool_dir)
        self.dead_letter_path = config.dead_letter or os.path.join(config.spool_dir, "dead-letter.ndjson")
        self.data_streams: bool | None = None       # known after the first contact
        self._ready = False
        self._pending: list[_Item] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._next_probe = 0.0
        self.sent = self.duplicates = self.dead_lettered = self.retries = 0
        self.errors: list[str] = []
        # One delivery thread, so neither a slow node nor a retry backoff stalls the caller
        # (the live capture loop), and a quiet network still gets its last batch out on time.
        self._cond = threading.Condition()
        self._closing = False
        self._outage = False
        self._crashed = False
        self._worker = threading.Thread(target=self._run, name="lwm2m-es-sink", daemon=True)
        self._worker.start()

    # -- Sink interface -------------------------------------------------------------------------
    def write(self, docs: list[dict]) -> None:
        """Queues the documents; the delivery thread sends them. Blocks only when the queue is
        full while the node is up (back-pressure); with the node down a full queue goes to disk."""
        items = [self._item(d) for d in docs]
        with self._cond:
            if items and not self._pending:
                self._pending_since = time.monotonic()
            self._pending.extend(items)
            self._pending_bytes += sum(len(it.line) for it in items)
            while (len(self._pending) > self.config.max_pending and not self._outage
                   and self._worker.is_alive()):
                self._cond.wait(0.5)
            if len(self._pending) > self.config.max_pending:
                self.spool.append([it.line for it in self._pending])
                self._pending, self._pending_bytes = [], 0
            self._cond.notify_all()

    def close(self) -> SinkReport:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join()
        if self._pending or self._crashed:      # the thread died: deliver from here instead
            self._flush(final=True)
        self.client.close()
        files = tuple(p for p in (self.dead_letter_path,) if os.path.exists(p)) + tuple(self.spool.segments())
        return SinkReport("elasticsearch", sent=self.sent, duplicates=self.duplicates,
                          dead_lettered=self.dead_lettered, spooled_remaining=self.spool.pending,
                          retries=self.retries, files=files, errors=tuple(self.errors[-5:]))

    # -- delivery thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closing and not self._due():
                        self._cond.wait(self._wait_time())
                    closing = self._closing
                self._flush(final=closing)
                with self._cond:
                    self._outage = self.spool.pending > 0
                    self._cond.notify_all()
                    if closing and not self._pending:
                        return
        except BaseException as exc:   # a bug must not strand documents: close() takes over
            self._crashed = True
            self._error_text(f"delivery thread stopped: {type(exc).__name__}: {exc}")
            with self._cond:
                self._outage = True
                self._cond.notify_all()

    def _due(self) -> bool:
        now = time.monotonic()
        if self.spool.pending and now >= self._next_probe:
            return True
        return bool(self._pending) and (len(self._pending) >= self.config.batch_docs
                                        or self._pending_bytes >= self.config.batch_bytes
                                        or now - self._pending_since >= self.config.flush_seconds)

    def _wait_time(self) -> float:
        now = time.monotonic()
        waits = [1.0]
        if self._pending:
            waits.append(self._pending_since + self.config.flush_seconds - now)
        if self.spool.pending:
            waits.append(self._next_probe - now)
        return max(0.01, min(waits))

    def _flush(self, final: bool = False) -> None:
        """Deliver the spool (in order) then the queued documents; what cannot go now is spooled.
        `final` (close) always tries the node, with the full backoff schedule."""
        with self._cond:
            batch, self._pending, self._pending_bytes = self._pending, [], 0
        retries = self.config.max_retries
        if self.spool.pending:
            if not final and time.monotonic() < self._next_probe:
                self.spool.append([it.line for it in batch])
                return
            if not self._replay(retries if final else 0):
                self.spool.append([it.line for it in batch])
                self._next_probe = time.monotonic() + self.config.probe_seconds
                return
        left = self._deliver(batch, retries)
        if left:
            self.spool.append([it.line for it in left])
            self._next_probe = time.monotonic() + self.config.probe_seconds

    # -- internals ------------------------------------------------------------------------------
    def _item(self, doc: dict) -> _Item:
        line = dumps(doc)
        event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
        dataset = event.get("dataset") or "lwm2m.generic"
        # Dashes separate type-dataset-namespace in data stream names; other chars are illegal.
        dataset = _BAD_INDEX_CHARS.sub("_", str(dataset).lower()).strip("._") or "lwm2m.generic"
        eid = event.get("id") or hashlib.sha256(line.encode()).hexdigest()[:24]
        return _Item(f"logs-{dataset}-{self.config.namespace}", str(eid), line)

    def _replay(self, retries: int) -> bool:
        """Sends the spool in order; True when it is empty afterwards. Rounds repeat while the
        caller's overflow keeps adding segments, so spooled documents go before queued ones."""
        step = self.config.batch_docs
        while True:
            sealed = self.spool.seal()
            if not sealed:
                return True
            for seg in sealed:
                lines, done = self.spool.read(seg)
                while done < len(lines):
                    chunk = lines[done:done + step]
                    items = []
                    for line in chunk:
                        try:
                            items.append(self._item(json.loads(line)))
                        except ValueError as exc:      # a torn line from a crash: kept, with the reason
                            self._dead_letter_line(line, None, f"unreadable spool line: {exc}")
                    left = self._deliver(items, retries)
                    if left:
                        first = chunk.index(left[0].line)
                        self.spool.mark(seg, done + first, first)
                        return False
                    done += len(chunk)
                    self.spool.mark(seg, done, len(chunk))
                self.spool.remove(seg, 0)

    def _deliver(self, items: list[_Item], retries: int) -> list[_Item]:
        """Bulk-creates `items`; returns those still undelivered after transient failures."""
        todo = items
        for attempt in range(retries + 1):
            if not todo:
                return []
            if attempt:
                self.retries += 1
                time.sleep(min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1)))
            try:
                self._setup()
                todo = self._bulk(todo)
            except (TransportError, ApiError) as exc:
                self._error(exc)
            if todo and not self._outage:       # writers stop waiting for a queue that cannot drain
                with self._cond:
                    self._outage = True
                    self._cond.notify_all()
        return todo

    def _bulk(self, items: list[_Item]) -> list[_Item]:
        actions = ({"_op_type": "create", "_index": it.index, "_id": it.id, "_source": it.line} for it in items)
        transient: list[_Item] = []
        n = 0
        try:
            for ok, info in streaming_bulk(self.client, actions, chunk_size=self.config.batch_docs,
                                           max_chunk_bytes=self.config.batch_bytes, raise_on_error=False,
                                           raise_on_exception=False, max_retries=0, yield_ok=True):
                it = items[n]
                n += 1
                if ok:
                    self.sent += 1
                    continue
                detail = next(iter(info.values()))
                status = detail.get("status")
                if status == DUPLICATE_STATUS:
                    self.duplicates += 1
                elif status is None or status in TRANSIENT_STATUS:
                    transient.append(it)
                    self._error_text(f"HTTP {status}: {_reason(detail.get('error'))}")
                else:
                    self._dead_letter(it, status, detail.get("error"))
        except TransportError as exc:      # connection lost mid-request: the rest goes again
            self._error(exc)
            return transient + items[n:]
        return transient

    def _setup(self) -> None:
        """Once per sink: detect data streams, install the templates (before any document)."""
        if self._ready:
            return
        try:
            self.client.indices.get_data_stream()
            self.data_streams = True
        except ApiError as exc:
            if exc.status_code not in (400, 404, 405):
                raise
            self.data_streams = False          # e.g. a node without the data-streams module
        for name, body in es_template.component_templates(self.config.replicas).items():
            self.client.cluster.put_component_template(name=name, **body)
        self.client.indices.put_index_template(name=es_template.NAME,
                                               **es_template.index_template(self.data_streams))
        self._ready = True

    def _dead_letter(self, item: _Item, status: int | None, error) -> None:
        self._dead_letter_line(item.line, status, _reason(error), item.index, item.id)

    def _dead_letter_line(self, line: str, status: int | None, reason: str,
                          index: str | None = None, doc_id: str | None = None) -> None:
        try:
            document = json.loads(line)
        except ValueError:
            document = line
        record = {"status": status, "reason": reason, "index": index, "_id": doc_id, "document": document}
        parent = os.path.dirname(os.path.abspath(self.dead_letter_path))
        os.makedirs(parent, exist_ok=True)
        with open(self.dead_letter_path, "a", encoding="utf-8", newline="\n") as f:
            f.write(dumps(record) + "\n")
        self.dead_lettered += 1

    def _error(self, exc: Exception) -> None:
        if isinstance(exc, ApiError):
            text = f"HTTP {exc.status_code}: {_reason(exc.body if isinstance(exc.body, dict) else str(exc))}"
        else:
            text = f"{type(exc).__name__}: {getattr(exc, 'message', '') or exc}"
        self._error_text(text)

    def _error_text(self, text: str) -> None:
        for secret in (self.config.password, self.config.api_key):
            if secret:
                text = text.replace(secret, "***")
        if not self.errors or self.errors[-1] != text:
            self.errors.append(text[:500])
            del self.errors[:-20]


def _reason(error) -> str:
    """`type: reason (caused by: ...)` from a bulk item error or an API error body."""
    if isinstance(error, dict):
        err = error.get("error", error)
        if isinstance(err, dict):
            text = f"{err.get('type', 'error')}: {err.get('reason', '')}"
            cause = err.get("caused_by")
            if isinstance(cause, dict):
                text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
            return text
        return str(err)
    return str(error)
