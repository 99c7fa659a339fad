"""aiocoap 0.4.17 LwM2M 1.2 server over OSCORE for pcaps/aiocoap-lwm2m12.pcap.

    python lwm2m_server.py CTXDIR

CTXDIR is an aiocoap FilesystemSecurityContext holding the server side of the context that the
bootstrap server provisions in the client's /21/0. Sequence: Register (POST /rd) -> 2.01; Read
/3/0 with Accept LwM2M CBOR; Read-Composite (FETCH /, SenML CBOR paths, Accept LwM2M CBOR);
Deregister (DELETE /rd/c12a) -> 2.02.
"""
from __future__ import annotations

import asyncio
import sys

import cbor2
from aiocoap import CREATED, DELETED, FETCH, GET, Context, Message
from aiocoap import resource
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

import provisioning as p


def log(text: str) -> None:
    print(f"[server] {text}", flush=True)


class Registration(resource.Resource):
    def __init__(self, done: asyncio.Event):
        super().__init__()
        self.done = done

    async def render_delete(self, request):
        log("deregister")
        self.done.set()
        return Message(code=DELETED)


class Directory(resource.Resource):
    def __init__(self, site: resource.Site, registered: asyncio.Event, done: asyncio.Event):
        super().__init__()
        self.site, self.registered, self.done = site, registered, done

    async def render_post(self, request):
        query = dict(q.split("=", 1) for q in request.opt.uri_query)
        log(f"register {query} {request.payload.decode()} (oscore: {request.remote.authenticated_claims})")
        self.site.add_resource(list(p.LOCATION), Registration(self.done))
        self.registered.set()
        return Message(code=CREATED, location_path=list(p.LOCATION))


async def main(ctxdir: str) -> None:
    registered, done = asyncio.Event(), asyncio.Event()
    site = resource.Site()
    site.add_resource(["rd"], Directory(site, registered, done))
    creds = CredentialsMap()
    creds.load_from_dict({f"coap://{p.HOST}:{p.CLIENT_PORT}/*": {"oscore": {"basedir": ctxdir}}})
    ctx = await Context.create_server_context(OscoreSiteWrapper(site, creds), bind=(p.HOST, p.SERVER_PORT),
                                              server_credentials=creds)
    ctx.client_credentials.update(creds)
    log("ready")
    await asyncio.wait_for(registered.wait(), 60)
    await asyncio.sleep(0.2)
    client = f"coap://{p.HOST}:{p.CLIENT_PORT}"
    resp = await ctx.request(Message(code=GET, uri=f"{client}/3/0", accept=p.LWM2M_CBOR)).response
    log(f"read /3/0 -> {resp.code} cf={resp.opt.content_format} {cbor2.loads(resp.payload)}")
    resp = await ctx.request(Message(code=FETCH, uri=f"{client}/", content_format=p.SENML_CBOR,
                                     accept=p.LWM2M_CBOR, payload=p.encode(p.COMPOSITE_REQUEST))).response
    log(f"read-composite -> {resp.code} cf={resp.opt.content_format} {cbor2.loads(resp.payload)}")
    await asyncio.wait_for(done.wait(), 30)
    await asyncio.sleep(0.3)
    await ctx.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
