"""Garbage-collector settings for batch analysis.

The pipeline keeps large, long-lived state (flows, registrations, folded alerts holding their
last document) and makes almost no reference cycles, yet with CPython's default thresholds the
collector rescans that state over and over: about a quarter of `analyze`'s CPU on 100k packets.
Rarer collections reclaim the same (few) cycles at a fraction of the cost.
"""
from __future__ import annotations

import gc

# young generation every 200k net allocations (default 700: the documents of one packet alone
# outlive several; 20k cost a sharded worker 10 % more), so short-lived documents die before a
# collection sees them; a full
# collection every 20 middle ones (~200M allocations), still subject to CPython's own
# "25% of the heap is new" condition
BATCH_THRESHOLDS = (200_000, 50, 20)


def favour_throughput() -> None:
    """For batch runs (forked workers inherit it); the live sensor keeps the defaults."""
    gc.set_threshold(*BATCH_THRESHOLDS)
