"""The LwM2M object model: OMA object-definition XMLs → resource names, types, operations.

The shipped definitions live in `monitor/objects/*.xml` (OMA LWM2M.xsd schema); a user
directory of the same kind of files (`--objects DIR`) is loaded on top and wins per object.
A file that cannot be read or does not follow the schema raises `ObjectModelError`
naming the file. Which resources hold secrets is decided here, not in the XML (the schema has
no such flag).
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("objects")

# XML <Type> text → the value type names used in decoded payloads.
TYPES = {
    "string": "string",
    "integer": "integer",
    "unsigned integer": "unsigned",
    "float": "float",
    "boolean": "boolean",
    "opaque": "opaque",
    "time": "time",
    "objlnk": "objlnk",
    "corelnk": "corelnk",
    "": "none",
    "none": "none",
}

# (object, resource) pairs whose values are keying material: Security Public Key or Identity,
# Server Public Key, Secret Key, SMS Binding Secret Keys; OSCORE Master Secret, Master Salt.
SECRET_RESOURCES = frozenset({(0, 3), (0, 4), (0, 5), (0, 8), (21, 0), (21, 5)})
# Objects that hold credentials (Security, OSCORE): a resource of theirs the model does not
# define (a later TS version, a vendor extension, a damaged path) is treated as secret too.
CREDENTIAL_OBJECTS = frozenset({0, 21})


def is_secret(object_id: int, resource_id: int, resource: ResourceDef | None) -> bool:
    """Whether values of this resource are keying material, redacted in every output."""
    if resource is None:
        return object_id in CREDENTIAL_OBJECTS or (object_id, resource_id) in SECRET_RESOURCES
    return resource.secret


def is_secret_path(path: str, model: ObjectModel) -> bool:
    """`is_secret` for an LwM2M path text (`/O/I/R[/RI]`); False for shorter or other paths."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        return False
    oid, rid = int(parts[0]), int(parts[2])
    return is_secret(oid, rid, model.resource(oid, rid))


class ObjectModelError(ValueError):
    """An object-definition file is unreadable or breaks the schema; the message names it."""


ObjectDefinitionError = ObjectModelError   # the name monitor/cli.py catches


@dataclass(frozen=True, slots=True)
class ResourceDef:
    object_id: int
    id: int
    name: str
    type: str            # one of TYPES' values
    operations: str      # "R", "W", "RW", "E" or "" (bootstrap-only objects)
    multiple: bool
    mandatory: bool
    secret: bool


@dataclass(frozen=True, slots=True)
class ObjectDef:
    id: int
    name: str
    version: str
    multiple: bool
    resources: dict[int, ResourceDef]
    source: str          # file it came from


class ObjectModel:
    """Object definitions by id. The shipped ones (`SHIPPED_DIR/<id>.xml`, one object per file)
    are parsed when an id is first asked for: parsing all 58 files took 16 ms of every run's
    start-up, serial before any `--workers` fork, while a capture uses a handful of objects."""

    def __init__(self, objects: dict[int, ObjectDef], shipped: frozenset[int] = frozenset()):
        self._objects = dict(objects)
        self._unparsed = set(shipped) - set(objects)      # shipped ids not parsed yet

    @classmethod
    def load(cls, *user_dirs: str | Path) -> ObjectModel:
        """The shipped objects, then each user directory in order (later ones override)."""
        model = cls.builtin()
        for d in user_dirs:
            model = model.with_directory(d)
        return model

    @classmethod
    def builtin(cls) -> ObjectModel:
        return cls({}, shipped_ids())

    def with_directory(self, directory: str | Path) -> ObjectModel:
        """A new model: this one plus the directory's objects, which win over same-id ones."""
        path = Path(directory)
        if not path.is_dir():
            raise ObjectModelError(f"{path}: not a directory of object definitions")
        return ObjectModel({**self._objects, **_load_dir(path)}, frozenset(self._unparsed))

    def object(self, oid: int) -> ObjectDef | None:
        obj = self._objects.get(oid)
        if obj is None and oid in self._unparsed:
            obj = self._objects[oid] = shipped_object(oid)
            self._unparsed.discard(oid)
        return obj

    def resource(self, oid: int, rid: int) -> ResourceDef | None:
        obj = self._objects.get(oid)          # per decoded value: the parsed case without a call
        if obj is None:
            obj = self.object(oid)
        return None if obj is None else obj.resources.get(rid)

    def object_ids(self) -> list[int]:
        return sorted(self._objects.keys() | self._unparsed)

    def __len__(self) -> int:
        return len(self._objects) + len(self._unparsed)


