"""The readable summary `analyze` prints: per endpoint, then totals.

A fleet's capture has thousands of endpoints; a table of all of them is read by nobody (the
NDJSON and `report` have every one). Beyond `max_endpoints` rows the table keeps the endpoints
that most need a look (most errors, then most operations) and says how many it left out;
`--endpoints 0` prints them all, in name order as for a small capture.
"""
from __future__ import annotations

import heapq
import sys
from functools import partial

DEFAULT_ENDPOINTS = 25


_SECURITY = "_security:"


def _most_first(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]


def _operations(counts: dict) -> int:
    return sum(v for k, v in counts.items() if k[:1] != "_")


def endpoint_table(endpoint_stats: dict, max_endpoints: int = DEFAULT_ENDPOINTS) -> list[str]:
    """The table's lines: every endpoint in name order, or (more than `max_endpoints` > 0 of
    them) the `max_endpoints` with the most errors, then operations, and a line for the rest."""
    names = sorted(endpoint_stats)
    left_out: list[str] = []
    if 0 < max_endpoints < len(names):
        shown = heapq.nsmallest(max_endpoints, names, key=lambda ep: (
            -endpoint_stats[ep].get("_errors", 0), -_operations(endpoint_stats[ep]), ep))
        kept = set(shown)
        left_out = [ep for ep in names if ep not in kept]
        names = shown
    rows = []
    for ep in names:
        counts = endpoint_stats[ep]
        ops = sorted(((k, v) for k, v in counts.items() if k[:1] != "_"), key=_most_first)
        security = sorted(k[len(_SECURITY):] for k in counts if k.startswith(_SECURITY))
        top = ", ".join(f"{name} {n}" for name, n in ops[:6])
        rows.append((ep, sum(n for _, n in ops), counts.get("_errors", 0), "+".join(security) or "-", top))
    if not rows:
        return []
    w = max(len(r[0]) for r in rows)
    lines = [f"{len(names):,} of {len(names) + len(left_out):,} endpoints: the most errors, then the most operations"] \
        if left_out else []
    lines.append(f"{'endpoint':<{w}}  {'ops':>6}  {'errors':>6}  {'security':<12}  operations")
    lines += [f"{ep:<{w}}  {n:>6}  {errors:>6}  {security:<12}  {top}" for ep, n, errors, security, top in rows]
    if left_out:
        ops_rest = sum(_operations(endpoint_stats[ep]) for ep in left_out)
        errors_rest = sum(endpoint_stats[ep].get("_errors", 0) for ep in left_out)
        lines.append(f"... {len(left_out):,} more endpoints: {ops_rest:,} operations, {errors_rest:,} errors "
                     f"(all of them: --endpoints 0, or `lwm2m-monitor report` on the output)")
    return lines


def print_summary(result, out_path: str, reports=(), file=None, max_endpoints: int = DEFAULT_ENDPOINTS) -> None:
    """To standard output, or to `file` (standard error when the documents go to stdout, so
    `--out - | jq` reads documents only)."""
    say = partial(print, file=file or sys.stdout)
    p = result.pipeline
    s, c = p.stats, result.capture
    lines = endpoint_table(p.endpoint_stats, max_endpoints)
    if lines:
        say("\n".join(lines) + "\n")      # one write
    errors = sum(s.decode_errors.values())
    say(f"packets {c.frames:,}  udp datagrams {s.datagrams:,}  dtls datagrams {s.dtls_datagrams:,}  "
          f"coap messages {s.coap_messages:,}  exchanges {s.operations + s.coap_exchanges:,} "
          f"(lwm2m {s.operations:,})  decode errors {errors:,}")
    if errors:
        say("decode errors: " + ", ".join(f"{k} {v}" for k, v in sorted(s.decode_errors.items())))
    dt = p.dtls.stats if hasattr(p.dtls, "stats") else {}
    if s.dtls_datagrams:
        say("dtls: " + ", ".join(f"{k} {v}" for k, v in sorted(dt.items()) if v))
    if s.oscore_messages:
        say(f"oscore messages {s.oscore_messages:,}  not decrypted {s.oscore_undecrypted:,}")
    if s.harvested_psks or s.harvested_oscore:
        say(f"keys harvested from cleartext bootstrap: {s.harvested_psks} PSK, {s.harvested_oscore} OSCORE")
    say(f"documents {result.documents:,}  alerts {s.alerts:,}  in {result.seconds:.2f}s")
    say(f"events written to {'standard output' if out_path == '-' else out_path}")
    for rep in reports:
        if rep is not None and getattr(rep, "summary", None):
            say(rep.summary())
