# Shared fixtures. The Elasticsearch node (tests/es/fixture.py) is session-scoped and starts
# only when a test asks for it.
import os
import tempfile

from es.fixture import es_config, es_node  # noqa: F401

# The parsed-rules cache (monitor/rule_cache.py) of this test session, CLI subprocesses
# included, lives in a fresh directory: tests neither read nor fill the user's cache.
os.environ.setdefault("LWM2M_MONITOR_CACHE_DIR", tempfile.mkdtemp(prefix="lwm2m-monitor-test-cache-"))
