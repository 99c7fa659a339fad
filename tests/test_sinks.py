"""File sinks: NDJSON (byte-stable, rotation) and tables (parquet / csv read back by pandas)."""
from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from es.documents import all_documents
from monitor.sinks import NdjsonSink, TableSink


def _write_ndjson(path, docs, rotate=None, batch=17):
    sink = NdjsonSink(str(path), rotate_bytes=rotate)
    for i in range(0, len(docs), batch):
        sink.write(docs[i:i + batch])
    return sink.close()


def test_ndjson_identical_input_gives_identical_bytes(tmp_path):
    docs = all_documents()
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    ra = _write_ndjson(a, docs, batch=17)
    rb = _write_ndjson(b, docs, batch=500)        # batching must not matter
    assert ra.sent == rb.sent == len(docs)
    data = a.read_bytes()
    assert data == b.read_bytes()
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(docs)
    for line, doc in zip(lines, docs):
        assert json.loads(line) == doc
        assert ": " not in line.split('"', 1)[0] and not line.startswith(" ")
        keys = list(json.loads(line).keys())
        assert keys == list(doc.keys())           # the builder's order, kept as it is


def test_ndjson_keeps_utf8_unescaped(tmp_path):
    doc = {"event": {"id": "u1"}, "lwm2m": {"endpoint": "капля-Ω"}}
    _write_ndjson(tmp_path / "u.ndjson", [doc])
    raw = (tmp_path / "u.ndjson").read_bytes()
    assert "капля-Ω".encode() in raw and b"\\u" not in raw


def test_ndjson_rotation_by_size(tmp_path):
    docs = all_documents()
    whole = tmp_path / "whole.ndjson"
    _write_ndjson(whole, docs)
    limit = 8000
    report = _write_ndjson(tmp_path / "live.ndjson", docs, rotate=limit)
    files = list(report.files)
    assert files[-1] == str(tmp_path / "live.ndjson")
    assert [os.path.basename(f) for f in files[:-1]] == [f"live.{i:06d}.ndjson" for i in range(1, len(files))]
    assert len(files) > 3
    longest = max(len(json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()) for d in docs) + 1
    joined = b""
    for f in files:
        data = open(f, "rb").read()
        joined += data
        if f != files[-1]:
            assert limit <= len(data) < limit + longest       # closed right after crossing the limit
        assert data == b"" or data.endswith(b"\n")              # never a split line
    assert joined == whole.read_bytes()
    # deterministic: the same run again gives the same files
    again = _write_ndjson(tmp_path / "again" / "live.ndjson", docs, rotate=limit)
    assert [open(f, "rb").read() for f in again.files] == [open(f, "rb").read() for f in files]


def _flat(doc, prefix=""):
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def _same(cell, value):
    if isinstance(value, (list, dict)):
        return json.loads(cell) == value
    if value is None:
        return cell is None or (isinstance(cell, float) and math.isnan(cell))
    if isinstance(value, bool):
        return cell in (value, str(value))
    if isinstance(value, (int, float)):
        return float(cell) == float(value)
    return str(cell) == value


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_table_reads_back_with_the_same_rows(tmp_path, fmt):
    docs = all_documents()
    path = tmp_path / f"out.{fmt}"
    sink = TableSink(str(path), fmt)
    sink.write(docs[:100])
    sink.write(docs[100:])
    report = sink.close()
    assert report.sent == len(docs) and report.files == (str(path),)
    df = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(df) == len(docs)
    columns = set()
    for doc in docs:
        columns |= set(_flat(doc))
    assert set(df.columns) == columns
    assert list(df.columns) == sorted(df.columns)
    assert list(df["event.id"]) == [d["event"]["id"] for d in docs]
    for i, doc in enumerate(docs):
        row = df.iloc[i]
        for name, value in _flat(doc).items():
            cell = row[name]
            if fmt == "csv" and cell == "" and value is None:
                continue
            assert _same(cell, value), (fmt, i, name, cell, value)
        for name in columns - set(_flat(doc)):
            cell = row[name]
            assert cell is None or cell == "" or (isinstance(cell, float) and math.isnan(cell)), (i, name, cell)


def test_table_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError):
        TableSink(str(tmp_path / "x.xlsx"), "xlsx")


def test_table_column_with_mixed_scalar_types_is_json_encoded(tmp_path):
    docs = [{"event": {"id": str(i)}, "x": {"v": v}} for i, v in enumerate([5, "five", 5.5, True, None])]
    sink = TableSink(str(tmp_path / "m.parquet"), "parquet")
    sink.write(docs)
    sink.close()
    df = pd.read_parquet(tmp_path / "m.parquet")
    assert [None if c is None or c != c else json.loads(c) for c in df["x.v"]] == [5, "five", 5.5, True, None]


def test_ndjson_keeps_integers_beyond_64_bits(tmp_path):
    doc = {"event": {"id": "big"}, "lwm2m": {"values": [{"path": "/3/0/13", "type": "integer", "value": 2**70}]}}
    _write_ndjson(tmp_path / "big.ndjson", [doc])
    assert json.loads((tmp_path / "big.ndjson").read_text()) == doc


def test_ndjson_encoding_handles_non_str_keys_and_bignums_like_the_stdlib():
    from monitor.sinks import dumps
    doc = {"b": 1, "a": {"é": [1.5, None, True]}, "c": "x\u2028y"}
    assert dumps(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    assert dumps({"b": 1, 3: "x"}) == '{"b":1,"3":"x"}'                   # int keys become strings, in order
    big = {"v": 2**70, "a": -(2**65)}                                         # CBOR bignums keep every digit
    assert json.loads(dumps(big)) == big


def test_ndjson_reuses_a_line_only_for_the_same_document(tmp_path):
    """`reuse_lines` entries are keyed by id(document) and carry the document: an entry whose
    document is another object (a recycled id) is ignored and the document encoded."""
    from monitor.sinks import dumps_line
    a, b, c = {"n": 1}, {"n": 2}, {"n": 3}
    lines = {id(a): (a, b'{"given":"line"}\n'), id(b): ({"n": 2}, b'{"stale":true}\n')}
    sink = NdjsonSink(str(tmp_path / "o.ndjson"))
    sink.reuse_lines(lines)
    sink.write([a, b, c])
    sink.close()
    assert (tmp_path / "o.ndjson").read_bytes() == b'{"given":"line"}\n' + dumps_line(b) + dumps_line(c)
    assert lines == {}
    rotating = NdjsonSink(str(tmp_path / "r.ndjson"), rotate_bytes=1 << 20)
    rotating.reuse_lines({id(a): (a, b'{"given":"line"}\n')})
    rotating.write([a, c])
    rotating.close()
    assert (tmp_path / "r.ndjson").read_bytes() == b'{"given":"line"}\n' + dumps_line(c)
