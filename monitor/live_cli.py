"""`lwm2m-monitor live`: the sensor's command line (options documented in monitor/live.py).

Exit codes are those of `monitor.cli`: 0 stopped cleanly, 2 usage, 3 an interface cannot be
captured (or capture failed while running), 4 keys/config/rules/objects invalid (at start; a
bad file on SIGHUP keeps the running configuration), 5 output not writable.
"""
from __future__ import annotations

import argparse
import os

from .cli import (EPILOG, EXIT_CONFIG, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE,
                  add_es_options, add_pipeline_options, build_config, config_errors, fail)

# Options a --sensor-config file may set: dest -> type check. `interface` and `rules` are lists.
_FILE_OPTIONS = {
    "interface": list, "bpf": str, "ports": list, "promisc": bool, "snaplen": int,
    "buffer_size": int, "stats_interval": (int, float), "ring": str, "ring_size": int,
    "ring_files": int, "duration": (int, float), "count": int, "out": str, "rotate_mb": (int, float),
    "es": str, "keys": str, "objects": str, "rules": list, "config": str, "no_rules": bool,
    "psk_wordlist": str,
}


def add_subcommands(sub) -> None:
    from .live import DEFAULT_BUFFER_MB, DEFAULT_SNAPLEN
    p = sub.add_parser(
        "live", help="sniff interfaces continuously (libpcap) into LwM2M events and alerts",
        description="Capture LwM2M traffic on one or more interfaces and run it through the same "
                    "pipeline as `analyze`. SIGINT/SIGTERM: flush pending events and stop; "
                    "SIGHUP: reload keys, objects and rules.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--interface", action="append", default=None, metavar="IF",
                   help="interface to sniff (repeat for several)")
    p.add_argument("--bpf", metavar="FILTER", help="capture filter (default: the LwM2M ports and IP fragments)")
    p.add_argument("--ports", metavar="LIST", help="comma-separated UDP ports of the default filter "
                                                   "(default 5683,5684,5685,5783)")
    p.add_argument("--no-promisc", dest="promisc", action="store_false", default=None,
                   help="do not put the interface in promiscuous mode")
    p.add_argument("--snaplen", type=int, metavar="BYTES", help=f"snap length (default {DEFAULT_SNAPLEN})")
    p.add_argument("--buffer-size", type=int, metavar="MIB",
                   help=f"kernel capture buffer per interface (default {DEFAULT_BUFFER_MB} MiB)")
    p.add_argument("--stats-interval", type=float, metavar="SECONDS",
                   help="periodic stats line and monitor.stats document (default 60; 0 = only at exit)")
    p.add_argument("--ring", metavar="DIR", help="keep a rotating pcap ring of the captured frames in DIR")
    p.add_argument("--ring-size", type=int, metavar="MIB", help="size of one ring file (default 100)")
    p.add_argument("--ring-files", type=int, metavar="N", help="ring files kept per interface (default 10)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--count", type=int, metavar="N", help="stop after N UDP datagrams")
    add_pipeline_options(p)
    p.add_argument("--out", metavar="PATH", help="NDJSON output (default: standard output)")
    p.add_argument("--rotate-mb", type=float, metavar="MIB", help="rotate the NDJSON output at this size")
    add_es_options(p)
    p.add_argument("--sensor-config", metavar="FILE",
                   help="YAML file with any of these options (the command line wins)")
    p.set_defaults(func=cmd_live)


def load_sensor_config(path: str) -> dict:
    """The option mapping of a --sensor-config file; raises ValueError naming the problem."""
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read sensor config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the sensor config must be a mapping of option names")
    out = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in _FILE_OPTIONS:
            raise ValueError(f"{path}: unknown option {key!r}")
        want = _FILE_OPTIONS[dest]
        if dest in ("interface", "rules", "ports") and isinstance(value, (str, int)):
            value = [value]
        if value is not None and not isinstance(value, want) or isinstance(value, bool) and want in (int, (int, float)):
            raise ValueError(f"{path}: option {key!r} has the wrong type")
        out[dest] = value
    return out


def _merge(args, file_options: dict) -> None:
    """Fill every option the command line left unset from the file."""
    for dest, value in file_options.items():
        current = getattr(args, dest, None)
        if current is None or current == [] or (dest == "no_rules" and current is False):
            setattr(args, dest, value)


