"""`reclaim`: an earlier output written over exactly as truncating would, minus the wait; the
shard parts removed in the background; `wait()` returns once all of it is done."""
from __future__ import annotations

import os
import threading

import pytest

from monitor import reclaim
from monitor.reclaim import open_fresh, remove_tree_later


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setattr(reclaim, "ASIDE_MIN_BYTES", 1000)


def _wait_for_reclaim() -> None:
    reclaim.wait()
    assert not [t for t in threading.enumerate() if t.name == "lwm2m-monitor-reclaim"]


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


def test_a_tree_is_removed_in_the_background_and_wait_returns_after(tmp_path):
    tree = tmp_path / "lwm2m-shards-x"
    tree.mkdir()
    (tree / "part-001.ndjson").write_bytes(b"{}\n" * 1000)
    remove_tree_later(str(tree))
    _wait_for_reclaim()
    assert not tree.exists()


def test_an_analyze_run_over_an_earlier_output_leaves_only_the_output(tmp_path):
    import subprocess
    import sys
    from tests.captures import PCAPS, ROOT
    out = tmp_path / "out.ndjson"
    out.write_bytes(b"x" * (17 << 20))                 # above the real threshold
    subprocess.run([sys.executable, "-m", "monitor.cli", "analyze", os.path.join(PCAPS, "aiocoap-lwm2m12.pcap"),
                    "--out", str(out), "-q", "--workers", "2"], cwd=ROOT, check=True, capture_output=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.ndjson"]
    assert out.read_bytes().startswith(b"{") and len(out.read_bytes()) < (17 << 20)
