# Shared fixtures. The Elasticsearch node (tests/es/fixture.py) is session-scoped and starts
# only when a test asks for it.
from es.fixture import es_config, es_node  # noqa: F401
