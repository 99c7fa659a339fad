"""An LwM2M client or server made of aiocoap 0.4.17 OSCORE endpoints, for pcaps/oscore-lwm2m.pcap.

Both roles are CoAP servers *and* clients (the LwM2M server sends device-management requests to
the client), and each role uses one aiocoap FilesystemSecurityContext for both directions.

    python lwm2m_peer.py server CTXDIR     # LwM2M server on 127.0.0.1:5693 (/rd, /dp)
    python lwm2m_peer.py client CTXDIR     # LwM2M client on 127.0.0.1:56930

Sequence (all OSCORE): register, read /3/0 (SenML JSON), write /1/0/1, execute /3/0/4,
observe /3303/0/5700 + 3 notifications, send (POST /dp, SenML CBOR), update, deregister.
Ports are not 5683/56830 so that concurrent Leshan captures on lo do not mix in.
"""
from __future__ import annotations

import asyncio
import json
import sys

import cbor2
from aiocoap import CHANGED, CONTENT, CREATED, DELETED, DELETE, GET, POST, PUT, Context, Message
from aiocoap import resource
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

SERVER = ("127.0.0.1", 5693)
CLIENT = ("127.0.0.1", 56930)
ENDPOINT = "oscore-ep-01"
SENML_JSON, SENML_CBOR, LINK_FORMAT, TEXT = 110, 112, 40, 0


def log(role: str, text: str) -> None:
    print(f"[{role}] {text}", flush=True)


async def endpoint(site: resource.Site, bind: tuple[str, int], peer: tuple[str, int], ctxdir: str) -> Context:
    creds = CredentialsMap()
    creds.load_from_dict({f"coap://{peer[0]}:{peer[1]}/*": {"oscore": {"basedir": ctxdir}}})
    ctx = await Context.create_server_context(OscoreSiteWrapper(site, creds), bind=bind,
                                              server_credentials=creds)
    # The same security context object protects both directions (the OSCORE transport holds
    # the Context's own map, so fill that one rather than replacing it).
    ctx.client_credentials.update(creds)
    return ctx


# --- LwM2M server --------------------------------------------------------------------------

class Registration(resource.Resource):
    def __init__(self, done: asyncio.Event):
        super().__init__()
        self.done = done

    async def render_post(self, request):     # update
        log("server", f"update {request.opt.uri_path} {request.opt.uri_query}")
        return Message(code=CHANGED)

    async def render_delete(self, request):   # deregister
        log("server", "deregister")
        self.done.set()
        return Message(code=DELETED)


class Directory(resource.Resource):
    def __init__(self, site: resource.Site, registered: asyncio.Queue, done: asyncio.Event):
        super().__init__()
        self.site, self.registered, self.done = site, registered, done

    async def render_post(self, request):     # register
        query = dict(q.split("=", 1) for q in request.opt.uri_query)
        log("server", f"register {query} {request.payload.decode()}")
        self.site.add_resource(["rd", "5a3f"], Registration(self.done))
        self.registered.put_nowait(query["ep"])
        return Message(code=CREATED, location_path=["rd", "5a3f"])


class DataPush(resource.Resource):
    async def render_post(self, request):     # send
        log("server", f"send {cbor2.loads(request.payload)}")
        return Message(code=CHANGED)


async def run_server(ctxdir: str) -> None:
    site = resource.Site()
    registered: asyncio.Queue = asyncio.Queue()
    done = asyncio.Event()
    site.add_resource(["rd"], Directory(site, registered, done))
    site.add_resource(["dp"], DataPush())
    ctx = await endpoint(site, SERVER, CLIENT, ctxdir)
    log("server", "ready")
    await registered.get()
    base = f"coap://{CLIENT[0]}:{CLIENT[1]}"
    resp = await ctx.request(Message(code=GET, uri=f"{base}/3/0", accept=SENML_JSON)).response
    log("server", f"read /3/0 -> {resp.code} {resp.payload.decode()}")
    resp = await ctx.request(Message(code=PUT, uri=f"{base}/1/0/1", content_format=TEXT, payload=b"600")).response
    log("server", f"write /1/0/1 -> {resp.code}")
    resp = await ctx.request(Message(code=POST, uri=f"{base}/3/0/4")).response
    log("server", f"execute /3/0/4 -> {resp.code}")
    req = ctx.request(Message(code=GET, uri=f"{base}/3303/0/5700", observe=0, accept=TEXT))
    first = await req.response
    log("server", f"observe /3303/0/5700 -> {first.code} {first.payload.decode()}")
    seen = 0
    async for note in req.observation:
        seen += 1
        log("server", f"notify {note.opt.observe} {note.payload.decode()}")
        if seen == 3:
            break
    await asyncio.wait_for(done.wait(), 20)
    await asyncio.sleep(0.3)
    await ctx.shutdown()


