"""`lwm2m-monitor rules list|export|test`: the catalog for people and for the SIEM.

- `rules list`: slug, level, on/off and title of every rule (built-in and `--rules DIR`).
- `rules export --target {lucene,eql,kibana}`: queries, or Kibana detection rules as NDJSON.
- `rules test RULE_FILE CAPTURE...`: runs one rule (its correlation base rules included) over
  captures and prints its alerts; exit 0 when it fired, 1 when it did not.
"""
from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_NO_HIT, EXIT_USAGE, EXIT_INPUT, EXIT_CONFIG, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("rules", help="list, export or test the Sigma rule catalog",
                              description="The Sigma rule catalog: list it, convert it for Elasticsearch/Kibana, "
                                          "or run one rule over a capture.")
    sub = p.add_subparsers(metavar="ACTION")
    ls = sub.add_parser("list", help="print the catalog (slug, level, state, title)")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per rule")
    ls.set_defaults(func=cmd_list)
    ex = sub.add_parser("export", help="convert the catalog with pySigma's Elasticsearch backend")
    _common(ex)
    ex.add_argument("--target", choices=["lucene", "eql", "kibana"], default="lucene",
                    help="lucene/eql: one query per rule; kibana: detection rules NDJSON (import as is)")
    ex.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    ex.set_defaults(func=cmd_export)
    t = sub.add_parser("test", help="run one rule over captures and print its alerts")
    t.add_argument("rule", metavar="RULE_FILE", help="the Sigma rule file (.yml)")
    t.add_argument("pcaps", nargs="+", metavar="PCAP")
    t.add_argument("--keys", metavar="FILE", help="keys file (KEYS.md)")
    t.add_argument("--config", metavar="FILE", help="rule configuration")
    t.set_defaults(func=cmd_test)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="DIR", action="append", default=[], help="extra rule directory")
    p.add_argument("--config", metavar="FILE", help="rule configuration (enable/disable, thresholds)")


def _engine(args):
    from .rule_engine import RuleEngine
    return RuleEngine.from_paths(extra_dirs=args.rules, config=args.config)


def _fail(code: int, msg: str) -> int:
    print(f"lwm2m-monitor: {msg}", file=sys.stderr)
    return code


def cmd_list(args) -> int:
    from .rule_engine import RuleError
    try:
        engine = _engine(args)
    except RuleError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    rows = []
    for r in engine.rules:
        kind = "base" if r.silent else "rule"
        rows.append((r.info.name, r.level, "on" if r.enabled else "off", kind, r.info.title, r.info.id))
    for c in engine.correlations:
        rows.append((c.info.name, c.level, "on" if c.enabled else "off", "correlation", c.info.title, c.info.id))
    rows.sort()
    if args.json:
        for name, level, state, kind, title, rid in rows:
            print(json.dumps({"name": name, "id": rid, "level": level, "enabled": state == "on",
                              "kind": kind, "title": title}))
        return EXIT_OK
    width = max(len(r[0]) for r in rows)
    for name, level, state, kind, title, _ in rows:
        print(f"{name:<{width}}  {level:<13}  {state:<3}  {kind:<11}  {title}")
    return EXIT_OK


def cmd_export(args) -> int:
    from .rule_engine import RuleError
    from .rule_export import render
    try:
        text = render(_engine(args), args.target)
    except RuleError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    if not args.out:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        return _fail(EXIT_OUTPUT, f"{args.out}: cannot write ({exc.strerror})")
    return EXIT_OK


def cmd_test(args) -> int:
    import os

    from .keys import KeysError, KeyStore, load
    from .rule_engine import BUILTIN_DIR, RuleConfig, RuleEngine, RuleError, load_file, rule_files
    for p in args.pcaps:
        if not os.path.isfile(p):
            return _fail(EXIT_INPUT, f"{p}: no such capture file")
    try:
        config = RuleConfig.load(args.config)
        target = load_file(args.rule)
        names = {t.info.name for t in target}
        # correlation base rules come from the catalog (or from the rule file's directory)
        bases = {b for t in target for b in getattr(t, "base", ())}
        others = []
        if bases:
            dirs = {str(BUILTIN_DIR), os.path.dirname(os.path.abspath(args.rule))}
            for f in rule_files(sorted(dirs)):
                if os.path.abspath(f) != os.path.abspath(args.rule):
                    others += [it for it in load_file(f) if it.info.name in bases - names
                               and all(o.info.name != it.info.name for o in others)]
        config.rules = {k: v for k, v in config.rules.items() if k in names | bases}
        engine = RuleEngine.build(target + others, config)
        for r in engine.rules + engine.correlations:
            if r.info.name in names:
                r.enabled = True
        engine = RuleEngine(engine.rules, engine.correlations, config)
        keys = load(args.keys) if args.keys else KeyStore()
    except (RuleError, KeysError) as exc:
        return _fail(EXIT_CONFIG, str(exc))
    from .analyze import collect
    from .capture import CaptureError
    from .pipeline import PipelineConfig
    try:
        docs, _ = collect(args.pcaps, PipelineConfig(keys=keys, rules=engine))
    except CaptureError as exc:
        return _fail(EXIT_INPUT, str(exc))
    alerts = [d for d in docs if d.get("event", {}).get("kind") == "alert"]
    tagged = [d for d in docs if d.get("event", {}).get("kind") != "alert" and names & set(d.get("tags", ()))]
    for a in alerts:
        print(json.dumps({"@timestamp": a["@timestamp"], "rule": a["rule"]["name"], "severity": a["event"]["severity"],
                          "count": a["event"]["count"], "message": a["message"], "related.id": a["related"]["id"]}))
    for d in tagged:
        print(json.dumps({"@timestamp": d["@timestamp"], "tagged": sorted(names & set(d["tags"])),
                          "event.id": d["event"]["id"], "event.action": d["event"]["action"]}))
    print(f"{len(alerts)} alert(s), {len(tagged)} tagged event(s) from {len(docs)} documents", file=sys.stderr)
    return EXIT_OK if alerts or tagged else EXIT_NO_HIT
