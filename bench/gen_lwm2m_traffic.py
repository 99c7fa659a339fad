"""Generate a large capture of LwM2M traffic among many clients, for the benchmarks.

CoAP messages are encoded by aiocoap (an independent encoder); frames are Ethernet/IPv4/UDP
written straight into a pcap. Each client registers, then the server reads, writes,
executes and observes; the client sends notifications and updates. Deterministic (seeded).

    python bench/gen_lwm2m_traffic.py OUT.pcap [--packets 1000000] [--clients 10000]
"""
from __future__ import annotations

import argparse
import random
import struct

from aiocoap import message as M, numbers as N

SERVER = (bytes([10, 0, 0, 1]), 5683)
ETH = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
CON, ACK, NON = N.CON, N.ACK, N.NON


def ip_udp(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, dst)
    return ETH + ip + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload


def msg(mtype, code, mid, token, path=(), query=(), payload=b"", ct=None, observe=None, accept=None, location=()):
    m = M.Message(mtype=mtype, code=code, mid=mid, token=token, payload=payload)
    if path:
        m.opt.uri_path = path
    if query:
        m.opt.uri_query = query
    if ct is not None:
        m.opt.content_format = ct
    if observe is not None:
        m.opt.observe = observe
    if accept is not None:
        m.opt.accept = accept
    if location:
        m.opt.location_path = location
    return m.encode()


def tlv_int(rid: int, value: int) -> bytes:
    return bytes([0xC1, rid, value & 0xFF])


def operation(c: dict, rnd: random.Random, tok: bytes, exchange, notify) -> None:
    """One operation of a registered client, drawn from the benchmark mix: update 8 %, read
    (TLV) 22 %, write 10 %, execute 5 %, observe 10 % (and whenever none is active), notify
    otherwise. `exchange(c, from_client, request, response)` and `notify(c, coap)` send."""
    r = rnd.random()
    if r < 0.08:
        exchange(c, True, msg(CON, N.POST, c["mid"], tok, ("rd", c["loc"])), msg(ACK, N.CHANGED, c["mid"], tok))
    elif r < 0.30:
        body = tlv_int(9, rnd.randrange(100)) + bytes([0xC8, 0, 6]) + b"bench!"
        exchange(c, False, msg(CON, N.GET, c["smid"], tok, ("3", "0"), accept=11542),
                 msg(ACK, N.CONTENT, c["smid"], tok, payload=body, ct=11542))
    elif r < 0.40:
        exchange(c, False, msg(CON, N.PUT, c["smid"], tok, ("1", "0", "1"), payload=b"3600", ct=0),
                 msg(ACK, N.CHANGED, c["smid"], tok))
    elif r < 0.45:
        exchange(c, False, msg(CON, N.POST, c["smid"], tok, ("3", "0", "4")), msg(ACK, N.CHANGED, c["smid"], tok))
    elif r < 0.55 or c["obs"] is None:
        c["obs"] = tok
        exchange(c, False, msg(CON, N.GET, c["smid"], tok, ("3303", "0", "5700"), observe=0, accept=0),
                 msg(ACK, N.CONTENT, c["smid"], tok, payload=b"21.5", ct=0, observe=c["seq"]))
    else:
        c["seq"] += 1
        notify(c, msg(NON, N.CONTENT, c["mid"], c["obs"], payload=f"{20 + rnd.random() * 5:.1f}".encode(),
                      ct=0, observe=c["seq"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=10_000)
    args = ap.parse_args()
    rnd = random.Random(7)
    clients = []
    for i in range(args.clients):
        ip = bytes([10, 1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF])
        clients.append({"ip": ip, "port": 40000 + i % 20000, "ep": f"bench-ep-{i:05d}", "mid": rnd.randrange(65536),
                        "smid": rnd.randrange(65536), "registered": False, "loc": f"{i:05x}", "obs": None, "seq": 2})
    ts = 1_700_000_000.0
    n = 0
    with open(args.out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(frame: bytes) -> None:
            nonlocal ts, n
            ts += 0.0001
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)) + frame)
            n += 1

        def exchange(c, from_client: bool, req: bytes, resp: bytes) -> None:
            cli, srv = (c["ip"], c["port"]), SERVER
            a, b = (cli, srv) if from_client else (srv, cli)
            put(ip_udp(a[0], a[1], b[0], b[1], req))
            put(ip_udp(b[0], b[1], a[0], a[1], resp))

        while n < args.packets:
            c = clients[rnd.randrange(len(clients))]
            c["mid"] = (c["mid"] + 1) & 0xFFFF
            c["smid"] = (c["smid"] + 1) & 0xFFFF
            tok = rnd.randbytes(4)
            if not c["registered"]:
                links = b"</1/0>,</3/0>,</3303/0>,</5/0>"
                exchange(c, True, msg(CON, N.POST, c["mid"], tok, ("rd",), (f"ep={c['ep']}", "lt=86400", "lwm2m=1.1", "b=U"), links, ct=40),
                         msg(ACK, N.CREATED, c["mid"], tok, location=("rd", c["loc"])))
                c["registered"] = True
                continue
            operation(c, rnd, tok, exchange,
                      lambda c, coap: put(ip_udp(c["ip"], c["port"], SERVER[0], SERVER[1], coap)))
    print(f"{n} packets, {len(clients)} clients -> {args.out}")


if __name__ == "__main__":
    main()
