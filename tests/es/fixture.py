"""Session fixtures for the Elasticsearch tests: one real node for the whole session.

If the node cannot be installed or started the ES tests FAIL with the reason (a monitor whose
ES output is untested must not look green); developers without Java/Maven set LWM2M_SKIP_ES=1.
"""
from __future__ import annotations

import os
import uuid

import pytest

from .node import ADMIN_USER, Node, NodeError


@pytest.fixture(scope="session")
def es_node():
    if os.environ.get("LWM2M_SKIP_ES") == "1":
        pytest.skip("LWM2M_SKIP_ES=1: Elasticsearch tests skipped on request")
    try:
        node = Node.create()
        node.start()
    except (NodeError, OSError, KeyError) as exc:
        pytest.fail(f"Elasticsearch test node could not start: {exc}", pytrace=False)
    yield node
    node.destroy()


@pytest.fixture
def es_config(es_node, tmp_path):
    """An EsConfig for the node with a namespace of its own, so tests never see each other's data."""
    from monitor.es_sink import EsConfig

    def make(**options) -> EsConfig:
        options.setdefault("namespace", "t" + uuid.uuid4().hex[:10])
        options.setdefault("spool_dir", str(tmp_path / "spool"))
        options.setdefault("replicas", 0)
        return EsConfig.from_env_and_args(es_node.url, user=ADMIN_USER, password=es_node.password,
                                          ca=es_node.ca_path, env={}, **options)
    return make
