"""`lwm2m-monitor report`: one self-contained HTML page from captures or analyze NDJSON."""
from __future__ import annotations

import argparse
import os
import sys

from .cli import EPILOG, EXIT_DAMAGED, EXIT_OK, EXIT_OUTPUT, add_pipeline_options, fail
from .inventory_cli import add_input_argument, load_inputs


def add_subcommands(sub) -> None:
    p = sub.add_parser("report", help="offline HTML report (plots, sessions, alerts, inventory)",
                       description="Write one self-contained HTML page (no script, no external resource): "
                                   "operations over time per device, each device's LwM2M session, alerts "
                                   "with their evidence, DTLS/OSCORE sessions and whether they decrypted, "
                                   "and the device inventory.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_argument(p)
    add_pipeline_options(p)
    p.add_argument("-o", "--output", metavar="FILE.html",
                   help="report file, - for standard output (default: ./<first input name>.report.html)")
    p.add_argument("--title", default="LwM2M traffic report", help="page title")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .capture import capture_name
    from .report import render
    loaded, code = load_inputs(args)
    if loaded is None:
        return code
    names = [os.path.basename(capture_name(p)) for p in args.inputs]
    out = args.output or (names[0].split(".")[0] or "lwm2m") + ".report.html"
    page = render(loaded.docs, sources=names, title=args.title)
    try:
        if out == "-":                       # `report ... -o - > page.html`, or to a web server's pipe
            sys.stdout.write(page)
            sys.stdout.flush()
        else:
            with open(out, "w", encoding="utf-8") as f:
                f.write(page)
    except OSError as exc:
        return fail(EXIT_OUTPUT, f"{out}: cannot write output ({exc.strerror})")
    print(f"report: {'standard output' if out == '-' else out} ({len(loaded.docs)} documents)",
          file=sys.stderr if out == "-" else sys.stdout)
    for err in loaded.errors:
        print(f"lwm2m-monitor: warning: {err}", file=sys.stderr)
    return EXIT_DAMAGED if loaded.errors else EXIT_OK
