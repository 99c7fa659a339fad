"""Documents for the output tests: what the project's pipeline (with the built-in rules) makes
of the captures in pcaps/ (each with its keys file) and ../shared/corpus (published PSKs), plus one hand-made alert shaped after
../shared/EVENTS.md "Alerts" with addresses no capture uses (203.0.113.0/24)."""
from __future__ import annotations

import functools
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# PSK identities of the corpus captures whose keys ../shared/corpus/MANIFEST.md publishes.
CORPUS_IDENTITIES = {
    "golioth_basics_psk.pcapng": b"20230614151602-linux@blush-unexpected-fox",
    "golioth_ota_download.pcapng": b"20230614151602-linux@blush-unexpected-fox",
    "dtls12-aes128ccm8.DERIVED-from-dsb.pcap": b"test",
}


@functools.lru_cache(maxsize=1)
def pipeline_documents() -> tuple[dict, ...]:
    """pcaps/*.pcap with their keys files, then the corpus captures with their published PSKs."""
    from captures import CORPUS_PSK, corpus_captures
    from monitor import keys
    from monitor.analyze import collect
    from monitor.pipeline import PipelineConfig

    docs: list[dict] = []
    for capture in sorted(glob.glob(os.path.join(ROOT, "pcaps", "*.pcap"))):
        keys_path = capture[: -len(".pcap")] + ".keys.yaml"
        keystore = keys.load(keys_path) if os.path.exists(keys_path) else keys.KeyStore()
        out, _ = collect([capture], PipelineConfig(keys=keystore, rules=_rules()))
        docs.extend(out)
    for capture in corpus_captures():
        keystore = keys.KeyStore()
        name = os.path.basename(capture)
        if name in CORPUS_IDENTITIES:
            ident = CORPUS_IDENTITIES[name]
            keystore.psks[ident] = keys.Psk(ident, bytes.fromhex(CORPUS_PSK[name]))
        out, _ = collect([capture], PipelineConfig(keys=keystore, rules=_rules()))
        docs.extend(out)
    return tuple(docs)


def _rules():
    try:
        from monitor.rule_engine import RuleEngine
    except ImportError:
        return None
    return RuleEngine.from_paths()


def alert_document() -> dict:
    """An `lwm2m.alert` document with the fields EVENTS.md lists for alerts."""
    return {
        "@timestamp": "2024-05-01T10:00:00.123456Z",
        "event": {"kind": "alert", "dataset": "lwm2m.alert", "action": "endpoint-identity-mismatch",
                  "id": "alert-0001", "severity": 3, "risk_score": 73.0,
                  "category": ["intrusion_detection"], "type": ["info"]},
        "rule": {"name": "endpoint-identity-mismatch", "id": "6f1c2a10-3c57-4d0f-9a51-3f5e0e6f7a01",
                 "description": "DTLS PSK identity differs from the registered endpoint name",
                 "reference": ["https://www.openmobilealliance.org/release/LightweightM2M/"]},
        "message": "Endpoint urn:dev:42 registered from 203.0.113.10:5684 with PSK identity gateway-psk-99",
        "source": {"ip": "203.0.113.10", "port": 5684}, "destination": {"ip": "198.51.100.7", "port": 5684},
        "client": {"ip": "203.0.113.10", "port": 5684}, "server": {"ip": "198.51.100.7", "port": 5684},
        "network": {"transport": "udp", "community_id": "1:xxxxxxxxxxxxxxxxxxxxxxxxxxx="},
        "lwm2m": {"endpoint": "urn:dev:42", "identity": {"value": "gateway-psk-99", "type": "psk",
                                                         "matches_endpoint": False}},
        "related": {"ip": ["203.0.113.10", "198.51.100.7"], "hosts": ["urn:dev:42"],
                    "id": ["0123456789abcdef01234567"]},
        "file": {"path": "pcaps/example.pcap"},
    }


def all_documents() -> list[dict]:
    return list(pipeline_documents()) + [alert_document()]
