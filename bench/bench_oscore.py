"""OSCORE messages unprotected per second by `OscoreTracker` (parse option, pick context, AEAD,
plaintext parse, merge, replay window, documents) on the Interop6 captures and pcaps/oscore-lwm2m.pcap.

Run: python bench/bench_oscore.py [LOOPS]
Packets are read and CoAP-parsed once up front (scapy); only `unprotect` is timed. Each loop uses
a fresh tracker (so key derivation is included and retransmitted PIVs are not seen as replays).
"""
import gzip
import sys
import time
from pathlib import Path

from scapy.all import IP, UDP, IPv6, rdpcap

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from monitor import keys as keysfile  # noqa: E402
from monitor.datagram import Datagram  # noqa: E402
from monitor.keys import KeyStore, OscoreContextConfig  # noqa: E402
from monitor.oscore_tracker import OscoreTracker  # noqa: E402
from parsers import coap  # noqa: E402

INTEROP = ROOT.parent / "shared/corpus/ericsson-oscore-interop"
h = bytes.fromhex
SPEC5 = KeyStore(oscore=[
    OscoreContextConfig(h("0102030405060708090a0b0c0d0e0f10"), h("9e7ca92223786340"), None, b"", h("01")),
    OscoreContextConfig(h("0102030405060708090a0b0c0d0e0f10"), h("9e7ca92223786340"), h("37cbf3210017a2d3"),
                        b"", h("01"))])


def messages(path: Path):
    packets = rdpcap(gzip.open(path) if path.suffix == ".gz" else str(path))
    out = []
    for frame, pkt in enumerate(packets, 1):
        if UDP not in pkt:
            continue
        ip = pkt[IP] if IP in pkt else pkt[IPv6]
        d = Datagram(int(pkt.time * 1e9), ip.src, pkt[UDP].sport, ip.dst, pkt[UDP].dport, bytes(pkt[UDP].payload),
                     frame, str(path))
        try:
            msg = coap.parse(d.payload)
        except ValueError:
            continue
        if msg.oscore is not None:
            out.append((d, msg))
    return out


def run(name: str, keys: KeyStore, msgs, loops: int, client_port: int | None = None) -> None:
    n = decrypted = 0
    t0 = time.perf_counter()
    for _ in range(loops):
        tr = OscoreTracker(keys)
        for d, m in msgs:
            r = tr.unprotect(d, m, None if client_port is None else d.src_port == client_port)
            decrypted += r.decrypted
            n += 1
        tr.close()
    dt = time.perf_counter() - t0
    print(f"{name:28s} {n:7d} OSCORE msgs, {decrypted:7d} decrypted in {dt:.3f} s: "
          f"{n / dt:9,.0f} msgs/s, {decrypted / dt:9,.0f} decrypted/s")


def main() -> None:
    loops = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for f in sorted(INTEROP.glob("*.pcapng.gz")):
        run(f.name.split(".")[0], SPEC5, messages(f), loops)
    run("oscore-lwm2m", keysfile.load(str(ROOT / "pcaps/oscore-lwm2m.keys.yaml")),
        messages(ROOT / "pcaps/oscore-lwm2m.pcap"), loops, client_port=56930)
    run("oscore-lwm2m (wrong key)", keysfile.load(str(ROOT / "pcaps/oscore-wrong.keys.yaml")),
        messages(ROOT / "pcaps/oscore-lwm2m.pcap"), loops, client_port=56930)


if __name__ == "__main__":
    main()
