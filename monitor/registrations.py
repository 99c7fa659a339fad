"""The registration registry: who each LwM2M client is, so every operation carries its name.

Keyed by client address and by location path; a registration expires by its lifetime (in
packet time) and follows the client when an update arrives from a new address (NAT rebinding).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

Address = tuple     # (ip text, port); a plain `tuple`: see datagram.Address

DEFAULT_LIFETIME = 86400          # LwM2M TS: lt defaults to 86400 s
EXPIRY_GRACE_NS = 60 * 1_000_000_000


@dataclass(slots=True)
class Registration:
    endpoint: str
    client: Address
    server: Address
    location: str | None = None
    lifetime: int = DEFAULT_LIFETIME
    binding: str | None = None
    version: str | None = None
    objects: list[str] = field(default_factory=list)
    alternate: tuple[str, ...] = ()
    registered_ns: int = 0
    updated_ns: int = 0
    sms: str | None = None
    queue_mode: bool = False

    def expires_ns(self) -> int:
        return self.updated_ns + self.lifetime * 1_000_000_000 + EXPIRY_GRACE_NS


@dataclass
class RegistryStats:
    registered: int = 0
    updated: int = 0
    deregistered: int = 0
    expired: int = 0
    rebinding: int = 0
    evicted: int = 0


class Registry:
    def __init__(self, max_registrations: int = 200_000):
        self.by_client: OrderedDict[Address, Registration] = OrderedDict()
        self.by_location: dict[tuple[Address, str], Registration] = {}
        self.bootstrap: OrderedDict[Address, tuple[str, Address]] = OrderedDict()  # client -> (ep, bs server)
        self.by_endpoint: dict[str, set[Address]] = {}
        self.stats = RegistryStats()
        self.max = max_registrations

    def lookup(self, client: Address, now_ns: int) -> Registration | None:
        reg = self.by_client.get(client)
        if reg is not None and now_ns > reg.expires_ns():
            self._remove(reg)
            self.stats.expired += 1
            return None
        return reg

    def sweep(self, now_ns: int, budget: int = 2048) -> int:
        """Drop expired registrations, oldest-updated first (by_client is kept in update order)."""
        dropped = 0
        for reg in list(itertools.islice(self.by_client.values(), budget)):
            if now_ns <= reg.expires_ns():
                break
            self._remove(reg)
            self.stats.expired += 1
            dropped += 1
        return dropped

    def bootstrap_endpoint(self, client: Address) -> str | None:
        entry = self.bootstrap.get(client)
        return entry[0] if entry else None

    def is_bootstrap_server(self, client: Address, server: Address) -> bool:
        entry = self.bootstrap.get(client)
        return entry is not None and entry[1] == server

    def note_bootstrap(self, endpoint: str, client: Address, server: Address) -> None:
        self.bootstrap[client] = (endpoint, server)
        self.bootstrap.move_to_end(client)
        if len(self.bootstrap) > self.max:
            self.bootstrap.popitem(last=False)

    def end_bootstrap(self, client: Address) -> None:
        """After bootstrap-finish the client talks LwM2M server, possibly from the same port."""
        self.bootstrap.pop(client, None)

    def others_live(self, endpoint: str, client: Address, now_ns: int) -> Registration | None:
        """Another unexpired registration of the same endpoint from a different address."""
        for addr in self.by_endpoint.get(endpoint, ()):
            reg = self.by_client.get(addr)
            if reg is not None and addr != client and now_ns <= reg.expires_ns():
                return reg
        return None

    def register(self, reg: Registration) -> None:
        old = self.by_client.pop(reg.client, None)
        if old is not None:
            self._remove(old)
        self.by_client[reg.client] = reg
        self.by_endpoint.setdefault(reg.endpoint, set()).add(reg.client)
        if reg.location:
            self.by_location[(reg.server, reg.location)] = reg
        self.stats.registered += 1
        if len(self.by_client) > self.max:
            evicted = next(iter(self.by_client.values()))   # least recently registered/updated
            self._remove(evicted)                             # drops its location and endpoint index too
            self.stats.evicted += 1

    def find_location(self, server: Address, location: str) -> Registration | None:
        return self.by_location.get((server, location))

    def update(self, reg: Registration, client: Address, now_ns: int) -> None:
        if reg.client != client:                  # NAT rebinding seen through update
            self.by_client.pop(reg.client, None)
            addrs = self.by_endpoint.setdefault(reg.endpoint, set())
            addrs.discard(reg.client)
            addrs.add(client)
            reg.client = client
            self.by_client[client] = reg
            self.stats.rebinding += 1
        reg.updated_ns = now_ns
        self.by_client.move_to_end(client)
        self.stats.updated += 1

    def deregister(self, reg: Registration) -> None:
        self._remove(reg)
        self.stats.deregistered += 1

    def _remove(self, reg: Registration) -> None:
        if self.by_client.get(reg.client) is reg:
            del self.by_client[reg.client]
            addrs = self.by_endpoint.get(reg.endpoint)
            if addrs is not None:
                addrs.discard(reg.client)
                if not addrs:
                    del self.by_endpoint[reg.endpoint]
        if reg.location and self.by_location.get((reg.server, reg.location)) is reg:
            del self.by_location[(reg.server, reg.location)]
