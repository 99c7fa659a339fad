"""Input of the offline views (`inventory`, `report`): capture files, run through the pipeline,
or NDJSON files of documents written by `lwm2m-monitor analyze`, told apart by content.

A file whose first non-blank byte (after gzip decompression) is `{` is NDJSON; anything else
is handed to the capture reader, which names what it cannot read.
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from typing import Callable

_GZIP_MAGIC = b"\x1f\x8b"
_PEEK = 4096


class DocumentInputError(Exception):
    """An input file is missing, unreadable, or an NDJSON line is not a JSON object."""


@dataclass
class Loaded:
    docs: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # capture damage (read up to the damage)


def _open(path: str):
    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gz else open(path, "rb")


def is_ndjson(path: str) -> bool:
    try:
        with _open(path) as f:
            head = f.read(_PEEK)
    except (OSError, EOFError):
        return False                    # let the capture reader say what is wrong
    return head.lstrip()[:1] == b"{"


def read_ndjson(path: str) -> list[dict]:
    docs: list[dict] = []
    with _open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise DocumentInputError(f"{path}:{n}: not a JSON document ({type(exc).__name__})") from None
            if not isinstance(doc, dict):
                raise DocumentInputError(f"{path}:{n}: not a JSON object")
            docs.append(doc)
    return docs


def load(paths: list[str], make_config: Callable[[], object]) -> Loaded:
    """Documents of every input in order: NDJSON files as written, captures through one pipeline
    run (`make_config` is called only when there is a capture, so NDJSON needs no keys)."""
    for p in paths:
        if not os.path.isfile(p):
            raise DocumentInputError(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise DocumentInputError(f"{p}: file is not readable")
    out = Loaded()
    captures = [p for p in paths if not is_ndjson(p)]
    for p in paths:
        if p not in captures:
            out.docs.extend(read_ndjson(p))
    if captures:
        from .analyze import collect
        from .capture import CaptureError
        try:
            docs, result = collect(captures, make_config())
        except CaptureError as exc:
            raise DocumentInputError(str(exc)) from None
        out.docs.extend(docs)
        out.errors.extend(result.errors)
    return out
