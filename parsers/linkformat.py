"""CoRE Link Format reader (RFC 6690, Content-Format 40): `</1/0>,</3/0>;ver=1.1`.

`parse(data)` returns the links in order or raises `Truncated` (input ends inside a link or a
quoted string) or `Malformed`. Attribute values keep their text with quotes removed; an
attribute without "=" has value None. Used for LwM2M register/update payloads, Discover
responses and the `rt="oma.lwm2m"` alternate root path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Malformed, Truncated

_PARMNAME = re.compile(r"[!#$&+\-.^_`|~0-9A-Za-z*]+")   # RFC 5987 parmname, plus "*" for ext
_PTOKEN = re.compile(r"[!#$%&'()*+\-./:<=>?@\[\]^_`{|}~0-9A-Za-z]+")
_LWM2M_PATH = re.compile(r"(/[0-9]{1,5}){1,4}")


@dataclass(frozen=True, slots=True)
class Link:
    target: str
    attributes: tuple[tuple[str, str | None], ...] = ()

    def attr(self, name: str) -> str | None:
        for k, v in self.attributes:
            if k == name:
                return v
        return None

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.attributes)


def parse(data: bytes | str) -> list[Link]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("link-format: not UTF-8") from None
    else:
        text = data
    links: list[Link] = []
    i, n = 0, len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i == n:
        return links
    while True:
        if text[i] != "<":
            raise Malformed(f"link-format: expected '<' at {i}")
        end = text.find(">", i + 1)
        if end < 0:
            raise Truncated("link-format: '<' without '>'")
        target = text[i + 1:end]
        i = end + 1
        attrs: list[tuple[str, str | None]] = []
        while i < n and text[i] == ";":
            i += 1
            m = _PARMNAME.match(text, i)
            if m is None:
                if i >= n:
                    raise Truncated("link-format: ';' at end of input")
                raise Malformed(f"link-format: bad attribute name at {i}")
            name, i = m.group(), m.end()
            value = None
            if i < n and text[i] == "=":
                value, i = _attr_value(text, i + 1)
            attrs.append((name, value))
        links.append(Link(target, tuple(attrs)))
        if i == n:
            return links
        if text[i] != ",":
            raise Malformed(f"link-format: expected ',' or ';' at {i}")
        i += 1
        while i < n and text[i] in " \t\r\n":   # tolerated: some clients add line breaks
            i += 1
        if i == n:
            raise Truncated("link-format: ',' at end of input")


def _attr_value(text: str, i: int) -> tuple[str, int]:
    n = len(text)
    if i < n and text[i] == '"':
        out = []
        i += 1
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    break
                out.append(text[i + 1])
                i += 2
            elif c == '"':
                return "".join(out), i + 1
            else:
                out.append(c)
                i += 1
        raise Truncated("link-format: unterminated quoted string")
    m = _PTOKEN.match(text, i)
    if m is None:
        if i >= n:
            raise Truncated("link-format: '=' at end of input")
        raise Malformed(f"link-format: bad attribute value at {i}")
    return m.group(), m.end()


def lwm2m_paths(links: list[Link]) -> tuple[str | None, list[str]]:
    """The alternate root path (the target of the `rt="oma.lwm2m"` link, None if absent) and
    the object/instance paths of the other links, relative to that root."""
    root = None
    for link in links:
        if "oma.lwm2m" in (link.attr("rt") or "").split():
            root = link.target.rstrip("/") or "/"
            break
    paths = []
    for link in links:
        target = link.target
        if root not in (None, "/") and target.startswith(root + "/"):
            target = target[len(root):]
        if _LWM2M_PATH.fullmatch(target):
            paths.append(target)
    return root, paths
