"""Offline HTML report: one self-contained page (inline CSS and SVG, no script, no external load).

Sections: summary, inventory, operations over time per device (SVG), the LwM2M session of
each device (bootstrap → register → management → deregister), alerts with their evidence,
DTLS and OSCORE sessions and whether they decrypted.

Every value shown comes from the network: all text goes through `esc` (html.escape), nothing
is written as markup from data, and a Content-Security-Policy forbids scripts and fetches, so a
hostile endpoint name stays text. Documents carry no raw payloads (secrets are redacted before
they exist); decoded `lwm2m.values` are not shown either.
"""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

from . import inventory
from .ecs import get_path

INTERFACE_COLOURS = {"bootstrap": "#8e44ad", "registration": "#2471a3", "device-management": "#229954",
                     "information-reporting": "#d68910"}
OTHER_COLOUR = "#7f8c8d"
SEVERITY_NAMES = {1: "low", 2: "medium", 3: "high", 4: "critical"}
MAX_ROWS = 500                        # per table; the rest is counted, not shown
MAX_RUNS = 150                        # timeline chips per device
MAX_DEVICES = 60                      # devices drawn in the chart and the session list
OPEN_EVIDENCE = 40                    # up to this many alerts, evidence is shown unfolded
MAX_TEXT = 240                        # characters of one value
# Evidence of an alert: the copied facts of the triggering document, without what the row already
# says (endpoint, addresses in the message) and without decoded payload values.
EVIDENCE_SPACES = ("lwm2m", "dtls", "tls", "oscore")
EVIDENCE_EXTRA = ("coap.request.code", "coap.response.code", "coap.uri_path")
EVIDENCE_SKIP = ("lwm2m.values", "lwm2m.endpoint", "lwm2m.interface", "tls.client.random",
                 "tls.client.supported_ciphers", "dtls.client.cipher_suites", "dtls.server.session_id")
