"""`lwm2m-monitor kibana export`: the saved objects of monitor/kibana.py as NDJSON.

Saved objects (data views, visualizations, dashboard) and detection rules have different
importers in Kibana (Stack Management → Saved Objects vs. Security → Rules → Import), so the
detection rules of the rule catalog go to their own file with --rules-out.
"""
from __future__ import annotations

import sys

from .kibana import export, write_ndjson


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("kibana", help="Kibana assets: data views and dashboard",
                              description="Export Kibana saved objects for the documents the "
                                          "Elasticsearch sink writes (logs-<dataset>-<namespace>).")
    sub = p.add_subparsers(metavar="ACTION")
    e = sub.add_parser("export", help="write the saved objects NDJSON (import in Stack Management → Saved Objects)")
    e.add_argument("--out", metavar="PATH", default="-", help="output file (default: standard output)")
    e.add_argument("--rules-out", metavar="PATH",
                   help="also write the rule catalog as Kibana detection rules (import in Security → Rules)")
    e.set_defaults(func=cmd_export)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_export(args) -> int:
    try:
        n = export(args.out)
        if args.rules_out:
            from .rule_engine import RuleEngine
            from .rule_export import kibana_rules
            rules = kibana_rules(RuleEngine.from_paths())
            with open(args.rules_out, "w", encoding="utf-8", newline="\n") as f:
                write_ndjson(f, rules)
    except BrokenPipeError:            # `kibana export | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"lwm2m-monitor: kibana export: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 5          # EXIT_OUTPUT of monitor/cli.py
    if args.out != "-":
        print(f"{n} saved objects written to {args.out}", file=sys.stderr)
    return 0
