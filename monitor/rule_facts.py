"""Fact fields the rules test but Sigma cannot compute (comparisons, tables, configuration).

`enrich(doc, settings)` runs on every document before matching and adds plain fields, the
way Zeek's base scripts derive `sni_matches_cert` for policy scripts. The facts stay in the
output document, so the Lucene export of a rule finds in Elasticsearch what the pipeline
alerted on. Facts added here (declared in monitor/fields.yml):

- `dtls.cipher.offered_sha1`: the ClientHello offered a suite with a SHA-1 record MAC;
- `dtls.cipher.weak`, `dtls.cipher.weaknesses`: NULL/anon/export/RC4/DES/3DES/MD5 suite,
  CBC without encrypt-then-MAC, or DTLS 1.0 negotiated;
- `dtls.key.weak`, `dtls.key.weaknesses`: a peer certificate or raw public key below 256-bit
  ECC / 2048-bit RSA/DSA, a certificate signed with SHA-1/MD5, or outside its validity at
  packet time;
- `lwm2m.endpoint_allowed`: the endpoint is in the configured allowlist (only with a list);
- `lwm2m.identity.matches_endpoint`: recomputed when the configuration maps the identity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from parsers.tls_suites import SUITES

_BY_NAME = {s.name: s for s in SUITES.values()}
_WEAK_CIPHERS = {"NULL": "null", "RC4": "rc4", "DES": "des", "DES40": "des", "3DES": "3des",
                 "RC2": "rc2", "IDEA": "idea"}
_WEAK_SIG_HASHES = ("sha1", "md5", "md2")
MIN_EC_BITS = 256
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class FactSettings:
    """The parts of the rule configuration facts depend on."""

    endpoint_allowlist: frozenset[str] | None = None     # None: no list, fact not computed
    identity_map: dict[str, str] = field(default_factory=dict)   # identity value -> endpoint

    @property
    def touches_lwm2m(self) -> bool:
        """Whether `lwm2m_facts` can add anything (an allowlist or an identity map is set)."""
        return self.endpoint_allowlist is not None or bool(self.identity_map)


def suite_weaknesses(name: str, version: str | None, encrypt_then_mac: bool | None) -> list[str]:
    s = _BY_NAME.get(name)
    out: list[str] = []
    if s is not None and s.kx not in ("scsv", "tls13"):
        if s.mode == "NULL" or s.cipher == "NULL":
            out.append("null-cipher")
        if s.auth in ("anon", "null") and s.mode != "NULL":
            out.append("anonymous")
        if s.export:
            out.append("export")
        base = s.cipher.split("_")[0]
        if base in _WEAK_CIPHERS and base != "NULL":
            out.append(_WEAK_CIPHERS[base])
        if s.mac == "md5":
            out.append("md5-mac")
        if s.mode in ("CBC", "3DES") and encrypt_then_mac is False:
            out.append("cbc-mac-then-encrypt")
    if version == "1.0":
        out.append("dtls-1.0")
    return out


def _key_weaknesses(who: str, facts: dict, now_iso: str | None) -> list[str]:
    out: list[str] = []
    alg, size = facts.get("public_key_algorithm"), facts.get("public_key_size")
    if isinstance(size, int):
        if alg == "EC" and size < MIN_EC_BITS:
            out.append(f"{who}-ec-{size}")
        elif alg in ("RSA", "DSA") and size < MIN_RSA_BITS:
            out.append(f"{who}-{alg.lower()}-{size}")
    sig = str(facts.get("signature_algorithm") or "").lower()
    if sig and any(h in sig for h in _WEAK_SIG_HASHES):
        out.append(f"{who}-signed-{sig}")
    if now_iso:
        now = now_iso[:19]            # both sides ISO 8601 UTC: string order is time order
        nb, na = facts.get("not_before"), facts.get("not_after")
        if isinstance(na, str) and now > na[:19]:
            out.append(f"{who}-expired")
        if isinstance(nb, str) and now < nb[:19]:
            out.append(f"{who}-not-yet-valid")
    return out


def handshake_facts(doc: dict) -> None:
    """The `dtls.cipher.*`/`dtls.key.*` facts of a `dtls.handshake` document."""
    tls = doc.get("tls") or {}
    dtls = doc.get("dtls")
    if not isinstance(dtls, dict):
        return
    cipher = dtls.get("cipher")
    if not isinstance(cipher, dict):
        cipher = {}
    offered = (dtls.get("client") or {}).get("cipher_suites") or (tls.get("client") or {}).get("supported_ciphers") or ()
    if offered:
        cipher["offered_sha1"] = any(
            (s := _BY_NAME.get(n)) is not None and s.is_sha1_mac for n in offered)
    name = tls.get("cipher")
    if name or tls.get("version") == "1.0":
        weak = suite_weaknesses(name or "", tls.get("version"), dtls.get("encrypt_then_mac"))
        cipher["weak"] = bool(weak)
        if weak:
            cipher["weaknesses"] = weak
    if cipher and "cipher" not in dtls:
        dtls["cipher"] = cipher
    now = doc.get("@timestamp")
    keyw: list[str] = []
    keys_seen = False
    for who, holder in (("server", tls.get("server")), ("client", tls.get("client"))):
        if isinstance(holder, dict) and isinstance(holder.get("x509"), dict):
            keys_seen = True
            keyw += _key_weaknesses(f"{who}-cert", holder["x509"], now)
    for who, holder in (("server", dtls.get("server")), ("client", dtls.get("client"))):
        if isinstance(holder, dict) and isinstance(holder.get("rpk"), dict):
            keys_seen = True
            keyw += _key_weaknesses(f"{who}-rpk", holder["rpk"], None)
    if keys_seen:
        dtls["key"] = {"weak": bool(keyw), **({"weaknesses": keyw} if keyw else {})}


def lwm2m_facts(doc: dict, settings: FactSettings) -> None:
    """The `lwm2m.*` facts; nothing to do unless `settings.touches_lwm2m`."""
    lw = doc.get("lwm2m")
    if not isinstance(lw, dict):
        return
    ep = lw.get("endpoint")
    if ep is not None and settings.endpoint_allowlist is not None:
        lw["endpoint_allowed"] = ep in settings.endpoint_allowlist
    ident = lw.get("identity")
    if ep is not None and settings.identity_map and isinstance(ident, dict):
        mapped = settings.identity_map.get(str(ident.get("value")))
        if mapped is not None:
            ident["matches_endpoint"] = mapped == ep


def enrich(doc: dict, settings: FactSettings) -> None:
    """Adds the fact fields to `doc` in place (idempotent)."""
    dataset = doc.get("event", {}).get("dataset")
    if dataset == "dtls.handshake":
        handshake_facts(doc)
    if "lwm2m" in doc:
        lwm2m_facts(doc, settings)
