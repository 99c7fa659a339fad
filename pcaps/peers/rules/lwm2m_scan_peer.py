"""aiocoap 0.4.17 LwM2M server and two clients for pcaps/rules-lwm2m-scan.pcap (issue #5 rules).

One process, three aiocoap contexts on 127.0.0.1, plain CoAP (NoSec):
  server   5703  (/rd: Register answers 2.01 rd/<n>)
  client A 57030 registers ep=rules-ep-01; the server then reads 12 objects the client does not
           have (/4/0, /6/0, ...: aiocoap answers 4.04 Not Found itself) and one it has (/3/0/0)
  client B 57031 registers the same ep=rules-ep-01 while A's registration is live (a clone)
  client A deregisters.
Ports are not 5683/56830 so that concurrent Leshan captures on lo do not mix in.
"""
from __future__ import annotations

import asyncio

from aiocoap import CONTENT, CREATED, DELETED, DELETE, GET, POST, Context, Message
from aiocoap import resource

HOST = "127.0.0.1"
SERVER_PORT, CLIENT_A_PORT, CLIENT_B_PORT = 5703, 57030, 57031
ENDPOINT = "rules-ep-01"
MISSING = ["/4/0", "/6/0", "/7/0", "/9/0", "/10/0", "/11/0", "/12/0", "/13/0", "/14/0", "/15/0",
           "/16/0", "/18/0"]


class Directory(resource.Resource):
    def __init__(self):
        super().__init__()
        self.n = 0

    async def render_post(self, request):
        self.n += 1
        return Message(code=CREATED, location_path=("rd", f"r{self.n}"))


class Registered(resource.Resource):
    async def render_delete(self, request):
        return Message(code=DELETED)

    async def render_post(self, request):
        return Message(code=CONTENT)


class Text(resource.Resource):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    async def render_get(self, request):
        return Message(code=CONTENT, payload=self.text.encode(), content_format=0)


def register_msg(port: int) -> Message:
    return Message(code=POST, uri=f"coap://{HOST}:{SERVER_PORT}/rd?ep={ENDPOINT}&lt=300&lwm2m=1.1&b=U",
                   payload=b"</1/0>,</3/0>", content_format=40)


async def main() -> None:
    site = resource.Site()
    site.add_resource(["rd"], Directory())
    site.add_resource(["rd", "r1"], Registered())
    site.add_resource(["rd", "r2"], Registered())
    server = await Context.create_server_context(site, bind=(HOST, SERVER_PORT))
    dev = resource.Site()
    dev.add_resource(["3", "0", "0"], Text("aiocoap-rules"))
    client_a = await Context.create_server_context(dev, bind=(HOST, CLIENT_A_PORT))
    client_b = await Context.create_server_context(resource.Site(), bind=(HOST, CLIENT_B_PORT))
    r = await client_a.request(register_msg(CLIENT_A_PORT)).response
    print("A register", r.code, r.opt.location_path, flush=True)
    for path in MISSING + ["/3/0/0"]:
        r = await server.request(Message(code=GET, uri=f"coap://{HOST}:{CLIENT_A_PORT}{path}")).response
        print("read", path, r.code, flush=True)
    r = await client_b.request(register_msg(CLIENT_B_PORT)).response
    print("B register", r.code, r.opt.location_path, flush=True)
    r = await client_a.request(Message(code=DELETE, uri=f"coap://{HOST}:{SERVER_PORT}/rd/r1")).response
    print("A deregister", r.code, flush=True)
    for ctx in (client_a, client_b, server):
        await ctx.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
