"""Outputs: every sink takes the same documents (plain nested dicts, ../shared/EVENTS.md).

`Sink` is the interface the pipeline driver talks to; `close()` returns a `SinkReport` whose
counts let the CLI say what happened (and tests prove nothing was lost). File sinks live here;
the Elasticsearch sink is monitor/es_sink.py.
"""
from __future__ import annotations

import io
import json

import orjson
import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from .reclaim import open_fresh


@dataclass(frozen=True, slots=True)
class SinkReport:
    """What a sink did. `sent` counts documents stored (written/indexed) by this sink."""

    sink: str
    sent: int = 0
    duplicates: int = 0            # already stored (same event.id): delivered, not re-stored
    dead_lettered: int = 0         # rejected per document, written to the dead-letter file with the reason
    spooled_remaining: int = 0     # still on disk, not yet delivered
    retries: int = 0               # requests repeated after a transient failure
    files: tuple[str, ...] = ()    # files written (NDJSON segments, table, dead-letter, spool)
    errors: tuple[str, ...] = ()   # last distinct transport errors (no secrets)

    def summary(self) -> str:
        """One line for the CLI; problems first so they are not missed."""
        parts = [f"{self.sent:,} sent"]
        if self.duplicates:
            parts.append(f"{self.duplicates:,} already stored")
        if self.dead_lettered:
            parts.append(f"{self.dead_lettered:,} REJECTED (see dead-letter file)")
        if self.spooled_remaining:
            parts.append(f"{self.spooled_remaining:,} NOT YET DELIVERED (spooled, replayed by the next run)")
        if self.retries:
            parts.append(f"{self.retries:,} retries")
        line = f"{self.sink}: " + ", ".join(parts)
        if self.errors and (self.spooled_remaining or self.dead_lettered or self.retries):
            line += f"; last error: {self.errors[-1]}"
        return line


class Sink(Protocol):
    def write(self, docs: list[dict]) -> None: ...

    def close(self) -> SinkReport: ...


# Keys in insertion order: the builders add them in a fixed order (`@timestamp`, `event`, then
# the namespaces), so the same capture gives the same bytes; sorting cost 40 % of the encoding.
_LINE = orjson.OPT_APPEND_NEWLINE
_ANY_KEYS = _LINE | orjson.OPT_NON_STR_KEYS         # a third slower: only when a key is not a str


def dumps_line_plain(doc: dict) -> bytes | None:
    """`dumps_line` of a document that reads back as the same JSON (`orjson.loads`): None when
    it needs a fallback (a key that is not a str, an integer beyond 64 bits)."""
    try:
        return orjson.dumps(doc, option=_LINE)
    except TypeError:
        return None


