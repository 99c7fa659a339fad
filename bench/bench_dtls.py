"""Records/s of `DtlsTracker.feed` alone (datagrams read into memory first) on the Golioth OTA
capture: 274 DTLS records, 264 AES-128-CCM application records of up to ~1 KB.

Run: python bench/bench_dtls.py [LOOPS]
Each loop is a fresh tracker over the same datagrams, so handshake + key schedule are included.
Also times `looks_like_dtls` on every datagram of the capture (it runs on all UDP traffic).
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from monitor.capture import CaptureStats, read_files  # noqa: E402
from monitor.dtls_tracker import DtlsTracker  # noqa: E402
from monitor.keys import KeyStore, Psk  # noqa: E402
from parsers.dtls import looks_like_dtls  # noqa: E402

PCAP = ROOT.parent / "shared/corpus/golioth-coap-pcap/golioth_ota_download.pcapng"
IDENTITY = b"20230614151602-linux@blush-unexpected-fox"
KEY = bytes.fromhex("3234363835646335663162323237366138663433303038653230633062653932")
loops = int(sys.argv[1]) if len(sys.argv) > 1 else 50
dgrams = list(read_files([str(PCAP)], CaptureStats()))
keys = KeyStore(psks={IDENTITY: Psk(IDENTITY, KEY)})

t0 = time.perf_counter()
for _ in range(loops):
    for d in dgrams:
        looks_like_dtls(d.payload)
dt_check = time.perf_counter() - t0
dtls = [d for d in dgrams if looks_like_dtls(d.payload)]
records = plain_bytes = 0
t0 = time.perf_counter()
for _ in range(loops):
    t = DtlsTracker(keys)
    for d in dtls:
        plain_bytes += sum(len(p) for p in t.feed(d).plaintexts)
    records += t.stats["records"]
dt = time.perf_counter() - t0
print(f"looks_like_dtls: {len(dgrams) * loops / dt_check:,.0f} datagrams/s")
print(f"DtlsTracker: {records} records in {dt:.3f} s: {records / dt:,.0f} records/s, "
      f"{plain_bytes / dt / 1e6:.1f} MB/s plaintext, {dt / loops * 1e3:.1f} ms per capture")
