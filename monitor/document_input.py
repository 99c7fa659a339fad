"""Input of the offline views (`inventory`, `report`): capture files, run through the pipeline,
or NDJSON files of documents written by `lwm2m-monitor analyze`, told apart by content.

A file whose first non-blank byte (after gzip decompression) is `{` is NDJSON; anything else
is handed to the capture reader, which names what it cannot read. The path `-` is standard
input (`analyze x.pcap --out - | lwm2m-monitor report -`, `ssh sensor cat events.ndjson | ...`),
read whole first (these views hold every document anyway) and told apart the same way.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable

from .capture import STDIN, STDIN_NAME

_GZIP_MAGIC = b"\x1f\x8b"
_PEEK = 4096


class DocumentInputError(Exception):
    """An input file is missing, unreadable, or an NDJSON line is not a JSON object."""


@dataclass
class Loaded:
    docs: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # capture damage (read up to the damage)


def _decompressed(f: BinaryIO) -> BinaryIO:
    """`f` (a file or the bytes of standard input), decompressed if it is gzip."""
    gz = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    return gzip.GzipFile(fileobj=f) if gz else f


def _open(path: str) -> BinaryIO:
    return _decompressed(open(path, "rb"))


def _starts_ndjson(raw: bytes) -> bool:
    """Whether the input starting with `raw` is NDJSON, looked at decompressed: a cut or damaged
    gzip stream still shows its first bytes (then reading it says what is wrong)."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = zlib.decompressobj(31).decompress(raw, _PEEK)
        except zlib.error:
            return False                # let the capture reader say what is wrong
    return raw.lstrip()[:1] == b"{"


def is_ndjson(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            raw = f.read(_PEEK)
    except OSError:
        return False                    # let the capture reader say what is wrong
    return _starts_ndjson(raw)


def read_ndjson(path: str) -> list[dict]:
    with _open(path) as f:
        return _documents(f, path)


def _documents(lines: Iterable[bytes], name: str) -> list[dict]:
    docs: list[dict] = []
    n = 0
    try:
        for n, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise DocumentInputError(f"{name}:{n}: not a JSON document ({type(exc).__name__})") from None
            if not isinstance(doc, dict):
                raise DocumentInputError(f"{name}:{n}: not a JSON object")
            docs.append(doc)
    except (OSError, EOFError) as exc:         # a damaged or cut gzip stream
        raise DocumentInputError(f"{name}: cannot read ({exc})") from None
    return docs


def _read_stdin(stream: BinaryIO) -> tuple[bytes, bool]:
    """Standard input's bytes, and whether they are NDJSON (looked at decompressed)."""
    try:
        data = stream.read()
    except OSError as exc:
        raise DocumentInputError(f"{STDIN_NAME}: cannot read ({exc.strerror or exc})") from None
    return data, _starts_ndjson(data[:_PEEK])


def load(paths: list[str], make_config: Callable[[], object], stdin: BinaryIO | None = None) -> Loaded:
    """Documents of every input in order: NDJSON files as written, captures through one pipeline
    run (`make_config` is called only when there is a capture, so NDJSON needs no keys). The
    path `-` reads `stdin` (default: the process's standard input)."""
    if paths.count(STDIN) > 1:
        raise DocumentInputError("standard input (-) can be read only once")
    for p in paths:
        if p == STDIN:
            continue
        if not os.path.isfile(p):
            raise DocumentInputError(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise DocumentInputError(f"{p}: file is not readable")
    piped, piped_ndjson = b"", False
    if STDIN in paths:
        piped, piped_ndjson = _read_stdin(stdin if stdin is not None else sys.stdin.buffer)
    out = Loaded()
    captures = [p for p in paths if not (piped_ndjson if p == STDIN else is_ndjson(p))]
    for p in paths:
        if p in captures:
            continue
        if p == STDIN:
            out.docs.extend(_documents(_decompressed(io.BytesIO(piped)), STDIN_NAME))
        else:
            out.docs.extend(read_ndjson(p))
    if captures:
        from .analyze import collect
        from .capture import CaptureError
        try:
            docs, result = collect(captures, make_config(), stdin=io.BytesIO(piped))
        except CaptureError as exc:
            raise DocumentInputError(str(exc)) from None
        out.docs.extend(docs)
        out.errors.extend(result.errors)
    return out
