"""aiocoap 0.4.17 LwM2M 1.2 client for pcaps/aiocoap-lwm2m12.pcap.

    python lwm2m_client.py BOOTSTRAP_PORT CTXDIR

Bootstraps in plain CoAP (Bootstrap-Request, Bootstrap-Pack-Request), learns its OSCORE context
from the server's Bootstrap-Write of /21/0 (decoded with cbor2 and written to CTXDIR as an aiocoap
FilesystemSecurityContext), and after Bootstrap-Finish registers to the LwM2M server over OSCORE,
answers its reads in LwM2M CBOR and deregisters.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys

import cbor2
from aiocoap import CHANGED, CONTENT, DELETE, GET, POST, Context, Message
from aiocoap import resource
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

import provisioning as p

AEAD_NAMES = {10: "AES-CCM-16-64-128"}


def log(text: str) -> None:
    print(f"[client] {text}", flush=True)


class Root(resource.Resource):
    """`/`: Bootstrap-Discover (GET, link format) and Read-Composite (FETCH)."""

    def __init__(self, composite_done: asyncio.Event):
        super().__init__()
        self.composite_done = composite_done

    async def render_get(self, request):
        return Message(code=CONTENT, content_format=p.LINK_FORMAT, payload=p.DISCOVER_LINKS)

    async def render_fetch(self, request):
        asked = [r[p.N] for r in cbor2.loads(request.payload)]
        log(f"read-composite {asked}")
        self.composite_done.set()
        return Message(code=CONTENT, content_format=p.LWM2M_CBOR, payload=p.encode(p.COMPOSITE))


class OscoreInstance(resource.Resource):
    """`/21/0`: the Bootstrap-Write becomes the client's aiocoap security context."""

    def __init__(self, ctxdir: str, written: asyncio.Event):
        super().__init__()
        self.ctxdir, self.written = ctxdir, written

    async def render_put(self, request):
        res, base = {}, ""
        for rec in cbor2.loads(request.payload):
            base = rec.get(p.BN, base)
            rid = int((base + rec[p.N]).rsplit("/", 1)[1])
            res[rid] = rec.get(p.VD, rec.get(p.V))
        with open(os.path.join(self.ctxdir, "secret.json"), "w") as fh:
            json.dump({"secret_hex": res[0].hex(), "salt_hex": res[5].hex()}, fh)
        with open(os.path.join(self.ctxdir, "settings.json"), "w") as fh:
            json.dump({"algorithm": AEAD_NAMES[res[3]], "sender-id_hex": res[1].hex(),
                       "recipient-id_hex": res[2].hex(), "id-context_hex": res[6].hex()}, fh)
        log(f"bootstrap-write /21/0: {sorted(res)} (context stored)")
        self.written.set()
        return Message(code=CHANGED)


class Finish(resource.Resource):
    def __init__(self, finished: asyncio.Event):
        super().__init__()
        self.finished = finished

    async def render_post(self, request):
        log("bootstrap-finish")
        self.finished.set()
        return Message(code=CHANGED)


class Device(resource.Resource):
    async def render_get(self, request):
        log(f"read /3/0 accept={request.opt.accept}")
        return Message(code=CONTENT, content_format=p.LWM2M_CBOR, payload=p.encode(p.DEVICE))


async def main(bootstrap_port: int, ctxdir: str) -> None:
    written, finished, composite_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    site = resource.Site()
    site.add_resource([], Root(composite_done))
    site.add_resource(["21", "0"], OscoreInstance(ctxdir, written))
    site.add_resource(["bs"], Finish(finished))
    site.add_resource(["3", "0"], Device())
    creds = CredentialsMap()          # empty until the bootstrap provisions /21/0
    ctx = await Context.create_server_context(OscoreSiteWrapper(site, creds), bind=(p.HOST, p.CLIENT_PORT),
                                              server_credentials=creds)
    bs = f"coap://{p.HOST}:{bootstrap_port}"
    resp = await ctx.request(Message(code=POST, uri=f"{bs}/bs?ep={p.ENDPOINT}&pct={p.LWM2M_CBOR}")).response
    log(f"bootstrap-request -> {resp.code}")
    resp = await ctx.request(Message(code=GET, uri=f"{bs}/bspack", accept=p.SENML_CBOR)).response
    log(f"bootstrap-pack-request -> {resp.code} cf={resp.opt.content_format} {len(cbor2.loads(resp.payload))} records")
    await asyncio.wait_for(finished.wait(), 30)
    if not written.is_set():
        raise SystemExit("bootstrap finished without an OSCORE context")
    creds.load_from_dict({f"coap://{p.HOST}:{p.SERVER_PORT}/*": {"oscore": {"basedir": ctxdir}}})
    ctx.client_credentials.update(creds)
    srv = f"coap://{p.HOST}:{p.SERVER_PORT}"
    resp = await ctx.request(Message(code=POST, uri=f"{srv}/rd?ep={p.ENDPOINT}&lwm2m=1.2&lt=300&b=U",
                                     content_format=p.LINK_FORMAT, payload=p.REGISTER_LINKS)).response
    location = "/" + "/".join(resp.opt.location_path)
    log(f"register -> {resp.code} {location}")
    await asyncio.wait_for(composite_done.wait(), 30)
    await asyncio.sleep(0.3)
    resp = await ctx.request(Message(code=DELETE, uri=f"{srv}{location}")).response
    log(f"deregister -> {resp.code}")
    await asyncio.sleep(0.3)
    await ctx.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
