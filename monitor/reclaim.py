"""Large files freed off the critical path: an earlier output written over, the shard parts.

Freeing a file's blocks (truncating it, unlinking its last name) happens in the calling
process, about 20 ms per 100 MB here: at the start of a run that is before the first packet
and, with `--workers`, before the workers start, while the other core is idle; at the end it
is after the last worker. Here a thread does it while the run goes on; `wait()` (the CLI calls
it before its `os._exit`) makes sure none is cut short.

`open_fresh` (re-running an analysis writes over the previous output) renames the old file
aside (metadata only), creates the new one with the same permissions and leaves the unlink to
the thread. Only where that is the same as truncating: a regular file (not a symlink: writing
through it must keep writing its target), with one link (a hard-linked file must change for
every name), owned by us (a new file would change its owner), and large enough for the wait to
matter. Anything else, or any step that fails, is the plain `open(path, "wb")`.
"""
from __future__ import annotations

import os
import shutil
import stat
import threading
from typing import BinaryIO, Callable

ASIDE_MIN_BYTES = 16 << 20          # below this, truncating costs less than a thread


def open_fresh(path: str, buffering: int = -1) -> BinaryIO:
    try:
        st = os.lstat(path)
    except OSError:
        return open(path, "wb", buffering=buffering)
    if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid()
            and st.st_size >= ASIDE_MIN_BYTES):
        return open(path, "wb", buffering=buffering)
    head, tail = os.path.split(path)
    aside = os.path.join(head, f".{tail}.{os.getpid()}.old")
    try:
        os.rename(path, aside)
    except OSError:
        return open(path, "wb", buffering=buffering)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:                      # somebody created `path` meanwhile: theirs now; ours goes
        _unlink(aside)
        return open(path, "wb", buffering=buffering)
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    except OSError:
        pass
    _in_background(_unlink, aside)
    return os.fdopen(fd, "wb", buffering=buffering)


def remove_tree_later(path: str) -> None:
    """`shutil.rmtree(path, ignore_errors=True)`, in a thread."""
    _in_background(shutil.rmtree, path, True)


def wait() -> None:
    """Returns once every removal started here is done."""
    while _PENDING:
        _PENDING.pop().join()


_PENDING: list[threading.Thread] = []


def _in_background(fn: Callable, *args) -> None:
    # not a daemon: a normal interpreter exit waits for it too
    t = threading.Thread(target=fn, args=args, name="lwm2m-monitor-reclaim")
    t.start()
    _PENDING.append(t)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
