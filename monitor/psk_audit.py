"""Weak-PSK audit (`--psk-wordlist FILE`, rule weak-psk): is a captured handshake's PSK guessable?

For each candidate key of the wordlist, the capture's DTLS datagrams run through a fresh
`DtlsTracker` whose key store answers every identity with that candidate; a handshake whose
Finished then verifies (`dtls.finished_verified`) used that key, proven offline from what was
on the wire. Offline only: the audit re-reads the file named by the document's `file.path`
(once per file; cost = wordlist size x DTLS datagrams). The key is never reported, only the
wordlist file name and line (`dtls.psk_audit.source`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .keys import KeyStore, Psk

_HEX = re.compile(r"^(?:0x)?([0-9a-fA-F]{2})+$")
MAX_CANDIDATES = 10_000


class _OneKey(KeyStore):
    """A key store that offers one candidate PSK for every identity."""

    def __init__(self, key: bytes):
        super().__init__()
        self._candidate = key

    def psk(self, identity: bytes) -> Psk | None:
        return Psk(identity, self._candidate, source="wordlist")


@dataclass
class PskAudit:
    candidates: list[tuple[int, bytes]]            # (line number, key)
    source: str                                     # wordlist file name (no directory)
    _by_file: dict[str, dict[str, int]] = field(default_factory=dict)   # file -> event.id -> line

    @classmethod
    def from_file(cls, path: str, keys=None) -> "PskAudit":
        from .rule_engine import RuleError
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise RuleError(f"{path}: cannot read the PSK wordlist ({exc.strerror})") from None
        out: list[tuple[int, bytes]] = []
        for n, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("text:"):
                key = text[5:].encode("utf-8", "surrogateescape")
            elif _HEX.match(text):
                key = bytes.fromhex(text[2:] if text.startswith("0x") else text)
            else:
                key = text.encode("utf-8", "surrogateescape")
            out.append((n, key))
        if not out:
            raise RuleError(f"{path}: the PSK wordlist has no keys (one per line: hex, or text:...)")
        if len(out) > MAX_CANDIDATES:
            raise RuleError(f"{path}: more than {MAX_CANDIDATES} keys; the audit replays the capture per key")
        return cls(out, os.path.basename(path))

    def facts(self, doc: dict) -> dict | None:
        """`dtls.psk_audit` for a PSK handshake document of an offline capture, else None."""
        d = doc.get("dtls") or {}
        path = (doc.get("file") or {}).get("path")
        if d.get("mode") != "psk" or "psk_identity" not in d or not path:
            return None
        found = self._by_file.get(path)
        if found is None:
            found = self._by_file[path] = self._audit(path)
        line = found.get(doc.get("event", {}).get("id"))
        if line is None:
            return {"weak": False}
        return {"weak": True, "source": f"{self.source}:{line}"}

    def _audit(self, path: str) -> dict[str, int]:
        from parsers.dtls import looks_like_dtls

        from .capture import CaptureError, CaptureStats, read_files
        from .dtls_tracker import DtlsTracker
        try:
            dgrams = [d for d in read_files([path], CaptureStats()) if looks_like_dtls(d.payload)]
        except CaptureError:
            return {}
        found: dict[str, int] = {}
        for line, key in self.candidates:
            tracker = DtlsTracker(_OneKey(key))
            docs = []
            for d in dgrams:
                docs.extend(tracker.feed(d).documents)
            docs.extend(tracker.close())
            for doc in docs:
                dt = doc.get("dtls") or {}
                if doc["event"]["dataset"] == "dtls.handshake" and dt.get("finished_verified") is True \
                        and dt.get("key_source") == "wordlist":
                    found.setdefault(doc["event"]["id"], line)
        return found
