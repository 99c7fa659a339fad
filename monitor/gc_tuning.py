"""Garbage-collector settings for batch analysis.

The pipeline keeps large, long-lived state (flows, registrations, folded alerts holding their
last document) and makes almost no reference cycles, yet with CPython's default thresholds the
collector rescans that state over and over: about a quarter of `analyze`'s CPU on 100k packets.
Rarer collections reclaim the same (few) cycles at a fraction of the cost.
"""
from __future__ import annotations

import gc

# young generation every 1M net allocations (default 700: the documents of one packet alone
# outlive several; 20k cost a sharded worker 10 % more). What a young collection finds alive is
# per-client state that dies a little later (10,000 clients' flows, exchanges, folds): at 200k,
# four collections of 60-140 ms each (scattered objects, cache misses) took 3.4 % of a sharded
# worker's CPU on the 1M-packet benchmark; at 1M, none. A full collection every 20 middle ones
# (~1G allocations), still subject to CPython's own "25% of the heap is new" condition.
BATCH_THRESHOLDS = (1_000_000, 50, 20)


def favour_throughput() -> None:
    """For batch runs, from before the keys, objects and rules load (at the default thresholds,
    loading them ran ~120 collections, 26-45 ms of a 0.3 s start-up); forked workers inherit it.
    The live sensor keeps the defaults."""
    gc.set_threshold(*BATCH_THRESHOLDS)


def settle_startup() -> None:
    """Once keys, objects and rules are loaded: what exists now (modules, rule matchers, object
    model, keys) lives for the whole run, so it leaves the collector's sight. A full collection
    no longer re-traverses it, and in forked workers no longer writes to (copies) its pages."""
    gc.freeze()