# --- LwM2M client --------------------------------------------------------------------------

class Device(resource.Resource):
    async def render_get(self, request):
        records = [{"bn": "/3/0/", "n": "0", "vs": "aiocoap"}, {"n": "1", "vs": "lwm2m-oscore-peer"},
                   {"n": "2", "vs": "OSC-0001"}, {"n": "9", "v": 87}, {"n": "13", "v": 1700000000}]
        return Message(code=CONTENT, content_format=SENML_JSON, payload=json.dumps(records).encode())


class Lifetime(resource.Resource):
    async def render_put(self, request):
        log("client", f"write /1/0/1 = {request.payload.decode()}")
        return Message(code=CHANGED)


class Reboot(resource.Resource):
    async def render_post(self, request):
        log("client", "execute /3/0/4")
        return Message(code=CHANGED)


class Temperature(resource.ObservableResource):
    def __init__(self, finished: asyncio.Event):
        super().__init__()
        self.value, self.sent, self.finished = 21.5, 0, finished

    async def add_observation(self, request, serverobservation):
        await super().add_observation(request, serverobservation)
        asyncio.get_running_loop().create_task(self.notify_loop())

    async def notify_loop(self):
        for _ in range(3):
            await asyncio.sleep(0.3)
            self.value += 0.5
            self.updated_state()
        await asyncio.sleep(0.3)
        self.finished.set()

    async def render_get(self, request):
        return Message(code=CONTENT, content_format=TEXT, payload=f"{self.value}".encode())


async def run_client(ctxdir: str) -> None:
    finished = asyncio.Event()
    site = resource.Site()
    site.add_resource(["3", "0"], Device())
    site.add_resource(["1", "0", "1"], Lifetime())
    site.add_resource(["3", "0", "4"], Reboot())
    site.add_resource(["3303", "0", "5700"], Temperature(finished))
    ctx = await endpoint(site, CLIENT, SERVER, ctxdir)
    base = f"coap://{SERVER[0]}:{SERVER[1]}"
    links = b"</1/0>,</3/0>,</3303/0>"
    resp = await ctx.request(Message(code=POST, uri=f"{base}/rd?ep={ENDPOINT}&lt=300&lwm2m=1.1&b=U",
                                     content_format=LINK_FORMAT, payload=links)).response
    location = "/" + "/".join(resp.opt.location_path)
    log("client", f"register -> {resp.code} {location}")
    await asyncio.wait_for(finished.wait(), 20)
    senml = cbor2.dumps([{-2: "/3303/0/", 0: "5700", 2: 23.0}, {0: "5701", 3: "Cel"}])
    resp = await ctx.request(Message(code=POST, uri=f"{base}/dp", content_format=SENML_CBOR, payload=senml)).response
    log("client", f"send -> {resp.code}")
    resp = await ctx.request(Message(code=POST, uri=f"{base}{location}?lt=300")).response
    log("client", f"update -> {resp.code}")
    resp = await ctx.request(Message(code=DELETE, uri=f"{base}{location}")).response
    log("client", f"deregister -> {resp.code}")
    await asyncio.sleep(0.3)
    await ctx.shutdown()


if __name__ == "__main__":
    role, ctxdir = sys.argv[1], sys.argv[2]
    asyncio.run(run_server(ctxdir) if role == "server" else run_client(ctxdir))
