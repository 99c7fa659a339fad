"""A real LwM2M-like exchange between two aiocoap 0.4.17 endpoints on loopback (NoSec CoAP).

Not a test module by itself: `tests/test_live.py` runs it as a program while the sensor
sniffs. Two independent aiocoap contexts (the LwM2M server on SERVER, the LwM2M client on
CLIENT), each a CoAP server and client on its own UDP socket:

    python tests/test_live_peer.py [--slow]

Sequence: register (POST /rd, link-format) → 2.01 Location /rd/live1; server reads /3/0/0
(2.05 text), writes /1/0/1 (2.04), reads /3/0/9 (4.04: no such resource), executes /3/0/4
(2.04); client updates /rd/live1?lt=600 (2.04) and deregisters (2.02).
With --slow, before deregistering the server executes /3/0/5, which the client answers only
after 60 s (empty ACK now, separate response later): the request is pending when the test
stops the sensor. Prints `DONE` (or `SLOW-SENT`) on stdout when the sequence has run.
"""
from __future__ import annotations

import asyncio
import sys

SERVER = ("127.0.0.1", 45690)
CLIENT = ("127.0.0.1", 45691)
ENDPOINT = "live-ep-01"


async def main(slow: bool) -> None:
    from aiocoap import CHANGED, CONTENT, CREATED, DELETED, GET, POST, PUT, DELETE, Context, Message
    from aiocoap import resource

    class Rd(resource.Resource):
        async def render_post(self, request):
            return Message(code=CREATED, location_path=("rd", "live1"))

    class Registration(resource.Resource):
        async def render_post(self, request):
            return Message(code=CHANGED)

        async def render_delete(self, request):
            return Message(code=DELETED)

    class Text(resource.Resource):
        def __init__(self, text: bytes):
            super().__init__()
            self.text = text

        async def render_get(self, request):
            return Message(code=CONTENT, payload=self.text, content_format=0)

        async def render_put(self, request):
            self.text = request.payload
            return Message(code=CHANGED)

    class Executable(resource.Resource):
        def __init__(self, delay: float):
            super().__init__()
            self.delay = delay

        async def render_post(self, request):
            await asyncio.sleep(self.delay)
            return Message(code=CHANGED)

    server_site = resource.Site()
    server_site.add_resource(["rd"], Rd())
    server_site.add_resource(["rd", "live1"], Registration())
    client_site = resource.Site()
    client_site.add_resource(["3", "0", "0"], Text(b"aiocoap live"))
    client_site.add_resource(["1", "0", "1"], Text(b"300"))
    client_site.add_resource(["3", "0", "4"], Executable(0))
    client_site.add_resource(["3", "0", "5"], Executable(60))
    server = await Context.create_server_context(server_site, bind=SERVER)
    client = await Context.create_server_context(client_site, bind=CLIENT)
    s_uri = f"coap://{SERVER[0]}:{SERVER[1]}"
    c_uri = f"coap://{CLIENT[0]}:{CLIENT[1]}"

    async def ask(ctx, code, uri, payload=b"", content_format=None):
        msg = Message(code=code, uri=uri, payload=payload)
        if content_format is not None:
            msg.opt.content_format = content_format
        resp = await ctx.request(msg).response
        print(f"{code} {uri} -> {resp.code}", flush=True)
        return resp

    await ask(client, POST, f"{s_uri}/rd?ep={ENDPOINT}&lt=300&lwm2m=1.1&b=U",
              b"</1/0>,</3/0>", content_format=40)
    await ask(server, GET, f"{c_uri}/3/0/0")
    await ask(server, PUT, f"{c_uri}/1/0/1", b"600", content_format=0)
    await ask(server, GET, f"{c_uri}/3/0/9")
    await ask(server, POST, f"{c_uri}/3/0/4")
    await ask(client, POST, f"{s_uri}/rd/live1?lt=600")
    if slow:
        pending = server.request(Message(code=POST, uri=f"{c_uri}/3/0/5"))
        await asyncio.sleep(1.0)              # the CON and its empty ACK are on the wire
        print("SLOW-SENT", flush=True)
        await pending.response
        return
    await ask(client, DELETE, f"{s_uri}/rd/live1")
    await asyncio.sleep(0.2)
    print("DONE", flush=True)
    await server.shutdown()
    await client.shutdown()


if __name__ == "__main__":
    asyncio.run(main("--slow" in sys.argv))
