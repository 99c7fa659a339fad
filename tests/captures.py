"""The captures the tests run over, with the keys each needs (shared by several test modules)."""
from __future__ import annotations

import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")

# Keys of the corpus captures, from ../shared/corpus/MANIFEST.md (published with them).
CORPUS_PSK = {
    "golioth_basics_psk.pcapng": "3639616631363835626139303830626539303739323237323863316539376335",
    "golioth_ota_download.pcapng": "3234363835646335663162323237366138663433303038653230633062653932",
    "dtls12-aes128ccm8.DERIVED-from-dsb.pcap": "ca19e028a8a372ad2d325f950fcaceed",
    "dtls12-aes128ccm8-dsb.pcapng": "ca19e028a8a372ad2d325f950fcaceed",
}


def project_captures() -> list[str]:
    return sorted(glob.glob(os.path.join(PCAPS, "*.pcap")) + glob.glob(os.path.join(PCAPS, "*.pcapng")))


def corpus_captures() -> list[str]:
    out = []
    for pattern in ("*/*.pcap", "*/*.pcapng", "*/*.pcapng.gz"):
        out += glob.glob(os.path.join(CORPUS, pattern))
    return sorted(out)


def keys_file(capture: str) -> str | None:
    base = capture
    for ext in (".gz", ".pcapng", ".pcap"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    path = base + ".keys.yaml"
    return path if os.path.exists(path) else None


def psk_hex(capture: str) -> str | None:
    """The one PSK tshark is given for a capture (tshark takes a single dtls.psk)."""
    name = os.path.basename(capture)
    if name in CORPUS_PSK:
        return CORPUS_PSK[name]
    path = keys_file(capture)
    if path is None:
        return None
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    for entry in data.get("psk") or []:
        if "key" in entry:
            return str(entry["key"])
        if "key_text" in entry:
            return str(entry["key_text"]).encode().hex()
    return None


def keylog_file(capture: str) -> str | None:
    path = keys_file(capture)
    if path is None:
        return None
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if data.get("keylog"):
        return os.path.join(os.path.dirname(path), data["keylog"])
    return None
