"""Garbage-collector settings for batch analysis.

The pipeline keeps large, long-lived state (flows, registrations, folded alerts holding their
last document) and makes almost no reference cycles, yet with CPython's default thresholds the
collector rescans that state over and over: about a quarter of `analyze`'s CPU on 100k packets.
Rarer collections reclaim the same (few) cycles at a fraction of the cost.
"""
from __future__ import annotations

import gc

# young generation every 50k net allocations (default 700); a full collection every 100
# middle ones, still subject to CPython's own "25% of the heap is new" condition
BATCH_THRESHOLDS = (50_000, 20, 100)


def favour_throughput() -> None:
    """For batch runs (forked workers inherit it); the live sensor keeps the defaults."""
    gc.set_threshold(*BATCH_THRESHOLDS)
