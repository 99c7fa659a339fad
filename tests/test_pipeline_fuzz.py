"""Bad input never stops the pipeline: mutated real traffic and random datagrams on the LwM2M
ports give documents or counted anomalies, never an exception, and no event is lost."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from monitor.capture import CaptureStats, read_files
from monitor.keys import load
from monitor.pipeline import Pipeline, PipelineConfig

from captures import PCAPS

SOURCES = ["leshan-nosec-operations", "leshan-psk-ccm8", "leshan-oscore", "leshan-nosec-bootstrap"]
REAL = {name: list(read_files([os.path.join(PCAPS, name + ".pcap")], CaptureStats())) for name in SOURCES}


def keys_for(name):
    path = os.path.join(PCAPS, name + ".keys.yaml")
    return load(path) if os.path.exists(path) else None


def run(datagrams, keys=None):
    p = Pipeline(PipelineConfig(keys=keys) if keys else PipelineConfig())
    docs = []
    for d in datagrams:
        docs += p.feed(d)
    docs += p.close()
    return p, docs


mutation = st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), st.lists(st.tuples(st.integers(min_value=0, max_value=200), mutation),
                                          max_size=12), st.integers(min_value=0, max_value=3))
def test_mutated_real_traffic_never_raises(name, mutations, truncate_every):
    dgrams = list(REAL[name])
    for idx, (pos, byte) in mutations:
        if not dgrams:
            break
        i = idx % len(dgrams)
        payload = bytearray(dgrams[i].payload)
        if payload:
            payload[pos % len(payload)] = byte
        dgrams[i] = dgrams[i]._replace(payload=bytes(payload))
    if truncate_every:
        dgrams = [d._replace(payload=d.payload[: len(d.payload) // 2]) if k % (truncate_every + 1) == 0 else d
                  for k, d in enumerate(dgrams)]
    p, docs = run(dgrams, keys_for(name))
    assert all(d["event"]["dataset"] for d in docs)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([5683, 5684, 5783, 40000]), st.binary(max_size=80)), max_size=20))
def test_random_datagrams_never_raise(items):
    base = REAL["leshan-nosec-operations"][0]
    dgrams = [base._replace(ts_ns=base.ts_ns + i, dst_port=port, payload=data) for i, (port, data) in enumerate(items)]
    run(dgrams)


def test_every_request_is_reported_even_when_answers_are_lost():
    """Drop every response: each request still gives exactly one event (outcome unknown)."""
    dgrams = REAL["leshan-nosec-operations"]
    from parsers import coap
    requests = [d for d in dgrams if coap.parse(d.payload).is_request]
    # the 8 blocks of the firmware write are one operation (RFC 7959 body), as with answers
    continuations = [d for d in requests if (b := coap.parse(d.payload).block1) is not None and b.num > 0]
    assert len(continuations) == 7
    _, docs = run(requests)
    ops = [d for d in docs if d["event"]["dataset"] == "lwm2m.operation"]
    assert len(ops) == len(requests) - len(continuations)
    assert {d["event"]["outcome"] for d in ops} == {"unknown"}