MAX_EVIDENCE = 24
BINS = 120
CHART_W, LABEL_W, LANE_H = 1180, 250, 56

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1c2833;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d5d8dc;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px}
th,td{border:1px solid #d5d8dc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f2f3f4;font-weight:600}
tr:nth-child(even) td{background:#fbfcfc}
.muted{color:#717d7e}.num{text-align:right;font-variant-numeric:tabular-nums}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.ok{color:#1e8449;font-weight:600}.bad{color:#b03a2e;font-weight:600}.unk{color:#7f8c8d}
.sev{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.sev1{background:#5d6d7e}.sev2{background:#d68910}.sev3{background:#cb4335}.sev4{background:#7b241c}
.chips{display:flex;flex-wrap:wrap;gap:4px;align-items:center;margin:4px 0 10px}
.chip{border-radius:10px;padding:1px 8px;color:#fff;font-size:12px;white-space:nowrap}
.chip.fail{outline:2px solid #b03a2e;outline-offset:1px}
.arrow{color:#99a3a4;font-size:12px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:10px 0}
.card{border:1px solid #d5d8dc;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}
dl.ev{display:grid;grid-template-columns:max-content auto;gap:0 10px;margin:0}
dl.ev dt{color:#566573}dl.ev dd{margin:0}
.wide{overflow-x:auto}
nav{font-size:13px;margin:6px 0}nav a{color:#2471a3;text-decoration:none}
"""


def esc(value) -> str:
    """Any data value as HTML text (cut to MAX_TEXT, control characters shown as '?')."""
    text = value if isinstance(value, str) else ("-" if value is None else str(value))
    if not text.isprintable():          # control and format characters (escapes, bidi overrides)
        text = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    return html.escape(text, quote=True)


def _time(ts) -> str:
    """ISO time as 'YYYY-MM-DD HH:MM:SS.mmm' (UTC)."""
    if isinstance(ts, str) and len(ts) >= 19 and ts[10] == "T":
        return esc(ts[:23].replace("T", " ").rstrip("Z"))
    return esc(ts)


def _epoch(ts) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _addr(doc: dict, key: str) -> str:
    ip, port = get_path(doc, f"{key}.ip"), get_path(doc, f"{key}.port")
    if ip is None:
        return "-"
    return inventory.address_text((str(ip), port if isinstance(port, int) else 0))


def _yes_no(value, judged: bool = True) -> str:
    """yes/no, green/red when `judged` (yes is the good answer), plain otherwise."""
    if value is True:
        return '<span class="ok">yes</span>' if judged else "yes"
    if value is False:
        return '<span class="bad">no</span>' if judged else "no"
    return '<span class="unk">-</span>'


def _table(headers: list[str], rows: list[list[str]], total: int | None = None) -> str:
    """`rows` cells are already HTML (escaped by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[:MAX_ROWS])
    more = ""
    n = len(rows) if total is None else total
    if n > MAX_ROWS:
        more = f'<p class="muted">{n - MAX_ROWS} more rows not shown.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


@dataclass
class _Data:
    docs: list[dict]
    names: list[str | None]            # device name per document (None: not attributable)
    inv: inventory.Inventory

    @classmethod
    def of(cls, docs: list[dict]) -> "_Data":
        keys = inventory.device_keys(docs)
        names = [inventory.key_name(k) if k is not None else None for k in keys]
        return cls(docs, names, inventory.build(docs, keys))

    def select(self, dataset: str | None = None, kind: str | None = None):
        for d, name in zip(self.docs, self.names):
            if dataset is not None and get_path(d, "event.dataset") != dataset:
                continue
            if kind is not None and get_path(d, "event.kind") != kind:
                continue
            yield d, name


# ---- sections ---------------------------------------------------------------------------------

def _summary(data: _Data, sources: list[str]) -> str:
    times = sorted(t for t in (d.get("@timestamp") for d in data.docs) if isinstance(t, str))
    kinds = Counter((str(get_path(d, "event.dataset")), str(get_path(d, "event.kind"))) for d in data.docs)
    alerts = sum(n for (ds, k), n in kinds.items() if k == "alert")
    ops = sum(n for (ds, k), n in kinds.items() if ds == "lwm2m.operation")
    cards = [("devices", len(data.inv.devices)), ("LwM2M operations", ops), ("alerts", alerts),
             ("DTLS handshakes", kinds.get(("dtls.handshake", "event"), 0)), ("documents", len(data.docs))]
    out = ['<div class="cards">'] + [f'<div class="card"><b>{n}</b>{esc(label)}</div>' for label, n in cards]
    out.append("</div>")
    span = f"{_time(times[0])} → {_time(times[-1])} UTC" if times else "no timestamps"
    out.append(f'<p>Inputs: <span class="mono">{esc(", ".join(sources))}</span><br>Time span: {span}</p>')
    rows = [[esc(ds), esc(k), f'<span class="num">{n}</span>'] for (ds, k), n in sorted(kinds.items())]
    out.append("<details><summary>Documents by dataset</summary>" +
               _table(["event.dataset", "event.kind", "documents"], rows) + "</details>")
    return "".join(out)


def _inventory(data: _Data) -> str:
    if not data.inv.devices:
        return '<p class="muted">No LwM2M endpoint seen.</p>'
    rows = []
    for d in data.inv.devices:
        images = "<br>".join(f'<span class="mono">{esc(i.sha256[:12])}…</span> {esc(i.size)} B {esc(i.action)}'
                             for i in d.firmware_images) or "-"
        history = "<br>".join(f"{_time(c.timestamp)} {esc(c.field)}: {esc(c.previous)} → {esc(c.value)}"
                              for c in d.device_changes if c.previous is not None)
        alerts = f"<b>{d.alert_total}</b>" + "".join(f"<br><small>{esc(name)}: {n}</small>" for name, n in d.alerts)
        ident = "<br>".join(esc(i) for i in d.identities)
        if d.identity_matches_endpoint is False:
            ident += '<br><span class="bad">≠ endpoint</span>'
        reg = [esc(v) for v in (d.lwm2m_version, d.binding) if v is not None]
        if d.lifetime is not None:
            reg.append(f"{esc(d.lifetime)} s")
        rows.append([
            f"<b>{esc(inventory.device_name(d))}</b>", f"{_time(d.first_seen)}<br>{_time(d.last_seen)}",
            "<br>".join(esc(a) for a in d.client_addresses) or "-",
            esc(", ".join(d.security) or "-") + (f"<br>{ident}" if ident else ""),
            (" · ".join(reg) or "-") + (f'<br><span class="mono">{esc(d.registration_location)}</span>'
                                         if d.registration_location else ""),
            f'<span class="mono">{esc(" ".join(d.objects) or "-")}</span>',
            esc(d.manufacturer), esc(d.model), esc(d.firmware_version) + (f"<br><small>{history}</small>" if history else ""),
            images, alerts,
        ])
    headers = ["device", "first / last seen", "clients", "security, identity", "version · binding · lifetime, location",
               "objects", "manufacturer", "model", "firmware", "firmware images", "alerts"]
    out = f'<div class="wide">{_table(headers, rows)}</div>'
    if data.inv.unattributed_alerts:
        out += "<p>Alerts naming no known device: " + esc(", ".join(
            f"{name}: {n}" for name, n in sorted(data.inv.unattributed_alerts.items()))) + "</p>"
    return out


def _operations_chart(data: _Data) -> str:
    """One lane per device on its own time scale (inputs may be days apart): operations per
    time bin stacked by interface, alerts as red marks above."""
    stamped: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    for d, n in data.select():
        if n is None or (get_path(d, "event.dataset") != "lwm2m.operation" and get_path(d, "event.kind") != "alert"):
            continue
        t = _epoch(d.get("@timestamp"))
        if t is not None:
            stamped[n].append((t, d))
    if not stamped:
        return '<p class="muted">No LwM2M operation seen.</p>'
    devices, hidden = _busiest(data, stamped)
    plot_w = CHART_W - LABEL_W - 20
    bin_w = plot_w / BINS
    height = 10 + LANE_H * len(devices)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{height}" '
             f'viewBox="0 0 {CHART_W} {height}" role="img" aria-label="operations over time per device" '
             f'font-family="sans-serif">',
             f'<rect x="0" y="0" width="{CHART_W}" height="{height}" fill="#fff"/>']
    for i, name in enumerate(devices):
        points = stamped[name]
        t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
        span = max(t1 - t0, 1e-6)
        counts = [Counter() for _ in range(BINS)]
        alert_bins: Counter = Counter()
        for t, d in points:
            b = min(int((t - t0) / span * BINS), BINS - 1)
            if get_path(d, "event.kind") == "alert":
                alert_bins[b] += 1
            else:
                counts[b][str(get_path(d, "lwm2m.interface"))] += 1
        top = 6 + i * LANE_H
        bar_h = LANE_H - 24
        peak = max(sum(c.values()) for c in counts) or 1
        parts.append(f'<rect x="{LABEL_W}" y="{top}" width="{plot_w:.1f}" height="{bar_h}" fill="#f8f9f9" '
                     f'stroke="#e5e8e8"/>')
        parts.append(f'<text x="{LABEL_W - 8}" y="{top + bar_h / 2 + 4}" text-anchor="end" font-size="12">'
                     f'{esc(name[:36])}</text>')
        total = sum(sum(c.values()) for c in counts)
        parts.append(f'<text x="{LABEL_W - 8}" y="{top + bar_h / 2 + 18}" text-anchor="end" font-size="10" '
                     f'fill="#717d7e">{total} operations, peak {peak}/bin</text>')
        for b, c in enumerate(counts):
            y = top + bar_h
            for iface in (*INTERFACE_COLOURS, *sorted(set(c) - set(INTERFACE_COLOURS))):
                n = c.get(iface, 0)
                if not n:
                    continue
                h = max(1.5, n / peak * (bar_h - 10))
                y -= h
                parts.append(f'<rect x="{LABEL_W + b * bin_w:.1f}" y="{y:.1f}" width="{max(bin_w - 0.6, 0.8):.1f}" '
                             f'height="{h:.1f}" fill="{INTERFACE_COLOURS.get(iface, OTHER_COLOUR)}">'
                             f'<title>{n} {esc(iface)}</title></rect>')
        for b, n in alert_bins.items():
            x = LABEL_W + (b + 0.5) * bin_w
            parts.append(f'<path d="M{x:.1f},{top + 9} l-4.5,-8 h9 z" fill="#c0392b"><title>{n} alert(s)</title></path>')
        for frac, anchor in ((0, "start"), (0.5, "middle"), (1, "end")):
            label = datetime.fromtimestamp(t0 + span * frac, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S" if frac == 0 else "%H:%M:%S")
            parts.append(f'<text x="{LABEL_W + plot_w * frac:.1f}" y="{top + bar_h + 12}" text-anchor="{anchor}" '
                         f'font-size="10" fill="#566573">{label}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{c}"></i>{esc(i)}</span>' for i, c in INTERFACE_COLOURS.items())
    legend += '<span><i style="background:#c0392b"></i>alert</span>'
    return (f'<div class="legend">{legend}</div>' + "".join(parts) + _hidden_note(hidden) +
            f'<p class="muted">UTC. Each device on its own time scale, from its first to its last operation, '
            f'in {BINS} bins; bar height relative to the device\'s busiest bin.</p>')


def _busiest(data: _Data, per_device: dict) -> tuple[list[str], int]:
    """At most MAX_DEVICES names, those with the most alerts then the most operations, in name order."""
    if len(per_device) <= MAX_DEVICES:
        return sorted(per_device), 0
    weight = {inventory.device_name(d): (d.alert_total, d.operations) for d in data.inv.devices}
    ranked = sorted(per_device, key=lambda n: (weight.get(n, (0, 0)), n), reverse=True)
    return sorted(ranked[:MAX_DEVICES]), len(per_device) - MAX_DEVICES


def _hidden_note(hidden: int) -> str:
    if not hidden:
        return ""
    return (f'<p class="muted">{hidden} more devices not shown here (the {MAX_DEVICES} with the most alerts, '
            f'then operations, are); all are in the inventory.</p>')


# Device-management operations (the server acting on the client), counted in the session table.
_MANAGEMENT = frozenset({"read", "read-composite", "write", "write-composite", "write-attributes", "execute",
                         "create", "delete", "discover", "observe", "observe-composite", "cancel-observation"})


def _when(ops: list[dict], action: str, last: bool = False) -> str:
    """Time and outcome of the first (or last) `action` among `ops`."""
    hits = [d for d in ops if get_path(d, "event.action") == action]
    if not hits:
        return '<span class="muted">-</span>'
    d = hits[-1] if last else hits[0]
    outcome = get_path(d, "event.outcome")
    mark = {"success": "ok", "failure": "bad"}.get(outcome, "unk")
    return f'{_time(d.get("@timestamp"))} <span class="{mark}">{esc(outcome)}</span>'


def _sessions(data: _Data) -> str:
    per_device: dict[str, list[dict]] = defaultdict(list)
    for d, n in data.select("lwm2m.operation"):
        if n is not None:
            per_device[n].append(d)
    if not per_device:
        return '<p class="muted">No LwM2M operation seen.</p>'
    names, hidden = _busiest(data, per_device)
    out = [_hidden_note(hidden)]
    for name in names:
        ops = sorted(per_device[name], key=lambda d: str(d.get("@timestamp")))
        by_action = Counter(str(get_path(d, "event.action")) for d in ops)
        mgmt = sum(by_action.get(a, 0) for a in _MANAGEMENT)
        reporting = sum(by_action.get(a, 0) for a in ("notify", "send"))
        row = [_when(ops, "bootstrap-request"), _when(ops, "bootstrap-finish"), _when(ops, "register"),
               f'<span class="num">{by_action.get("update", 0)}</span>', f'<span class="num">{mgmt}</span>',
               f'<span class="num">{reporting}</span>', _when(ops, "deregister", last=True)]
        out.append(f"<h3>{esc(name)}</h3>")
        out.append(_table(["bootstrap-request", "bootstrap-finish", "register", "updates", "management operations",
                           "notify/send", "deregister"], [row]))
        out.append(_chips(ops))
    return "".join(out)


def _chips(ops: list[dict]) -> str:
    """Consecutive operations of the same action as one chip: the session at a glance."""
    runs: list[list] = []
    for d in ops:
        action = str(get_path(d, "event.action"))
        failed = get_path(d, "event.outcome") == "failure"
        if runs and runs[-1][0] == action:
            runs[-1][2] += 1
            runs[-1][3] = runs[-1][3] or failed
        else:
            runs.append([action, d, 1, failed])
    parts = []
    for action, d, n, failed in runs[:MAX_RUNS]:
        colour = INTERFACE_COLOURS.get(str(get_path(d, "lwm2m.interface")), OTHER_COLOUR)
        times = f" ×{n}" if n > 1 else ""
        path = get_path(d, "lwm2m.path")
        tip = f"{d.get('@timestamp')} {action} {path or ''}"
        parts.append(f'<span class="chip{" fail" if failed else ""}" style="background:{colour}" '
                     f'title="{esc(tip)}">{esc(action)}{times}</span>')
    more = f'<span class="muted">… {len(runs) - MAX_RUNS} more</span>' if len(runs) > MAX_RUNS else ""
    return '<div class="chips">' + '<span class="arrow">→</span>'.join(parts) + more + "</div>"


def _scalar_text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _flatten(value, prefix: str, out: list[tuple[str, str]]) -> None:
    if prefix in EVIDENCE_SKIP or len(out) >= MAX_EVIDENCE:
        return
    if isinstance(value, dict):
        for k in value:
            _flatten(value[k], f"{prefix}.{k}", out)
    elif isinstance(value, list) and value and all(isinstance(v, (str, int, float, bool)) for v in value):
        out.append((prefix, ", ".join(map(_scalar_text, value))))
    elif isinstance(value, (str, int, float, bool)):
        out.append((prefix, _scalar_text(value)))


def _alerts(data: _Data) -> str:
    alerts = sorted(data.select(kind="alert"), key=lambda dn: str(dn[0].get("@timestamp")))
    if not alerts:
        return '<p class="muted">No alert.</p>'
    by_rule = Counter(str(get_path(d, "rule.name")) for d, _ in alerts)
    out = ["<p>" + esc(", ".join(f"{r}: {n}" for r, n in sorted(by_rule.items()))) + "</p>"]
    rows = []
    opened = " open" if len(alerts) <= OPEN_EVIDENCE else ""
    for d, name in alerts[:MAX_ROWS]:
        sev = get_path(d, "event.severity")
        sev_html = (f'<span class="sev sev{sev}">{esc(SEVERITY_NAMES.get(sev, sev))}</span>'
                    if sev in SEVERITY_NAMES else esc(sev))
        evidence: list[tuple[str, str]] = []
        for space in EVIDENCE_SPACES:
            if space in d:
                _flatten(d[space], space, evidence)
        for f in EVIDENCE_EXTRA:
            if get_path(d, f) is not None:
                _flatten(get_path(d, f), f, evidence)
        related = get_path(d, "related.id")
        if isinstance(related, list):
            evidence.append(("related.id", ", ".join(map(str, related[:5])) + (" …" if len(related) > 5 else "")))
        count = get_path(d, "event.count")
        if isinstance(count, int) and count > 1:
            evidence.insert(0, ("event.count", f"{count} between {get_path(d, 'event.start')} and "
                                                f"{get_path(d, 'event.end')}"))
        ev_html = f'<details{opened}><summary>evidence</summary><dl class="ev">' + "".join(
            f"<dt>{esc(k)}</dt><dd class=\"mono\">{esc(v)}</dd>" for k, v in evidence) + "</dl></details>"
        rows.append([_time(d.get("@timestamp")), sev_html, f"<b>{esc(get_path(d, 'rule.name'))}</b>",
                     esc(name), esc(get_path(d, "message")), ev_html])
    out.append(_table(["time", "severity", "rule", "device", "message", "evidence"], rows, total=len(alerts)))
    return "".join(out)


def _dtls(data: _Data) -> str:
    rows = []
    for d, name in data.select("dtls.handshake"):
        ident = get_path(d, "dtls.psk_identity") or get_path(d, "tls.client.x509.subject.common_name") \
            or get_path(d, "lwm2m.identity.value")
        recs, dec = get_path(d, "dtls.records"), get_path(d, "dtls.decrypted_records")
        rows.append([_time(d.get("@timestamp")), esc(name), esc(_addr(d, "client")), esc(_addr(d, "server")),
                     esc(get_path(d, "tls.version")), f'<span class="mono">{esc(get_path(d, "tls.cipher"))}</span>',
                     esc(get_path(d, "dtls.mode")), esc(ident), _yes_no(get_path(d, "tls.established")),
                     _yes_no(get_path(d, "tls.resumed"), judged=False), _yes_no(get_path(d, "dtls.decrypted")),
                     f'<span class="num">{esc(dec)}/{esc(recs)}</span>',
                     f'<span class="mono">{esc(get_path(d, "dtls.history"))}</span>',
                     esc(get_path(d, "event.reason") or get_path(d, "dtls.key_source"))])
    out = _table(["time", "device", "client", "server", "version", "cipher", "mode", "identity", "established",
                  "resumed", "decrypted", "records decrypted", "history", "key / reason"], rows) if rows else \
        '<p class="muted">No DTLS handshake seen.</p>'
    alerts = [[_time(d.get("@timestamp")), esc(n), esc(_addr(d, "client")), esc(get_path(d, "dtls.alert.from")),
               esc(get_path(d, "dtls.alert.level")), esc(get_path(d, "dtls.alert.description")),
               _yes_no(get_path(d, "dtls.alert.encrypted"), judged=False)] for d, n in data.select("dtls.alert")]
    if alerts:
        out += "<h3>DTLS alerts</h3>" + _table(["time", "device", "client", "from", "level", "description",
                                                "encrypted"], alerts)
    return out


def _oscore(data: _Data) -> str:
    rows, failed = [], Counter()
    for d, name in data.select("oscore.context"):
        action = get_path(d, "event.action")
        if action == "decryption-failed":      # one per message: counted, the summary says the rest
            failed[(name, _addr(d, "source"), str(get_path(d, "oscore.kid")))] += 1
            continue
        if action == "context-seen":
            continue
        outcome = get_path(d, "event.outcome")
        rows.append([_time(d.get("@timestamp")), esc(name), esc(_addr(d, "source")), esc(_addr(d, "destination")),
                     esc(action), f'<span class="mono">{esc(get_path(d, "oscore.kid"))}</span>',
                     f'<span class="mono">{esc(get_path(d, "oscore.kid_context"))}</span>',
                     esc(get_path(d, "oscore.sender")), esc(get_path(d, "oscore.aead")),
                     _yes_no({"success": True, "failure": False}.get(outcome)),
                     f'<span class="num">{esc(get_path(d, "oscore.messages.decrypted") or 0)}</span>',
                     f'<span class="num">{esc(get_path(d, "oscore.messages.failed") or 0)}</span>',
                     esc(get_path(d, "oscore.error") or get_path(d, "event.reason") or "")])
    if not rows and not failed:
        return '<p class="muted">No OSCORE traffic seen.</p>'
    out = _table(["time", "device", "from", "to", "fact", "kid", "kid context", "sender", "AEAD", "decrypted",
                  "messages decrypted", "messages failed", "error"], rows)
    if failed:
        out += "<p>Messages that did not decrypt: " + esc(", ".join(
            f"{n} from {src} (kid {kid})" for (_, src, kid), n in sorted(failed.items(), key=str))) + "</p>"
    return out


def render(docs: list[dict], *, sources: list[str], title: str = "LwM2M traffic report") -> str:
    """The whole page as one string."""
    data = _Data.of(docs)
    sections = [("summary", "Summary", _summary(data, sources)),
                ("inventory", "Device inventory", _inventory(data)),
                ("operations", "Operations over time", _operations_chart(data)),
                ("sessions", "LwM2M sessions: bootstrap → register → management → deregister", _sessions(data)),
                ("alerts", "Alerts", _alerts(data)), ("dtls", "DTLS sessions", _dtls(data)),
                ("oscore", "OSCORE contexts", _oscore(data))]
    nav = " · ".join(f'<a href="#{sid}">{esc(h.split(":")[0])}</a>' for sid, h, _ in sections)
    body = f'<nav>{nav}</nav>' + "".join(f'<section id="{sid}"><h2>{esc(h)}</h2>{content}</section>'
                                         for sid, h, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f'<p class="muted">lwm2m-monitor offline report. Times in UTC. Values seen on the network are shown '
            f"as text; secrets were redacted when the documents were made.</p>{body}</body></html>\n")
