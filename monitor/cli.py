"""`lwm2m-monitor` command line.

Exit codes (also in --help):
  0  success
  1  finished, but a capture file was damaged and read only up to the damage
  2  usage error
  3  a capture file is missing or unreadable
  4  the keys, config, rules or objects input is invalid
  5  the output cannot be written
  6  an analysis worker failed (--workers), the output is incomplete
  130  interrupted (Ctrl-C, SIGTERM); one process stops reading, analyses and writes what it read
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

EXIT_OK, EXIT_DAMAGED, EXIT_USAGE, EXIT_INPUT, EXIT_CONFIG, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
EXIT_WORKER = 6
EXIT_INTERRUPTED = 130

EPILOG = """exit codes: 0 success; 1 finished but a capture was damaged (read up to the damage);
2 usage error; 3 capture missing or unreadable; 4 invalid keys/config/rules/objects; 5 output not writable;
6 an analysis worker failed (--workers: killed, out of memory), the output is incomplete;
130 interrupted (Ctrl-C, SIGTERM): one process ends its input there and writes what it read"""


def run() -> None:
    """The console script. An `analyze` run ends with `os._exit` once its output is closed and
    flushed: the interpreter's teardown (freeing the rule set, the object model, the keys and
    every module, one object at a time) took 0.1–0.2 s, several per cent of a `--workers`
    run, and writes nothing. Other commands (live capture threads, Elasticsearch clients) exit
    normally."""
    code = main()
    if _command(sys.argv[1:]) != "analyze":
        sys.exit(code)
    from .reclaim import wait
    wait()                               # files being freed in the background: not cut short
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:                      # a closed pipe: nothing more can be said
        pass
    os._exit(code)


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only_analyze=_command(argv) == "analyze")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:            # a second Ctrl-C, or one during a --workers run
        print("lwm2m-monitor: interrupted; what was written so far is incomplete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def build_parser(only_analyze: bool = False) -> argparse.ArgumentParser:
    """The whole command line; `only_analyze` leaves out the other subcommands, whose modules
    (Kibana, live capture, reports) cost a tenth of a second to import: a short `analyze` run
    should not pay for them."""
    parser = argparse.ArgumentParser(
        prog="lwm2m-monitor",
        description="Passive security monitoring of LwM2M traffic: UDP, DTLS 1.2, CoAP, OSCORE, LwM2M.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(metavar="COMMAND")
    a = sub.add_parser("analyze", help="decode capture files into LwM2M events and alerts",
                       description="Decode pcap/pcapng files (several files are one stream of time) into "
                                   "ECS documents: LwM2M operations, DTLS handshakes, OSCORE contexts, alerts.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("pcaps", nargs="+", metavar="PCAP", help="pcap or pcapng files (.gz accepted); - reads one from standard input")
    add_pipeline_options(a)
    a.add_argument("--out", metavar="PATH",
                   help="NDJSON output file, - for standard output (default: ./<first capture name>.events.ndjson)")
    a.add_argument("--format", choices=["ndjson", "parquet", "csv"], default="ndjson",
                   help="format of --out (parquet/csv through pandas)")
    add_es_options(a)
    a.add_argument("-q", "--quiet", action="store_true", help="no summary (on stdout; on stderr with --out -)")
    from .summary import DEFAULT_ENDPOINTS
    a.add_argument("--endpoints", type=non_negative, default=DEFAULT_ENDPOINTS, metavar="N",
                   help="endpoint rows in the summary: beyond N, the N with the most errors then operations "
                        f"(default {DEFAULT_ENDPOINTS}; 0: every endpoint)")
    a.add_argument("--workers", type=worker_count, default=1, metavar="N",
                   help="analyse on N processes, sharded by client IP address (see monitor/sharding.py); "
                        "'auto': one per CPU this process may run on")
    a.set_defaults(func=cmd_analyze)
    for name in () if only_analyze else ("rules_cli", "kibana_cli", "inventory_cli", "report_cli", "live_cli"):
        try:
            module = __import__(f"monitor.{name}", fromlist=["add_subcommands"])
        except ImportError:
            continue
        module.add_subcommands(sub)
    return parser


AUTO_WORKERS = 0


def _whole_number(text: str, least: int, what: str, too_small: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}")
    if n < least:
        raise argparse.ArgumentTypeError(f"{n}: {too_small}")
    return n


def worker_count(text: str) -> int:
    """`--workers`: a positive count, or `auto` (AUTO_WORKERS, resolved by `usable_cpus`)."""
    if text == "auto":
        return AUTO_WORKERS
    return _whole_number(text, 1, "a number of workers (a positive integer or 'auto')", "at least one worker is needed")


def non_negative(text: str) -> int:
    return _whole_number(text, 0, "a whole number", "cannot be negative")


def nothing_piped_in() -> bool:
    """`-` was given but standard input is a terminal (or closed): reading would wait for typing."""
    return sys.stdin is None or sys.stdin.isatty()


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, which a container or `taskset`
    narrows, rather than the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):              # no affinity call on this system
        return max(1, os.cpu_count() or 1)


def add_es_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Elasticsearch (also from LWM2M_ES_URL, _API_KEY, _USER, _PASSWORD, _CA)")
    g.add_argument("--es", metavar="URL", help="also index into Elasticsearch at URL")
    g.add_argument("--es-api-key", metavar="KEY", help="API key (prefer LWM2M_ES_API_KEY)")
    g.add_argument("--es-user", metavar="USER", help="user for basic auth (password in LWM2M_ES_PASSWORD)")
    g.add_argument("--es-ca", metavar="FILE", help="CA certificate file for https")


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="FILE", help="keys file (PSKs, key log, OSCORE contexts; see KEYS.md)")
    p.add_argument("--objects", metavar="DIR", help="directory of extra OMA object definition XML files")
    p.add_argument("--rules", metavar="DIR", action="append", default=[], help="extra Sigma rule directory")
    p.add_argument("--config", metavar="FILE", help="rule configuration (enable/disable, thresholds, allowlists)")
    p.add_argument("--no-rules", action="store_true", help="do not evaluate security rules")
    p.add_argument("--psk-wordlist", metavar="FILE", help="audit: test captured PSK handshakes against a wordlist")


def fail(code: int, message: str) -> int:
    print(f"lwm2m-monitor: {message}", file=sys.stderr)
    return code


def build_config(args):
    """Keys, objects and rules from the options; raises SystemExit-free errors as (code, text)."""
    from .keys import KeysError, KeyStore, load
    from .pipeline import PipelineConfig
    keys = KeyStore()
    if args.keys:
        keys = load(args.keys)
    from .objects import ObjectModel
    model = ObjectModel.load(*([args.objects] if args.objects else []))
    rules = None
    if not args.no_rules:
        try:
            from .rule_engine import RuleEngine
        except ImportError:
            RuleEngine = None
        if RuleEngine is not None:
            rules = RuleEngine.from_cli(extra_dirs=args.rules, config_path=args.config, keys=keys,
                                        psk_wordlist=getattr(args, "psk_wordlist", None))
    return PipelineConfig(keys=keys, objects=model, rules=rules)


def config_errors():
    from .keys import KeysError
    errors: list[type[Exception]] = [KeysError]
    try:
        from .objects import ObjectDefinitionError
        errors.append(ObjectDefinitionError)
    except ImportError:
        pass
    try:
        from .rule_engine import RuleError
        errors.append(RuleError)
    except ImportError:
        pass
    return tuple(errors)


def open_sinks(args, default_out: str):
    """Every sink the options ask for; Elasticsearch options are checked before any file opens."""
    from .sinks import NdjsonSink, TableSink
    es_config = None
    if getattr(args, "es", None) or os.environ.get("LWM2M_ES_URL"):
        from .es_sink import EsConfig
        es_config = EsConfig.from_env_and_args(
            url=args.es, api_key=getattr(args, "es_api_key", None), user=getattr(args, "es_user", None),
            ca=getattr(args, "es_ca", None))
    out = args.out or default_out
    sinks = [NdjsonSink(out) if args.format == "ndjson" else TableSink(out, args.format)]
    if es_config is not None:
        from .es_sink import EsSink
        sinks.append(EsSink(es_config))
    return sinks, out


def cmd_analyze(args) -> int:
    from .analyze import TerminalProgress, WorkerError, analyze_files
    from .capture import STDIN, CaptureError, capture_name
    from .gc_tuning import favour_throughput, settle_startup
    from .summary import print_summary
    favour_throughput()
    if args.pcaps.count(STDIN) > 1:
        return fail(EXIT_USAGE, "standard input (-) can be read only once")
    workers = args.workers
    if STDIN in args.pcaps:
        if workers > 1:          # every worker reads the whole capture: a pipe is read once
            return fail(EXIT_USAGE, "--workers needs capture files: standard input (-) is read by one process")
        if nothing_piped_in():
            return fail(EXIT_USAGE, "- reads a capture from standard input, and none is piped in "
                                    "(e.g. tcpdump -U -w - udp | lwm2m-monitor analyze -)")
        workers = 1
    elif workers == AUTO_WORKERS:
        workers = usable_cpus()
    for path in args.pcaps:
        if path == STDIN:
            continue
        if not os.path.isfile(path):
            return fail(EXIT_INPUT, f"{path}: no such capture file")
        if not os.access(path, os.R_OK):
            return fail(EXIT_INPUT, f"{path}: capture file is not readable")
    try:
        config = build_config(args)
    except config_errors() as exc:
        return fail(EXIT_CONFIG, str(exc))
    stem = os.path.basename(capture_name(args.pcaps[0])).split(".")[0] or "capture"
    ext = {"ndjson": "events.ndjson", "parquet": "events.parquet", "csv": "events.csv"}[args.format]
    try:
        sinks, out = open_sinks(args, f"{stem}.{ext}")
    except OSError as exc:
        return fail(EXIT_OUTPUT, f"{args.out}: cannot write output ({exc.strerror})")
    except ValueError as exc:                        # EsConfigError: a bad URL or auth option
        return fail(EXIT_CONFIG, str(exc))
    progress = TerminalProgress(args.pcaps)
    settle_startup()
    try:
        if workers > 1:
            from .sharding import analyze_sharded
            result = analyze_sharded(args.pcaps, config, workers, sinks, progress=progress)
        else:
            with stop_on_signals() as stop:
                result = analyze_files(args.pcaps, config, sinks, progress=progress, stop=stop)
    except CaptureError as exc:
        return fail(EXIT_INPUT, str(exc))
    except WorkerError as exc:
        return fail(EXIT_WORKER, f"{exc}; the output is incomplete")
    finally:
        progress.done()
        reports = [s.close() for s in sinks]
    if not args.quiet:      # beside the documents when they go to standard output
        print_summary(result, out, reports, file=sys.stderr if out == "-" else None, max_endpoints=args.endpoints)
    for err in result.errors:
        print(f"lwm2m-monitor: warning: {err}", file=sys.stderr)
    if result.capture.interrupted:
        print(f"lwm2m-monitor: interrupted: the input ended after {result.capture.frames:,} packets; "
              "everything read was analysed and written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_DAMAGED if result.errors else EXIT_OK


@contextlib.contextmanager
def stop_on_signals():
    """Ctrl-C or SIGTERM during a one-process `analyze` ends its input (`capture.InputStop`):
    what was read goes through the pipeline, pending exchanges and folded alerts included, is
    written, and the run exits 130 (the way to end `tcpdump -w - | lwm2m-monitor analyze -`).
    A second signal aborts as before."""
    from .capture import InputStop
    stop = InputStop()

    def handler(signum, frame):
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        stop.request()
    try:
        saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:                   # not the main thread (an embedding): no handlers
        yield None
        return
    try:
        yield stop
    finally:
        for sig, previous in saved.items():   # None: a handler set outside Python
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    run()
