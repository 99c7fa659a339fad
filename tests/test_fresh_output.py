"""`open_fresh` writes over an earlier output exactly as truncating would, minus the wait."""
from __future__ import annotations

import os
import threading

import pytest

from monitor import fresh_output
from monitor.fresh_output import open_fresh


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setattr(fresh_output, "ASIDE_MIN_BYTES", 1000)


def _wait_for_reclaim() -> None:
    for t in threading.enumerate():
        if t.name == "free-old-output":
            t.join()


def test_a_large_earlier_output_is_replaced_and_freed_aside(tmp_path):
    out = tmp_path / "capture.events.ndjson"
    out.write_bytes(b"old line\n" * 1000)
    os.chmod(out, 0o640)
    old_inode = out.stat().st_ino
    with open_fresh(str(out)) as f:
        f.write(b"new\n")
    _wait_for_reclaim()
    assert out.read_bytes() == b"new\n"
    assert out.stat().st_ino != old_inode
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.events.ndjson"]   # nothing left aside


def test_small_files_are_truncated_in_place(tmp_path):
    out = tmp_path / "o.ndjson"
    out.write_bytes(b"x" * 10)
    inode = out.stat().st_ino
    with open_fresh(str(out)) as f:
        f.write(b"y")
    assert out.read_bytes() == b"y" and out.stat().st_ino == inode


def test_a_symlink_keeps_pointing_at_its_target_which_is_truncated(tmp_path):
    target = tmp_path / "real.ndjson"
    target.write_bytes(b"old\n" * 1000)
    link = tmp_path / "link.ndjson"
    link.symlink_to(target)
    with open_fresh(str(link)) as f:
        f.write(b"new\n")
    assert link.is_symlink() and target.read_bytes() == b"new\n"


def test_a_hard_linked_file_changes_under_every_name(tmp_path):
    a = tmp_path / "a.ndjson"
    a.write_bytes(b"old\n" * 1000)
    b = tmp_path / "b.ndjson"
    os.link(a, b)
    with open_fresh(str(a)) as f:
        f.write(b"new\n")
    assert a.read_bytes() == b.read_bytes() == b"new\n"


def test_a_new_path_is_created(tmp_path):
    with open_fresh(str(tmp_path / "new.ndjson")) as f:
        f.write(b"z")
    assert (tmp_path / "new.ndjson").read_bytes() == b"z"


def test_a_directory_is_an_error_as_with_open(tmp_path):
    with pytest.raises(IsADirectoryError):
        open_fresh(str(tmp_path))
