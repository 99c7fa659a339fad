"""Known keys where no key belongs: the last line of secret redaction.

Values of the Security and OSCORE objects' key resources are redacted by path
(`objects.is_secret`). A key the run knows can still cross the wire elsewhere: written to a
resource that is not a key resource (a provisioning tool's mistake, an attacker's probe, a
mangled path), inside a longer opaque value, or as the hex or base64 text of a string. The
screen holds every secret of the key store (PSKs configured or harvested, OSCORE master
secrets and salts, key-log master secrets) and tells whether a value's bytes or text contain
one, so that the value is redacted like a key resource's.

Secrets shorter than `MIN_CONTAINED` bytes are matched only as a whole value: inside longer
values they would match ordinary data by chance.
"""
from __future__ import annotations

import base64

from .keys import KeyStore

MIN_CONTAINED = 8


class SecretScreen:
    """`hits(value_bytes, text)`: whether a known secret is in either. Follows the key store:
    keys harvested or loaded during the run are screened from the next value on."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._seen: KeyStore | None = None                # the store, and its sizes, at the last build
        self._sizes = (0, 0, 0)
        self._whole: frozenset[bytes] = frozenset()       # every secret, matched as a whole value
        self._raw: dict[int, frozenset[bytes]] = {}       # length -> secrets searched inside values
        self._text: dict[int, frozenset[str]] = {}        # length -> hex / HEX / base64 forms
        self.empty = True
        self.shortest = 0                                 # bytes of the shortest secret
        self.generation = 0                               # +1 at every rebuild: for callers' caches

    def stale(self) -> bool:
        """True when the key store changed since the screen was built (then rebuilt). Only the
        first caller after a change sees True: a cache of screened results compares
        `generation` instead."""
        k = self.keys
        sizes = self._sizes              # (asked once per operation: no tuple built to compare)
        if k is self._seen and len(k.psks) == sizes[0] and len(k.oscore) == sizes[1] and len(k.keylog) == sizes[2]:
            return False
        self._seen = k
        self._sizes = (len(k.psks), len(k.oscore), len(k.keylog))
        self._build()
        return True

    def active(self) -> bool:
        """Whether there is anything to screen for, the key store's latest additions included."""
        self.stale()
        return not self.empty

    def _build(self) -> None:
        k = self.keys
        secrets = {p.key for p in k.psks.values()}
        for c in k.oscore:
            secrets.update((c.master_secret, c.master_salt))
        secrets.update(k.keylog.values())
        secrets.discard(b"")
        raw: dict[int, set[bytes]] = {}
        text: dict[int, set[str]] = {}
        for s in secrets:
            if len(s) < MIN_CONTAINED:
                continue
            raw.setdefault(len(s), set()).add(s)
            h = s.hex()
            text.setdefault(len(h), set()).update((h, h.upper()))
            b64 = base64.b64encode(s).decode().rstrip("=")
            text.setdefault(len(b64), set()).add(b64)
        self._whole = frozenset(secrets)
        self._raw = {n: frozenset(v) for n, v in raw.items()}
        self._text = {n: frozenset(v) for n, v in text.items()}
        self.empty = not secrets
        self.shortest = min(map(len, secrets), default=0)
        self.generation += 1

    def hits(self, data: bytes | None, text: str | None = None) -> bool:
        if self.empty:
            return False
        # shorter than every secret: no match as a whole or inside, and its text (at most as
        # many characters as it has bytes) is shorter than any hex or base64 form
        if data is not None and len(data) < self.shortest and (text is None or len(text) <= len(data)):
            return False
        if data is not None and (data in self._whole or _contains(data, self._raw)):
            return True
        return text is not None and _contains(text, self._text)

    def hits_value(self, raw: bytes | None, value: object) -> bool:
        """`hits` for a decoded value: its bytes, and for text its hex/base64 forms too."""
        text = value if isinstance(value, str) else None
        if raw is None:
            if text is None:
                return False
            raw = text.encode("utf-8", "surrogateescape")
        elif text is not None and text == raw.hex():     # opaque shown as hex: its bytes say it all
            text = None
        return self.hits(raw, text)


def _contains(value, needles: dict) -> bool:
    """Whether any needle (grouped by length) is a substring of `value`: one set lookup per
    position and length, however many secrets there are."""
    size = len(value)
    for n, group in needles.items():
        for i in range(size - n + 1):
            if value[i:i + n] in group:
                return True
    return False
