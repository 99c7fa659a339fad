"""`lwm2m-monitor inventory`: one row per endpoint, on screen, as CSV/Parquet, as documents."""
from __future__ import annotations

import argparse
import sys

from .cli import (EPILOG, EXIT_CONFIG, EXIT_DAMAGED, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE,
                  add_pipeline_options, build_config, config_errors, fail, nothing_piped_in)


def add_input_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="CAPTURE_OR_NDJSON",
                   help="capture files (run through the pipeline) or NDJSON written by `analyze` "
                        "(recognised by content; .gz accepted); - reads one from standard input")


def load_inputs(args):
    """(Loaded, None) or (None, exit code) after saying why on stderr."""
    from .capture import STDIN
    from .document_input import DocumentInputError, load
    if STDIN in args.inputs and nothing_piped_in():
        return None, fail(EXIT_USAGE, "- reads documents or a capture from standard input, and none "
                                      "is piped in (e.g. lwm2m-monitor analyze x.pcap --out - | ...)")
    try:
        return load(args.inputs, lambda: build_config(args)), None
    except DocumentInputError as exc:
        return None, fail(EXIT_INPUT, str(exc))
    except config_errors() as exc:
        return None, fail(EXIT_CONFIG, str(exc))


def add_subcommands(sub) -> None:
    p = sub.add_parser("inventory", help="device inventory: one row per LwM2M endpoint",
                       description="Fold the documents of captures (or of an NDJSON file written by "
                                   "`analyze`) into one row per endpoint: first/last seen, addresses, "
                                   "security and identities, registration, Device object values and their "
                                   "changes, firmware images transferred, alert counts.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_argument(p)
    add_pipeline_options(p)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the table: FILE.csv or FILE.parquet; - for standard output (CSV unless --format "
                        "says; the readable table then goes to standard error)")
    p.add_argument("--format", choices=["csv", "parquet"], help="table format of -o (default: from its extension)")
    p.add_argument("--ndjson", metavar="FILE",
                   help="write the rows as `lwm2m.inventory` documents (NDJSON, for the SIEM)")
    p.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")
    p.set_defaults(func=cmd_inventory)


def cmd_inventory(args) -> int:
    from . import inventory
    from .sinks import dumps
    if args.output and inventory.table_format(args.output, args.format) is None:
        return fail(EXIT_USAGE, f"{args.output}: the table format comes from the extension (.csv or .parquet) "
                                f"or --format")
    loaded, code = load_inputs(args)
    if loaded is None:
        return code
    inv = inventory.build(loaded.docs)
    if args.output:
        try:
            inventory.write_table(inventory.to_frame(inv.devices), args.output, args.format)
        except OSError as exc:
            return fail(EXIT_OUTPUT, f"{args.output}: cannot write output ({exc.strerror})")
    if args.ndjson:
        try:
            with open(args.ndjson, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(dumps(d) + "\n" for d in inventory.inventory_documents(inv))
        except OSError as exc:
            return fail(EXIT_OUTPUT, f"{args.ndjson}: cannot write output ({exc.strerror})")
    if not args.quiet:                   # beside the table when it goes to standard output
        say = sys.stderr if args.output == "-" else sys.stdout
        print(inventory.format_table(inv.devices) if inv.devices else "no LwM2M endpoint seen", file=say)
        if inv.unattributed_alerts:
            counts = ", ".join(f"{n} {name}" for name, n in sorted(inv.unattributed_alerts.items()))
            print(f"alerts naming no known endpoint: {inventory.printable(counts, 200)}", file=say)
    for err in loaded.errors:
        print(f"lwm2m-monitor: warning: {err}", file=sys.stderr)
    return EXIT_DAMAGED if loaded.errors else EXIT_OK
