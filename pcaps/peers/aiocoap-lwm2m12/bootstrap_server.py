"""aiocoap 0.4.17 LwM2M 1.2 bootstrap server (plain CoAP) for pcaps/aiocoap-lwm2m12.pcap.

    python bootstrap_server.py PORT

Answers Bootstrap-Request (POST /bs?ep=...) and Bootstrap-Pack-Request (GET /bspack, SenML CBOR),
then sends the client Bootstrap-Discover (GET /, link format), Bootstrap-Write of the OSCORE
context (PUT /21/0, SenML CBOR) and Bootstrap-Finish (POST /bs).
"""
from __future__ import annotations

import asyncio
import sys

from aiocoap import CHANGED, CONTENT, GET, POST, PUT, Context, Message
from aiocoap import resource

import provisioning as p


def log(text: str) -> None:
    print(f"[bootstrap] {text}", flush=True)


class BootstrapRequest(resource.Resource):
    def __init__(self, requested: asyncio.Event):
        super().__init__()
        self.requested = requested

    async def render_post(self, request):
        query = dict(q.split("=", 1) for q in request.opt.uri_query)
        log(f"bootstrap-request {query}")
        self.requested.set()
        return Message(code=CHANGED)


class BootstrapPack(resource.Resource):
    def __init__(self, packed: asyncio.Event):
        super().__init__()
        self.packed = packed

    async def render_get(self, request):
        log(f"bootstrap-pack-request accept={request.opt.accept}")
        self.packed.set()
        return Message(code=CONTENT, content_format=p.SENML_CBOR, payload=p.bootstrap_pack())


async def main(port: int) -> None:
    requested, packed = asyncio.Event(), asyncio.Event()
    site = resource.Site()
    site.add_resource(["bs"], BootstrapRequest(requested))
    site.add_resource(["bspack"], BootstrapPack(packed))
    ctx = await Context.create_server_context(site, bind=(p.HOST, port))
    log("ready")
    await asyncio.wait_for(requested.wait(), 30)
    await asyncio.wait_for(packed.wait(), 30)
    await asyncio.sleep(0.2)
    client = f"coap://{p.HOST}:{p.CLIENT_PORT}"
    resp = await ctx.request(Message(code=GET, uri=f"{client}/", accept=p.LINK_FORMAT)).response
    log(f"bootstrap-discover -> {resp.code} {resp.payload.decode()}")
    resp = await ctx.request(Message(code=PUT, uri=f"{client}/21/0", content_format=p.SENML_CBOR,
                                     payload=p.oscore_write())).response
    log(f"bootstrap-write /21/0 -> {resp.code}")
    resp = await ctx.request(Message(code=POST, uri=f"{client}/bs")).response
    log(f"bootstrap-finish -> {resp.code}")
    await asyncio.sleep(0.3)
    await ctx.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
