"""`analyze` loads keys, objects and rules at the batch collector thresholds and then freezes
them (monitor/gc_tuning.py): at the default thresholds loading them ran ~120 collections."""
from __future__ import annotations

import gc
import os

from monitor import cli, gc_tuning

HERE = os.path.dirname(__file__)
PCAP = os.path.join(HERE, "..", "pcaps", "dtls-clean-psk.pcap")


def test_analyze_loads_its_configuration_at_batch_thresholds_then_freezes_it(monkeypatch, tmp_path):
    seen = {}
    real = cli.build_config

    def spy(args):
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()
        return real(args)

    monkeypatch.setattr(cli, "build_config", spy)
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        rc = cli.main(["analyze", PCAP, "--out", str(tmp_path / "out.ndjson"), "-q"])
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert rc == 0
    assert seen["threshold"] == gc_tuning.BATCH_THRESHOLDS and seen["frozen"] == 0
    assert frozen > 0                      # the loaded configuration left the collector's sight
