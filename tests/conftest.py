# Shared fixtures. The Elasticsearch node (tests/es/fixture.py) is session-scoped and starts
# only when a test asks for it.
import os
import signal
import tempfile

import pytest

from es.fixture import es_config, es_node  # noqa: F401

# The parsed-rules cache (monitor/rule_cache.py) of this test session, CLI subprocesses
# included, lives in a fresh directory: tests neither read nor fill the user's cache.
os.environ.setdefault("LWM2M_MONITOR_CACHE_DIR", tempfile.mkdtemp(prefix="lwm2m-monitor-test-cache-"))


@pytest.fixture(autouse=True, scope="module")
def _no_idle_sigchld_wakeup():
    """pyshark (the Wireshark cross-checks) installs asyncio's SafeChildWatcher: a SIGCHLD
    handler that writes to the wakeup socket of an event loop it neither runs nor closes. Every
    later subprocess exit in the session then wrote a byte there until the socket was full, and
    each one after that became an "Exception ignored" warning in an unrelated test. After a
    module, a handler left that way goes (pyshark sets it again when it runs)."""
    yield
    if getattr(signal.getsignal(signal.SIGCHLD), "__name__", "") == "_sighandler_noop":
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
