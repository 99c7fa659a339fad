"""A rotating ring of classic pcap files: what the sensor captured, kept for forensics.

`Ring(directory, prefix, linktype, snaplen, file_bytes, files)` writes
`<prefix>-<sequence>.pcap` files (nanosecond pcap, magic a1b23c4d), starts a new file when
the current one would exceed `file_bytes`, and deletes the oldest so that at most `files`
remain. One ring per interface (each interface has its own link type). The capture thread
of the interface is the only writer, so the ring holds no lock.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("<IHHiIII")       # magic, v2.4, thiszone, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")          # ts sec, ts nsec, captured length, original length
PCAP_NSEC_MAGIC = 0xA1B23C4D


@dataclass(slots=True)
class RingStats:
    frames: int = 0
    bytes: int = 0
    files_opened: int = 0
    files_deleted: int = 0
    write_errors: int = 0


class Ring:
    def __init__(self, directory: str, prefix: str, linktype: int, snaplen: int,
                 file_bytes: int, files: int):
        if files < 1 or file_bytes < _HEADER.size + _RECORD.size:
            raise ValueError("a ring needs at least one file of at least one record")
        self.directory = directory
        self.prefix = prefix
        self.linktype = linktype
        self.snaplen = snaplen
        self.file_bytes = file_bytes
        self.files = files
        self.stats = RingStats()
        self._paths: list[str] = []
        self._f = None
        self._size = 0
        self._seq = self._first_free_sequence()
        os.makedirs(directory, exist_ok=True)

    def _first_free_sequence(self) -> int:
        """Continue after files of an earlier run instead of overwriting them."""
        seq = 0
        if os.path.isdir(self.directory):
            head = self.prefix + "-"
            for name in os.listdir(self.directory):
                if name.startswith(head) and name.endswith(".pcap") and name[len(head):-5].isdigit():
                    seq = max(seq, int(name[len(head):-5]) + 1)
        return seq

    def write(self, ts_ns: int, data: bytes, origlen: int) -> None:
        need = _RECORD.size + len(data)
        if self._f is None or self._size + need > self.file_bytes:
            if not self._rotate():
                return
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        try:
            self._f.write(_RECORD.pack(sec, nsec, len(data), origlen))
            self._f.write(data)
        except OSError:
            self.stats.write_errors += 1
            return
        self._size += need
        self.stats.frames += 1
        self.stats.bytes += need

    def _rotate(self) -> bool:
        self._close_current()
        path = os.path.join(self.directory, f"{self.prefix}-{self._seq:06d}.pcap")
        self._seq += 1
        try:
            f = open(path, "wb", buffering=1 << 16)
            f.write(_HEADER.pack(PCAP_NSEC_MAGIC, 2, 4, 0, 0, self.snaplen, self.linktype))
        except OSError:
            self.stats.write_errors += 1
            return False
        self._f = f
        self._size = _HEADER.size
        self._paths.append(path)
        self.stats.files_opened += 1
        while len(self._paths) > self.files:
            old = self._paths.pop(0)
            try:
                os.unlink(old)
                self.stats.files_deleted += 1
            except OSError:
                self.stats.write_errors += 1
        return True

    def flush(self) -> None:
        if self._f is not None:
            try:
                self._f.flush()
            except OSError:
                self.stats.write_errors += 1

    def _close_current(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                self.stats.write_errors += 1
            self._f = None

    def close(self) -> None:
        self._close_current()

    @property
    def paths(self) -> list[str]:
        return list(self._paths)