def _parse_ports(value) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    ports = []
    for item in items:
        text = str(item).strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ValueError(f"invalid port {text!r}")
        ports.append(int(text))
    if not ports:
        raise ValueError("no ports")
    return tuple(ports)


def cmd_live(args) -> int:
    from .live import (DEFAULT_BUFFER_MB, DEFAULT_PORTS, DEFAULT_SNAPLEN, CaptureOptions, LiveError,
                       LiveSensor, RunLimits)
    from .pipeline import Pipeline
    if args.sensor_config:
        try:
            _merge(args, load_sensor_config(args.sensor_config))
        except ValueError as exc:
            return fail(EXIT_CONFIG, str(exc))
    if not args.interface:
        return fail(EXIT_USAGE, "live: give at least one --interface")
    try:
        ports = _parse_ports(args.ports) if args.ports else DEFAULT_PORTS
    except ValueError as exc:
        return fail(EXIT_USAGE, f"live: --ports: {exc}")
    for name, value in (("--snaplen", args.snaplen), ("--buffer-size", args.buffer_size),
                        ("--ring-size", args.ring_size), ("--ring-files", args.ring_files),
                        ("--count", args.count), ("--rotate-mb", args.rotate_mb)):
        if value is not None and value <= 0:
            return fail(EXIT_USAGE, f"live: {name} must be positive")
    for name, value in (("--duration", args.duration), ("--stats-interval", args.stats_interval)):
        if value is not None and value < 0:
            return fail(EXIT_USAGE, f"live: {name} must not be negative")
    opts = CaptureOptions(
        interfaces=list(dict.fromkeys(args.interface)), bpf=args.bpf, ports=ports,
        promisc=args.promisc is not False, snaplen=args.snaplen or DEFAULT_SNAPLEN,
        buffer_mb=args.buffer_size or DEFAULT_BUFFER_MB, ring_dir=args.ring,
        ring_size_mb=args.ring_size or 100, ring_files=args.ring_files or 10)
    limits = RunLimits(duration=args.duration, count=args.count,
                       stats_interval=60.0 if args.stats_interval is None else args.stats_interval)
    try:
        config = build_config(args)
    except config_errors() as exc:
        return fail(EXIT_CONFIG, str(exc))
    # The ports the sensor is told about are LwM2M ports: CoAP there is decoded as CoAP.
    config.coap_ports = frozenset(config.coap_ports) | frozenset(p for p in ports if p != 5684)
    try:
        sinks = _open_sinks(args)
    except OSError as exc:
        return fail(EXIT_OUTPUT, f"{args.out}: cannot write output ({exc.strerror})")
    except ValueError as exc:
        return fail(EXIT_CONFIG, str(exc))
    try:
        sensor = LiveSensor(opts, limits, Pipeline(config), sinks, reload=lambda: _rebuild(args))
    except LiveError as exc:
        for s in sinks:
            s.close()
        return fail(EXIT_INPUT, str(exc))
    try:
        result = sensor.run()
    finally:
        for s in sinks:
            s.close()
    return EXIT_INPUT if result.stopped_by == "capture-error" else EXIT_OK


def _rebuild(args):
    """SIGHUP: the keys/objects/rules files are read again; errors keep the old config."""
    try:
        return build_config(args)
    except config_errors() as exc:
        raise RuntimeError(str(exc)) from None


def _open_sinks(args) -> list:
    from .cli import open_sinks
    args.format = "ndjson"
    out = args.out or "-"
    if not args.rotate_mb or out == "-":
        args.out = out
        sinks, _ = open_sinks(args, out)
        return sinks
    from .sinks import NdjsonSink
    parent = os.path.dirname(os.path.abspath(out))
    if not os.access(parent, os.W_OK) and os.path.isdir(parent):
        raise OSError(13, "permission denied")
    sinks = [NdjsonSink(out, rotate_bytes=int(args.rotate_mb * 1024 * 1024))]
    if args.es:
        from .es_sink import EsConfig, EsSink
        sinks.append(EsSink(EsConfig.from_env_and_args(url=args.es)))
    return sinks
