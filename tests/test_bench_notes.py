"""The benchmark's notes: each round's speed ratio against tshark and their median."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))

from bench_pipeline import _runs_note  # noqa: E402
from measure import Measurement  # noqa: E402


def runs(*seconds: float) -> list[Measurement]:
    timed = [Measurement("x", s, 1.0, 1.0, s, 0.0, 0, sampled=False) for s in seconds]
    return timed + [Measurement("x", 99.0, 1.0, 1.0, 99.0, 0.0, 0, sampled=True)]   # the memory run


def test_speed_per_round_pairs_each_round_with_tshark_s_and_takes_the_median():
    ours, tshark = runs(10.0, 12.5, 9.0), runs(20.0, 20.0, 19.8)
    note = _runs_note(ours, tshark)
    assert note.startswith("; best of 3: 10.0/12.5/9.0 s")
    # per round 2.00, 1.60, 2.20: median 2.00 (the ratio of the bests would say 2.20)
    assert note.endswith("; speed per round 2.00/1.60/2.20x, median 2.00x")


def test_no_ratio_without_tshark_or_with_unequal_rounds():
    assert "speed" not in _runs_note(runs(10.0, 11.0))
    assert "speed" not in _runs_note(runs(10.0, 11.0), runs(20.0))
    assert _runs_note(runs(10.0)) == ""


def test_a_command_that_fails_is_no_measurement():
    """A broken install made `lwm2m-monitor` exit 1 with a traceback in 0.04 s, and the table
    showed it 69 times faster than tshark: any non-zero exit now stops the benchmark."""
    import pytest
    from measure import run
    ok = run("ok", [sys.executable, "-c", "print('x')"], capture=True)
    assert ok.returncode == 0 and ok.stdout == b"x\n"
    with pytest.raises(RuntimeError, match=r"(?s)exit 1: .*ModuleNotFoundError"):
        run("broken", [sys.executable, "-c", "import no_such_module_here"])
