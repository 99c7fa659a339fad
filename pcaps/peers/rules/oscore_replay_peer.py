"""aiocoap 0.4.17 OSCORE peers for pcaps/rules-oscore-replay.pcap (issue #5, rule oscore-replay).

    python oscore_replay_peer.py SERVER_CTX_DIR CLIENT_CTX_DIR PCAP_BEING_WRITTEN

One process on 127.0.0.1: an LwM2M server (aiocoap OSCORE site on UDP 5713, /rd) and an LwM2M
client (UDP 57130). The client registers over OSCORE and reads back nothing else; then its
context is shut down and an "attacker" re-sends the client's protected Register datagram from
the same address and port, with only the (unprotected) outer Message ID changed. The server's OSCORE layer (aiocoap's replay
window) refuses it; the monitor must report the reused Partial IV.
Ports are not 5683/56830 so that concurrent Leshan captures on lo do not mix in.
"""
from __future__ import annotations

import asyncio
import socket
import sys

from aiocoap import CHANGED, CREATED, POST, Context, Message
from aiocoap import resource
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

HOST = "127.0.0.1"
SERVER, CLIENT = (HOST, 5713), (HOST, 57130)
ENDPOINT = "rules-oscore-ep"


class Directory(resource.Resource):
    async def render_post(self, request):
        print("server: register", request.opt.uri_query, flush=True)
        return Message(code=CREATED, location_path=("rd", "o1"))


class Registered(resource.Resource):
    async def render_post(self, request):
        return Message(code=CHANGED)


async def context(site, bind, peer, ctxdir) -> Context:
    creds = CredentialsMap()
    creds.load_from_dict({f"coap://{peer[0]}:{peer[1]}/*": {"oscore": {"basedir": ctxdir}}})
    ctx = await Context.create_server_context(OscoreSiteWrapper(site, creds), bind=bind, server_credentials=creds)
    ctx.client_credentials.update(creds)
    return ctx


async def main(server_dir: str, client_dir: str) -> None:
    site = resource.Site()
    site.add_resource(["rd"], Directory())
    site.add_resource(["rd", "o1"], Registered())
    server = await context(site, SERVER, CLIENT, server_dir)
    client = await context(resource.Site(), CLIENT, SERVER, client_dir)
    req = Message(code=POST, uri=f"coap://{SERVER[0]}:{SERVER[1]}/rd?ep={ENDPOINT}&lt=300&lwm2m=1.1&b=U",
                  payload=b"</1/0>,</3/0>", content_format=40)
    resp = await client.request(req).response
    print("client: register ->", resp.code, flush=True)
    await client.shutdown()
    # The replay: the exact protected datagram, read back from the capture in progress
    # (argv[3], tcpdump -U) as an eavesdropper would record it, re-sent from the client's address.
    await asyncio.sleep(1.0)
    from scapy.all import UDP, rdpcap
    datagram = next(bytes(p[UDP].payload) for p in rdpcap(sys.argv[3])
                    if UDP in p and p[UDP].sport == CLIENT[1] and p[UDP].dport == SERVER[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(CLIENT)
    s.settimeout(3)
    # Only the outer Message ID changes (OSCORE does not protect it), so CoAP deduplication does
    # not swallow the copy and it reaches the server's OSCORE replay check.
    mid = (int.from_bytes(datagram[2:4], "big") + 0x1111) & 0xFFFF
    s.sendto(datagram[:2] + mid.to_bytes(2, "big") + datagram[4:], SERVER)
    try:
        answer, _ = s.recvfrom(2048)
        print("replay answered:", answer[:4].hex(), len(answer), "bytes", flush=True)
    except socket.timeout:
        print("replay: no answer", flush=True)
    s.close()
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
