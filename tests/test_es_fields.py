"""monitor/fields.yml is the one list of output fields: documents carry nothing undeclared, and
the index template maps every declared field with its declared type."""
from __future__ import annotations

import re

import pytest

from es.documents import all_documents
from monitor import es_template
from monitor.fields import FIELDS, Field, FieldsError, load, undeclared

EVENTS_MD = "../shared/EVENTS.md"


def test_every_field_named_in_events_md_is_declared():
    with open(EVENTS_MD, encoding="utf-8") as f:
        text = f.read()
    names = set()
    for cell in re.findall(r"^\| ([^|]+) \|", text, flags=re.M):
        for name in re.findall(r"`([@a-z_][\w.@]*)`", cell):
            names.add(name)
    # "`lwm2m.registration.lifetime`, `.binding`, ..." style shorthands
    names |= {"lwm2m.registration.binding", "lwm2m.registration.version", "lwm2m.registration.objects"}
    names -= {"field"}
    assert len(names) > 40
    missing = sorted(n for n in names if n not in FIELDS and not n.endswith(".*")
                     and not any(n.startswith(p + ".") for p in ("observer", "related", "tls.server.x509")))
    assert missing == []


def test_pipeline_documents_carry_only_declared_fields():
    docs = all_documents()
    bad = {}
    for d in docs:
        for name in undeclared(d):
            bad.setdefault(name, d["event"]["dataset"])
    assert bad == {}, f"add these to monitor/fields.yml: {bad}"


def test_undeclared_finds_unknown_and_conflicting_fields():
    doc = {"event": {"id": "x", "novel": 1}, "source": {"ip": {"oops": 1}},
           "lwm2m": {"values": [{"path": "/3/0/0", "value": {"redacted": True}}]},
           "dtls": {"alerts": [{"level": "fatal", "extra": 1}]}}
    assert undeclared(doc) == ["dtls.alerts.extra", "event.novel", "source.ip"]


def test_loader_rejects_mistakes(tmp_path):
    cases = {
        "- {name: a.b, type: keywrd, description: x}\n": "unknown type",
        "- {name: a.b, type: keyword, description: x}\n- {name: a.b, type: long, description: y}\n": "declared twice",
        "- {name: a.b, type: keyword}\n": "needs name",
        "- {name: a.b, type: keyword, description: x, indexx: true}\n": "unknown keys",
        "- {name: a, type: keyword, description: x}\n- {name: a.b, type: long, description: y}\n": "lies under",
    }
    for text, message in cases.items():
        p = tmp_path / "f.yml"
        p.write_text(text)
        with pytest.raises(FieldsError, match=message):
            load(str(p))


def _mapped(props, prefix=""):
    out = {}
    for name, m in props.items():
        full = prefix + name
        if "properties" in m:
            out.update(_mapped(m["properties"], full + "."))
        else:
            out[full] = m
    return out


def test_template_maps_every_declared_field_with_its_type():
    mapped = _mapped(es_template.mappings()["properties"])
    leaves = {n: f for n, f in FIELDS.items() if f.type not in ("object", "nested")}
    assert set(mapped) == set(leaves)
    for name, f in leaves.items():
        assert mapped[name]["type"] == f.type, name
        if f.type == "keyword":
            assert mapped[name]["ignore_above"] >= 256
    assert mapped["lwm2m.values"]["type"] == "flattened"
    assert es_template.index_template(True)["data_stream"] == {}
    assert "data_stream" not in es_template.index_template(False)


def test_field_is_frozen():
    f = Field("a", "keyword", "x")
    with pytest.raises(AttributeError):
        f.name = "b"