def dumps_line(doc: dict) -> bytes:
    """The one NDJSON encoding, as the UTF-8 line a file gets: stable key order, compact,
    non-ASCII kept as is (orjson: the encoder is a large share of the per-document cost)."""
    line = dumps_line_plain(doc)
    if line is not None:
        return line
    try:
        return orjson.dumps(doc, option=_ANY_KEYS)
    except TypeError:       # an integer beyond 64 bits (a CBOR bignum): the stdlib keeps every digit
        pass
    try:
        return (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    except ValueError:      # beyond the interpreter's 4,300-digit limit: such a number as hex text
        return (json.dumps(_huge_ints_as_hex(doc), separators=(",", ":"),
                           ensure_ascii=False) + "\n").encode()


HUGE_INT_BITS = 14_000              # 4,214 decimal digits: below the 4,300 of int-to-str conversion


def _huge_ints_as_hex(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _huge_ints_as_hex(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_huge_ints_as_hex(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > HUGE_INT_BITS:
        return hex(value)
    return value


def dumps(doc: dict) -> str:
    """`dumps_line` as text, without the newline."""
    return dumps_line(doc)[:-1].decode()


def _reuse(lines: dict[int, tuple[dict, bytes]], doc: dict) -> bytes:
    known = lines.pop(id(doc), None)
    return known[1] if known is not None and known[0] is doc else dumps_line(doc)


def append_file(src: BinaryIO, dst: BinaryIO, start: int = 0) -> int:
    """Append `src`, from offset `start` to its current end, to the flushed binary file `dst`: in
    the kernel (`copy_file_range`, no pass through user space) where the system allows it, else
    by a buffered copy. Returns the offset copied up to (`src` may still be growing)."""
    size = os.fstat(src.fileno()).st_size
    done = start
    try:
        while done < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - done, offset_src=done)
            if n == 0:
                break
            done += n
    except (AttributeError, OSError):    # no such call, another file system, a pipe, ...
        pass
    if done < size:
        src.seek(done)
        while done < size:
            chunk = src.read(min(1 << 20, size - done))
            if not chunk:
                break
            dst.write(chunk)
            done += len(chunk)
    return done


WRITE_BUFFER = 1 << 20


class NdjsonSink:
    """One JSON document per line. With `rotate_bytes`, the file at `path` is closed once it
    reaches that size and renamed `<stem>.<n:06d><ext>` (n = 1, 2, ... oldest first), and a new
    `path` is started, so readers find the newest at `path` (live runs). Lines are never split
    between files. `path` "-" writes to standard output (no rotation)."""

    def __init__(self, path: str, rotate_bytes: int | None = None, append: bool = False):
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError("rotate_bytes must be positive")
        self.path = path
        self.rotate_bytes = rotate_bytes
        self._stdout = path == "-"
        self._sent = 0
        self._rotated: list[str] = []
        self._size = 0
        self._lines: dict[int, tuple[dict, bytes]] | None = None
        self._f: Any                            # standard output (text) or the file (binary)
        if self._stdout:
            import sys
            self._f = sys.stdout
        else:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            # bytes straight from the encoder (no decode/encode pass), in 1 MiB writes: with the
            # default 8 KiB buffer, 200,000 write calls per 1M packets cost about 7 % of the CPU
            # writing over an earlier output: its old blocks are freed aside, not waited for
            self._f = open(path, "ab", buffering=WRITE_BUFFER) if append else open_fresh(path, WRITE_BUFFER)

    def write(self, docs: list[dict]) -> None:
        if not docs:
            return
        if self._stdout:
            self._f.write("".join(dumps(d) + "\n" for d in docs))
            self._sent += len(docs)
            return
        lines = self._lines
        if self.rotate_bytes is None:
            if lines:
                self._f.writelines([_reuse(lines, d) for d in docs])
            else:
                self._f.writelines(map(dumps_line, docs))    # line by line: no batch-sized copy
            self._sent += len(docs)
            return
        for d in docs:
            line = _reuse(lines, d) if lines else dumps_line(d)
            self._f.write(line)
            self._size += len(line)
            self._sent += 1
            if self._size >= self.rotate_bytes:
                self._rotate()

    @property
    def to_stdout(self) -> bool:
        return self._stdout

    def reuse_lines(self, lines: dict[int, tuple[dict, bytes]]) -> None:
        """Write the lines another stage already encoded (`RuleEngine.share_lines`: keyed by
        `id(document)`, with the document itself so that a recycled id cannot match)."""
        self._lines = lines

    def append_encoded(self, src: BinaryIO, count: int) -> bool:
        """Append `count` documents already encoded by `dumps_line` (a worker's part file) as
        they are; False when this sink cannot take raw lines (standard output, rotation)."""
        if self._stdout or self.rotate_bytes is not None:
            return False
        self._f.flush()
        append_file(src, self._f)
        self._sent += count
        return True

    def follow_encoded(self, src: BinaryIO, start: int) -> int:
        """Append what a worker has written to its part file `src` since offset `start` (it may
        still be writing; lines can be cut, the next call continues them); returns the new offset.
        The documents are counted once the part is complete (`adopt_appended`)."""
        self._f.flush()
        return append_file(src, self._f, start)

    def shared_file(self) -> str | None:
        """The file another process may append encoded lines to (then `adopt_appended`), with
        what this sink holds flushed; None for standard output and rotating sinks."""
        if self._stdout or self.rotate_bytes is not None:
            return None
        self._f.flush()
        return self.path

    def adopt_appended(self, count: int) -> None:
        """`count` lines were appended to the file by another process (a sharded worker)."""
        self._f.flush()
        self._f.seek(0, os.SEEK_END)
        self._sent += count

    def _rotate(self) -> None:
        self._f.close()
        stem, ext = os.path.splitext(self.path)
        target = f"{stem}.{len(self._rotated) + 1:06d}{ext}"
        os.replace(self.path, target)
        self._rotated.append(target)
        self._f = open(self.path, "wb", buffering=WRITE_BUFFER)
        self._size = 0

    def close(self) -> SinkReport:
        if self._stdout:
            self._f.flush()
            files: tuple[str, ...] = ()
        else:
            self._f.close()
            files = tuple(self._rotated) + (self.path,)
        return SinkReport("ndjson", sent=self._sent, files=files)


TABLE_FORMATS = ("parquet", "csv")


class TableSink:
    """`--format parquet|csv`: the same documents flattened by `pandas.json_normalize` (one
    column per dotted field, sorted), written at close. Lists and objects (e.g. `lwm2m.values`,
    whose values mix numbers and strings) become canonical JSON strings so any column has one
    type and the table reads back identically."""

    def __init__(self, path: str, format: str):
        if format not in TABLE_FORMATS:
            raise ValueError(f"table format must be one of {', '.join(TABLE_FORMATS)}, not {format!r}")
        self.path = path
        self.format = format
        self._docs: list[dict] = []

    def write(self, docs: list[dict]) -> None:
        self._docs.extend(docs)

    def frame(self):
        """The DataFrame that close() writes."""
        import pandas as pd

        df = pd.json_normalize(self._docs, sep=".") if self._docs else pd.DataFrame()
        df = df.reindex(columns=sorted(df.columns))
        for col in df.columns:
            if df[col].dtype == object:
                cells = [_cell(v) for v in df[col]]
                kinds = {type(v) for v in cells if v is not None and v == v}
                if len(kinds) > 1:          # e.g. a field that is a number here, a string there
                    cells = [None if v is None or v != v else json.dumps(v, ensure_ascii=False) for v in cells]
                df[col] = cells
        return df

    def close(self) -> SinkReport:
        df = self.frame()
        if self.path == "-":                 # standard output: `--format csv --out - | ...`
            if self.format == "parquet":     # built whole first: the writer seeks, a pipe cannot
                buf = io.BytesIO()
                df.to_parquet(buf, index=False)
                sys.stdout.buffer.write(buf.getvalue())
                sys.stdout.buffer.flush()
            else:
                sys.stdout.write(df.to_csv(index=False, lineterminator="\n"))
                sys.stdout.flush()
            return SinkReport(self.format, sent=len(df), files=())
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        if self.format == "parquet":
            df.to_parquet(self.path, index=False)
        else:
            df.to_csv(self.path, index=False, lineterminator="\n")
        return SinkReport(self.format, sent=len(df), files=(self.path,))


def _cell(v):
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return v
