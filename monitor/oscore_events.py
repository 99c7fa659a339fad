"""`oscore.context` documents (../shared/EVENTS.md): the facts the OSCORE tracker observes.

Actions:
- `context-seen`: first message of a (flow, sender, kid, ID Context) that verified;
- `context-rederived`: a new ID Context verified on a flow that used another (RFC 8613 B.2);
- `decryption-failed`: first message of a (flow, kid, error) that could not be decrypted;
- `replay`: a verified message reused a Partial IV of the same context and sender;
- `context-summary`: at close or eviction, the counts of one (flow, sender, kid, ID Context)
  (outcome success), or of one (flow, kid, error) that never decrypted (outcome failure).
Secrets never appear: the context is named by the first 8 hex digits of SHA-256 of its master
secret (`oscore.context.fingerprint`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import ecs
from .datagram import Datagram

DATASET = "oscore.context"


@dataclass
class Facts:
    """What a document says about one OSCORE message or flow; hex strings, ints, plain types."""

    kid: bytes | None = None
    kid_context: bytes | None = None
    id_context: bytes | None = None
    piv: int | None = None
    sender: str | None = None              # "client" / "server": which LwM2M role sent it
    aead: str | None = None
    fingerprint: str | None = None         # of the master secret
    source: str | None = None              # "keys-file" / "harvested"
    client_id: bytes | None = None         # the LwM2M client's Sender ID: its OSCORE identity
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def oscore_fields(self) -> dict:
        out: dict = {}
        if self.kid is not None:
            out["kid"] = self.kid.hex()
        if self.kid_context is not None:
            out["kid_context"] = self.kid_context.hex()
        if self.id_context is not None:
            out["id_context"] = self.id_context.hex()
        if self.piv is not None:
            out["piv"] = self.piv
        if self.sender is not None:
            out["sender"] = self.sender
        if self.aead is not None:
            out["aead"] = self.aead
        if self.fingerprint is not None:
            out["context"] = {"fingerprint": self.fingerprint, "source": self.source}
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out


def document(dgram: Datagram, *, action: str, outcome: str, facts: Facts,
             client: ecs.Address | None, server: ecs.Address | None, seq: int = 0,
             ts_ns: int | None = None) -> dict:
    """One `oscore.context` document about `dgram` (the packet that completed the fact)."""
    ts = dgram.ts_ns if ts_ns is None else ts_ns
    eid = ecs.event_id(DATASET, action, dgram.source, dgram.frame, seq,
                       facts.kid.hex() if facts.kid is not None else "-",
                       facts.id_context.hex() if facts.id_context is not None else "-")
    doc = ecs.base_document(dataset=DATASET, action=action, ts_ns=ts, src=dgram.src, dst=dgram.dst,
                            client=client, server=server, observer=dgram.source, live=dgram.live,
                            eid=eid, outcome=outcome)
    doc["oscore"] = facts.oscore_fields()
    if facts.client_id is not None:
        doc["lwm2m"] = {"identity": {"value": facts.client_id.hex(), "type": "oscore"},
                        "security": "oscore"}
    return doc
