"""LwM2M payloads decoded per second by `decode_payload`, per content format.

Run: python bench/bench_payloads.py [SECONDS_PER_FORMAT]
Payloads: the /3/0 Device reads of pcaps/leshan-nosec-operations.pcap (TLV, SenML JSON/CBOR,
LwM2M JSON; 13 resources each), the thermostat's single-value TLV and CBOR notifications,
a register link-format payload, and an LwM2M CBOR document built with cbor2.
"""
import sys
import time
from pathlib import Path

import cbor2
from scapy.all import UDP, rdpcap

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from monitor.objects import ObjectModel  # noqa: E402
from monitor.payload_decoder import decode_payload  # noqa: E402
from parsers import coap  # noqa: E402


def cases():
    frames = {n: coap.parse(bytes(p[UDP].payload))
              for n, p in enumerate(rdpcap(str(ROOT / "pcaps/leshan-nosec-operations.pcap")), 1)}
    out = [(f"device {frames[n].content_format}", frames[n].payload, frames[n].content_format, "/3/0")
           for n in (4, 6, 8, 10)]
    out += [("register 40", frames[1].payload, 40, "/rd"),
            ("thermostat tlv", bytes.fromhex("e816440840478ccccccccccd"), 11542, "/3303/0"),
            ("thermostat cbor 60", bytes.fromhex("fb4031333333333333"), 60, "/3303/0/5700"),
            ("lwm2m cbor 11544", cbor2.dumps({3: {0: {0: "Eclipse Leshan", 9: 87, 13: 1700000000, 11: {0: 0}}}}),
             11544, "/3/0")]
    return out


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    model = ObjectModel.builtin()
    for name, payload, cf, path in cases():
        assert decode_payload(payload, cf, path, model).error is None, name
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                decode_payload(payload, cf, path, model)
            n += 100
        elapsed = time.perf_counter() - start
        print(f"{name:22s} {len(payload):4d} B  {n / elapsed:9.0f} payloads/s  {elapsed / n * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
