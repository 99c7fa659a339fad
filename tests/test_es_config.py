"""EsConfig: command line over LWM2M_ES_* environment, one auth method, no secret in repr."""
from __future__ import annotations

import pytest

from monitor.es_sink import EsConfig, EsConfigError


def test_arguments_win_over_environment(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"LWM2M_ES_URL": "https://env:9200", "LWM2M_ES_USER": "env-user", "LWM2M_ES_PASSWORD": "env-pw",
           "LWM2M_ES_CA": str(ca)}
    c = EsConfig.from_env_and_args(env=env)
    assert (c.url, c.user, c.password, c.ca, c.api_key) == ("https://env:9200", "env-user", "env-pw", str(ca), None)
    c = EsConfig.from_env_and_args("http://arg:9201", user="u", password="p", env=env, batch_docs=7)
    assert (c.url, c.user, c.password, c.batch_docs) == ("http://arg:9201", "u", "p", 7)


def test_api_key_from_environment():
    c = EsConfig.from_env_and_args(env={"LWM2M_ES_URL": "https://h:9200", "LWM2M_ES_API_KEY": "a2V5OnNlY3JldA=="})
    assert c.api_key == "a2V5OnNlY3JldA==" and c.user is None


def test_credentials_in_url_move_out_of_it():
    c = EsConfig.from_env_and_args("https://alice:s%40cret@h:9200", env={})
    assert (c.url, c.user, c.password) == ("https://h:9200", "alice", "s@cret")


@pytest.mark.parametrize("kwargs, env, message", [
    ({}, {}, "no Elasticsearch URL"),
    ({"url": "ftp://h"}, {}, "http"),
    ({"url": "https://h", "api_key": "k", "user": "u", "password": "p"}, {}, "not both"),
    ({"url": "https://h", "user": "u"}, {}, "go together"),
    ({"url": "https://h"}, {"LWM2M_ES_CA": "/nonexistent/ca.pem"}, "CA file not found"),
])
def test_mistakes_are_one_line_errors(kwargs, env, message):
    with pytest.raises(EsConfigError, match=message):
        EsConfig.from_env_and_args(**kwargs, env=env)


def test_secrets_stay_out_of_repr_and_errors():
    c = EsConfig.from_env_and_args("https://h:9200", user="u", password="hunter2-secret", env={})
    k = EsConfig.from_env_and_args("https://h:9200", api_key="apikey-secret", env={})
    assert "hunter2-secret" not in repr(c) and "apikey-secret" not in repr(k)
    with pytest.raises(EsConfigError) as err:
        EsConfig.from_env_and_args("https://h", api_key="apikey-secret", user="u", password="hunter2-secret", env={})
    assert "secret" not in str(err.value)
