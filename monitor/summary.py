"""The readable summary `analyze` prints: per endpoint, then totals."""
from __future__ import annotations

import sys
from functools import partial


_SECURITY = "_security:"


def _most_first(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]


def print_summary(result, out_path: str, reports=(), file=None) -> None:
    """To standard output, or to `file` (standard error when the documents go to stdout, so
    `--out - | jq` reads documents only)."""
    say = partial(print, file=file or sys.stdout)
    p = result.pipeline
    s, c = p.stats, result.capture
    rows = []
    for ep, counts in sorted(p.endpoint_stats.items()):
        ops = sorted(((k, v) for k, v in counts.items() if k[:1] != "_"), key=_most_first)
        security = sorted(k[len(_SECURITY):] for k in counts if k.startswith(_SECURITY))
        top = ", ".join(f"{name} {n}" for name, n in ops[:6])
        rows.append((ep, sum(n for _, n in ops), counts.get("_errors", 0), "+".join(security) or "-", top))
    if rows:
        w = max(len(r[0]) for r in rows)
        lines = [f"{'endpoint':<{w}}  {'ops':>6}  {'errors':>6}  {'security':<12}  operations"]
        lines += [f"{ep:<{w}}  {n:>6}  {errors:>6}  {security:<12}  {top}" for ep, n, errors, security, top in rows]
        say("\n".join(lines) + "\n")      # one write: a fleet's table is thousands of lines
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