@functools.cache
def shipped_ids() -> frozenset[int]:
    return frozenset(int(p.stem) for p in SHIPPED_DIR.glob("*.xml") if p.stem.isdigit())


@functools.cache
def shipped_object(oid: int) -> ObjectDef:
    """The shipped definition of object `oid`, parsed once per process (ObjectDefs are frozen)."""
    path = SHIPPED_DIR / f"{oid}.xml"
    objects = parse_file(path)
    if [o.id for o in objects] != [oid]:
        raise ObjectModelError(f"{path}: a shipped file must define object {oid} alone")
    return objects[0]


def _load_dir(directory: Path) -> dict[int, ObjectDef]:
    objects: dict[int, ObjectDef] = {}
    for path in sorted(directory.glob("*.xml")):
        for obj in parse_file(path):
            objects[obj.id] = obj
    return objects


def parse_file(path: Path) -> list[ObjectDef]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ObjectModelError(f"{path}: {exc}") from None
    try:
        return parse_tree(root, str(path))
    except ObjectModelError as exc:
        raise ObjectModelError(f"{path}: {exc}") from None


def parse_tree(root: ET.Element, source: str) -> list[ObjectDef]:
    if _local(root.tag) != "LWM2M":
        raise ObjectModelError(f"root element is <{_local(root.tag)}>, not <LWM2M>")
    objects = [_object(el, source) for el in root if _local(el.tag) == "Object"]
    if not objects:
        raise ObjectModelError("no <Object> element")
    return objects


def _object(el: ET.Element, source: str) -> ObjectDef:
    oid = _int(_text(el, "ObjectID"), "ObjectID")
    resources: dict[int, ResourceDef] = {}
    res_el = _child(el, "Resources")
    for item in (res_el if res_el is not None else ()):
        if _local(item.tag) != "Item":
            continue
        rid = _int(item.get("ID"), f"object {oid} <Item ID>")
        type_text = (_text(item, "Type") or "").strip().lower()
        if type_text not in TYPES:
            raise ObjectModelError(f"object {oid} resource {rid}: unknown <Type> {type_text!r}")
        resources[rid] = ResourceDef(
            object_id=oid,
            id=rid,
            name=(_text(item, "Name") or "").strip(),
            type=TYPES[type_text],
            operations=(_text(item, "Operations") or "").strip().upper(),
            multiple=(_text(item, "MultipleInstances") or "").strip().lower() == "multiple",
            mandatory=(_text(item, "Mandatory") or "").strip().lower() == "mandatory",
            secret=(oid, rid) in SECRET_RESOURCES,
        )
    return ObjectDef(
        id=oid,
        name=(_text(el, "Name") or "").strip(),
        version=(_text(el, "ObjectVersion") or "1.0").strip() or "1.0",
        multiple=(_text(el, "MultipleInstances") or "").strip().lower() == "multiple",
        resources=resources,
        source=source,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]   # tolerate namespaced files


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el: ET.Element, name: str) -> str | None:
    c = _child(el, name)
    return None if c is None else (c.text or "")


def _int(text: str | None, what: str) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        raise ObjectModelError(f"{what} is not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise ObjectModelError(f"{what} out of range 0..65535: {value}")
    return value
