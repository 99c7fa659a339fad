"""The declared output fields (monitor/fields.yml), loaded once.

`FIELDS` maps a dotted name to its `Field`. `undeclared(doc)` lists the dotted names of a
document that fields.yml does not declare, so tests can reject documents that carry fields no
one described (the Suricata schema.json habit). Everything under a `flattened` field, or under
an `object` declared with `enabled: false`, counts as declared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .yaml_loader import safe_load

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fields.yml")

# Types the index template knows how to map (see es_template.py); a typo must fail loudly.
TYPES = frozenset({"keyword", "text", "ip", "date", "long", "integer", "short", "byte", "float",
                   "double", "boolean", "flattened", "object", "nested"})
# Types that swallow everything below them.
OPAQUE = frozenset({"flattened"})


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    description: str
    ignore_above: int | None = None
    enabled: bool = True           # object fields only: False stores without indexing

    @property
    def opaque(self) -> bool:
        return self.type in OPAQUE or (self.type == "object" and not self.enabled)


class FieldsError(ValueError):
    pass


def load(path: str = PATH) -> dict[str, Field]:
    with open(path, encoding="utf-8") as f:
        entries = safe_load(f) or []
    out: dict[str, Field] = {}
    for i, e in enumerate(entries):
        where = f"{path}: entry {i + 1}"
        if not isinstance(e, dict) or not {"name", "type", "description"} <= e.keys():
            raise FieldsError(f"{where}: needs name, type and description")
        extra = e.keys() - {"name", "type", "description", "ignore_above", "enabled"}
        if extra:
            raise FieldsError(f"{where} ({e['name']}): unknown keys {sorted(extra)}")
        if e["type"] not in TYPES:
            raise FieldsError(f"{where} ({e['name']}): unknown type {e['type']!r}")
        if e["name"] in out:
            raise FieldsError(f"{where}: {e['name']} declared twice")
        if not str(e["description"]).strip():
            raise FieldsError(f"{where} ({e['name']}): empty description")
        out[e["name"]] = Field(e["name"], e["type"], str(e["description"]),
                               e.get("ignore_above"), bool(e.get("enabled", True)))
    _check_prefixes(out, path)
    return out


def _check_prefixes(fields: dict[str, Field], path: str) -> None:
    """A leaf must not also be a parent (`a.b` keyword and `a.b.c`): Elasticsearch rejects it."""
    for name in fields:
        parts = name.split(".")
        for k in range(1, len(parts)):
            parent = fields.get(".".join(parts[:k]))
            if parent is not None and parent.type not in ("object", "nested"):
                raise FieldsError(f"{path}: {name} lies under {parent.name}, which is a {parent.type}")


FIELDS: dict[str, Field] = load()


def undeclared(doc: dict, fields: dict[str, Field] | None = None) -> list[str]:
    """Dotted names of leaves in `doc` that fields.yml does not declare (sorted, unique)."""
    fields = FIELDS if fields is None else fields
    found: set[str] = set()
    _walk(doc, "", fields, found)
    return sorted(found)


def _walk(node: dict, prefix: str, fields: dict[str, Field], found: set[str]) -> None:
    for key, value in node.items():
        name = prefix + key
        f = fields.get(name)
        if f is not None and f.opaque:
            continue
        if isinstance(value, list):
            items = value
        else:
            items = (value,)
        for item in items:
            if isinstance(item, dict):
                if f is not None and f.type not in ("object", "nested"):
                    found.add(name)          # a leaf declared, an object sent: a mapping conflict
                else:
                    _walk(item, name + ".", fields, found)
            elif f is None or f.type in ("object", "nested"):
                found.add(name)
