"""Offline HTML report: rendered by headless Chromium (screenshot and DOM), checked for content
taken from the captures (tshark, the keys files, MANIFEST.md), for escaping of hostile network
values, and for being self-contained and free of secrets."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser

import pytest
import yaml

from monitor.cli import main as cli_main
from monitor.report import INTERFACE_COLOURS, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
OPERATIONS = os.path.join(PCAPS, "leshan-nosec-operations.pcap")
BOOTSTRAP = os.path.join(PCAPS, "leshan-nosec-bootstrap.pcap")
PSK = os.path.join(PCAPS, "leshan-psk-ccm8.pcap")
PSK_KEYS = os.path.join(PCAPS, "leshan-psk-ccm8.keys.yaml")
OSCORE = os.path.join(PCAPS, "oscore-lwm2m.pcap")
OSCORE_WRONG = os.path.join(PCAPS, "oscore-wrong.keys.yaml")
THERMOSTAT = os.path.join(ROOT, "..", "shared", "corpus", "microschc-leshan-thermostat",
                          "leshan-thermostat-readings.pcapng")
WIDTH, HEIGHT = 1280, 2000


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (scripts/setup.sh installs the Debian package)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", *args], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Minimal PNG decoder (8-bit, non-interlaced RGB/RGBA): width, height, rows, bytes per pixel."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if f == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif f == 3:
            for x in range(stride):
                line[x] = (line[x] + ((line[x - bpp] if x >= bpp else 0) + prev[x]) // 2) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows, bpp


class Sections(HTMLParser):
    """Text of each <section id=...>, and the cells of its tables (row by row)."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self.section: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "section":
            self.section = dict(attrs).get("id")
            self.text[self.section] = []
            self.rows[self.section] = []
        elif tag == "tr" and self.section:
            self.rows[self.section].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.section:
            self.rows[self.section][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        if self.section:
            self.text[self.section].append(data)
        if self.cell is not None:
            self.cell.append(data)

    def section_text(self, sid: str) -> str:
        return " ".join("".join(self.text[sid]).split())


def parse(page: str) -> Sections:
    s = Sections()
    s.feed(page)
    return s


@pytest.fixture(scope="module")
def operations_report(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "ops.html"
    assert cli_main(["report", OPERATIONS, "-o", str(out)]) == 0
    return str(out)


def analyze(capture: str, tmp, keys: str | None = None) -> list[dict]:
    out = os.path.join(tmp, os.path.basename(capture) + ".ndjson")
    assert cli_main(["analyze", capture, "--out", out, "-q"] + (["--keys", keys] if keys else [])) == 0
    with open(out) as f:
        return [json.loads(line) for line in f]


# ---- rendered by Chromium ---------------------------------------------------------------------

def test_screenshot_is_a_drawn_page_with_the_chart(operations_report, tmp_path):
    png = tmp_path / "out.png"
    res = chromium(f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", "file://" + operations_report)
    assert png.exists() and png.stat().st_size > 10_000, res.stderr[-500:]
    w, h, rows, bpp = png_pixels(png.read_bytes())
    assert (w, h) == (WIDTH, HEIGHT)
    pixels = [row[x:x + 3] for row in rows for x in range(0, len(row), bpp)]
    non_white = sum(1 for p in pixels if p != b"\xff\xff\xff")
    assert non_white > 0.03 * len(pixels)               # text, tables, chart: not a blank page
    # the SVG chart drew device-management bars in their colour (an opaque rect of exactly this RGB)


def test_chart_draws_bars(operations_report, tmp_path):
    """The operations section alone (legend swatches are 11x11 px): its SVG bars must be drawn."""
    page = open(operations_report).read()
    head = page[:page.index("<body>") + len("<body>")]
    chart = re.search(r'<section id="operations">.*?</section>', page, re.S).group(0)
    only = tmp_path / "chart.html"
    only.write_text(head + chart + "</body></html>")
    png = tmp_path / "chart.png"
    chromium(f"--screenshot={png}", "--window-size=1280,600", "file://" + str(only))
    w, h, rows, bpp = png_pixels(png.read_bytes())
    pixels = [row[x:x + 3] for row in rows for x in range(0, len(row), bpp)]
    counts = {}
    for interface in INTERFACE_COLOURS:
        colour = bytes.fromhex(INTERFACE_COLOURS[interface][1:])
        assert max(colour) - min(colour) > 60             # a saturated colour, not the page's white/grey
        counts[interface] = sum(1 for p in pixels if p == colour)
    # 32 management operations in 120 bins of one lane: far more than the 121 px legend swatch;
    # no bootstrap in this capture: the swatch alone
    assert counts["device-management"] > 300, counts
    assert counts["bootstrap"] <= 121 < min(counts["registration"], counts["information-reporting"]), counts


def test_dom_has_the_devices_session_and_alerts(operations_report, tmp_path):
    res = chromium("--dump-dom", "file://" + operations_report)
    dom = res.stdout.decode()
    page = parse(dom)
    inv = page.section_text("inventory")
    assert "leshan-client-01" in inv and "Eclipse Leshan" in inv and "lwm2m-monitor-scenario" in inv
    assert hashlib.sha256(bytes(i & 0xFF for i in range(4096))).hexdigest()[:12] in inv
    sessions = page.section_text("sessions")
    assert "register" in sessions and "deregister" in sessions
    # the chips follow the capture's order: as tshark sees it, the first request is POST /rd and
    # the last one DELETE /rd/<location>
    requests = subprocess.run(["tshark", "-r", OPERATIONS, "-Y", "coap.code >= 1 && coap.code <= 4", "-T", "fields",
                               "-e", "coap.code", "-e", "coap.opt.uri_path_recon"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    assert requests[0].split("\t") == ["2", "/rd"]
    code, path = requests[-1].split("\t")
    assert code == "4" and path.startswith("/rd/")
    chips = re.findall(r'class="chip[^"]*"[^>]*>([a-z-]+)', dom)
    assert chips[0] == "register" and chips[-1] == "deregister"
    # alerts: every rule that fired in the NDJSON of the same capture is listed with its count
    docs = analyze(OPERATIONS, str(tmp_path))
    fired = {d["rule"]["name"] for d in docs if d["event"]["kind"] == "alert"}
    assert fired, "the rules raise alerts on this NoSec capture"
    alerts = page.section_text("alerts")
    for name in fired:
        n = sum(1 for d in docs if d["event"]["kind"] == "alert" and d["rule"]["name"] == name)
        assert f"{name}: {n}" in alerts


def test_dtls_and_oscore_decryption_status(tmp_path):
    keyed, unkeyed, wrong = tmp_path / "k.html", tmp_path / "u.html", tmp_path / "w.html"
    assert cli_main(["report", PSK, "--keys", PSK_KEYS, "-o", str(keyed)]) == 0
    assert cli_main(["report", PSK, "-o", str(unkeyed)]) == 0
    assert cli_main(["report", OSCORE, "--keys", OSCORE_WRONG, "-o", str(wrong)]) == 0

    def dtls_rows(path):
        rows = parse(chromium("--dump-dom", "file://" + str(path)).stdout.decode()).rows["dtls"]
        head = rows[0]
        return [dict(zip(head, r)) for r in rows[1:] if len(r) == len(head)]

    (k,) = dtls_rows(keyed)
    (u,) = dtls_rows(unkeyed)
    # tshark: the ClientKeyExchange identity and the negotiated suite of the capture
    ident = subprocess.run(["tshark", "-r", PSK, "-Y", "dtls.handshake.type == 16", "-T", "fields",
                            "-e", "dtls.handshake.identity"], capture_output=True, text=True).stdout.split()[0]
    assert k["identity"] == bytes.fromhex(ident.replace(":", "")).decode()
    assert k["cipher"] == "TLS_PSK_WITH_AES_128_CCM_8"
    assert (k["decrypted"], u["decrypted"]) == ("yes", "no")
    assert k["device"] == "leshan-client-psk"
    oscore = parse(open(wrong).read()).rows["oscore"]
    head = oscore[0]
    summaries = [dict(zip(head, r)) for r in oscore[1:]]
    assert summaries and all(s["decrypted"] == "no" and int(s["messages failed"]) > 0 for s in summaries)


# ---- what the page must never contain ----------------------------------------------------------

HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'


def test_network_values_are_text_not_markup(tmp_path):
    docs = analyze(OPERATIONS, str(tmp_path))
    for d in docs:
        lw = d.get("lwm2m", {})
        if "endpoint" in lw:
            lw["endpoint"] = HOSTILE
        for v in lw.get("values", ()):
            if v.get("path") == "/3/0/0":
                v["value"] = '"><svg onload=alert(2)>'
        if "hosts" in d.get("related", {}):
            d["related"]["hosts"] = [HOSTILE]
        if "message" in d:
            d["message"] = HOSTILE
    page = render(docs, sources=[HOSTILE])
    assert "<script" not in page and "<img" not in page and "<svg onload" not in page
    path = tmp_path / "hostile.html"
    path.write_text(page)
    dom = chromium("--dump-dom", "file://" + str(path)).stdout.decode()
    assert "<script" not in dom and "<img" not in dom and "owned" not in dom.split("<title>")[1].split("</title>")[0]
    shown = parse(dom)
    assert HOSTILE in shown.section_text("inventory")          # shown literally, as text
    assert '"><svg onload=alert(2)>' in shown.section_text("inventory")


def test_self_contained_and_script_free(operations_report):
    page = open(operations_report).read()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<(script|link|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"\b(src|href)\s*=\s*\"(?!#|data:)", page, re.I)     # only in-page anchors
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page, re.I)


def secrets_of(keys_file: str) -> list[str]:
    with open(keys_file) as f:
        keys = yaml.safe_load(f)
    found: list[str] = []

    def walk(v, key=""):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key.lower() in ("key", "psk", "secret", "master_secret", "salt", "master_salt"):
            found.append(v)
    walk(keys)
    return found


def test_no_secret_in_the_page(tmp_path):
    boot_keys = os.path.join(PCAPS, "leshan-nosec-bootstrap.keys.yaml")
    for capture, keys in ((PSK, PSK_KEYS), (BOOTSTRAP, boot_keys)):
        secrets = secrets_of(keys)
        assert secrets, keys
        out = tmp_path / (os.path.basename(capture) + ".html")
        assert cli_main(["report", capture, "--keys", keys, "-o", str(out)]) == 0
        page = open(out).read().lower()
        for s in secrets:
            hexed = s.lower().removeprefix("0x")
            assert hexed not in page
            if re.fullmatch(r"[0-9a-f]+", hexed) and len(hexed) % 2 == 0:
                raw = bytes.fromhex(hexed)
                assert raw.hex(":") not in page
                if raw.isascii() and raw.decode().isprintable():
                    assert raw.decode().lower() not in page


# ---- large input ---------------------------------------------------------------------------------

def test_thermostat_report_stays_bounded(tmp_path):
    out = tmp_path / "thermo.html"
    assert cli_main(["report", THERMOSTAT, "-o", str(out)]) == 0
    page = open(out).read()
    assert len(page) < 600_000
    text = parse(page)
    # MANIFEST: client 2001:db8:a::3 never registers in the capture; 111 updates to /rd/WHPXK8QxKo
    assert "(unnamed) [2001:db8:a::3]" in text.section_text("inventory")
    assert "/rd/WHPXK8QxKo" in text.section_text("inventory")
    sessions = text.rows["sessions"]
    head = sessions[0]
    row = dict(zip(head, sessions[1]))
    assert row["updates"] == "111"
    assert "more" in text.section_text("sessions")       # chips capped, the rest counted


def test_many_devices_are_all_in_the_inventory_but_the_chart_is_capped(tmp_path):
    from monitor.report import MAX_DEVICES
    base = analyze(OPERATIONS, str(tmp_path))
    docs = []
    n = MAX_DEVICES + 15
    for i in range(n):              # the same device seen n times under other names and ports
        for d in json.loads(json.dumps(base)):
            if "endpoint" in d.get("lwm2m", {}):
                d["lwm2m"]["endpoint"] = f"fleet-{i:03d}"
            if "hosts" in d.get("related", {}):
                d["related"]["hosts"] = [f"fleet-{i:03d}"]
            for key in ("client", "source", "destination"):
                if d.get(key, {}).get("port") == d["client"]["port"] and key != "client":
                    d[key]["port"] = 20000 + i
            d["client"]["port"] = 20000 + i
            docs.append(d)
    page = render(docs, sources=["fleet"])
    text = parse(page)
    inv_rows = text.rows["inventory"][1:]
    assert len(inv_rows) == n
    assert len(re.findall(r"<h3>fleet-\d{3}</h3>", page)) == MAX_DEVICES
    assert f"{n - MAX_DEVICES} more devices not shown" in text.section_text("sessions")
    assert f"{n - MAX_DEVICES} more devices not shown" in text.section_text("operations")


def test_report_to_standard_output_is_the_page_the_file_gets(operations_report, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["report", OPERATIONS, "-o", "-"]) == 0
    captured = capsys.readouterr()
    with open(operations_report, encoding="utf-8") as f:
        assert captured.out == f.read()
    assert "report: standard output (47 documents)" in captured.err
    assert not (tmp_path / "-").exists()
