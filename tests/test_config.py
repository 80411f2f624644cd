"""Config: references resolve, literals and bad fields are refused with the field named."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.catalog import build_catalogue
from gateway.config import ConfigError, load_config, parse_config

ENV = {"ARK_API_KEY": "fake-ark-key-1", "GATEWAY_KEY_ALICE": "fake-alice-1"}
EXAMPLE = Path(__file__).parent.parent / "config.example.yaml"


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "upstreams": [{"name": "ark", "base_url": "https://ark.example/api/v3",
                       "keys": [{"name": "main", "secret": "${ARK_API_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${GATEWAY_KEY_ALICE}"}],
    }
    data.update(changes)
    return data


def test_example_config_is_valid_and_documents_the_aliases() -> None:
    config = load_config(EXAMPLE, env=ENV)
    catalogue = build_catalogue(config)
    for name in ("sora-2", "sora-2-pro", "doubao-seedance-2.0", "doubao-seedance-2-fast",
                 "doubao-seedance-2-0-260128"):
        assert catalogue.resolve(name) is not None, name
    assert config.upstreams[0].keys[0].secret.get_secret_value() == "fake-ark-key-1"
    assert "fake-ark-key-1" not in repr(config) + str(config)


def test_file_references(tmp_path: Path) -> None:
    secret = tmp_path / "ark"
    secret.write_text("fake-from-file\n")
    data = base()
    data["upstreams"][0]["keys"][0]["secret"] = f"${{file:{secret}}}"
    config = parse_config(data, env=ENV)
    assert config.upstreams[0].keys[0].secret.get_secret_value() == "fake-from-file"


def test_sha256_client_keys() -> None:
    digest = hashlib.sha256(b"sgw-hashed").hexdigest()
    config = parse_config(base(client_keys=[{"name": "h", "sha256": digest}]), env=ENV)
    assert config.client_keys[0].digest() == hashlib.sha256(b"sgw-hashed").digest()


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda d: d["upstreams"][0]["keys"][0].update(secret="sk-literal"),
         "upstreams.0.keys.0.secret", "literal secrets are not allowed"),
        (lambda d: d["upstreams"][0]["keys"][0].update(secret="${MISSING_VAR}"),
         "upstreams.0.keys.0.secret", "MISSING_VAR is not set"),
        (lambda d: d["upstreams"][0]["keys"][0].update(secret="${file:/nonexistent/x}"),
         "upstreams.0.keys.0.secret", "cannot read secret file"),
        (lambda d: d["upstreams"][0].update(preset="acme"), "upstreams.0.preset",
         "unknown preset"),
        (lambda d: d["upstreams"][0].update(base_url="ftp://x"), "upstreams.0.base_url", ""),
        (lambda d: d["upstreams"][0].update(timeouts={"read": -1}),
         "upstreams.0.timeouts.read", ""),
        (lambda d: d["client_keys"][0].update(sha256="0" * 64), "client_keys.0", "exactly one"),
        (lambda d: d["client_keys"][0].update(secret=None, sha256="00"),
         "client_keys.0.sha256", "should match pattern"),
        (lambda d: d.update(store={"url": "mysql://x"}), "store.url", ""),
        (lambda d: d.update(models={"aliases": {"sora-2": "no-such-model"}}), "(top level)",
         "unknown model"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs"),
        (lambda d: d.update(openai={"size_policy": "loose"}), "openai.size_policy", ""),
        (lambda d: d.update(client_keys=[{"name": "a", "secret": "${GATEWAY_KEY_ALICE}"},
                                         {"name": "a", "secret": "${ARK_API_KEY}"}]),
         "(top level)", "duplicate client key names"),
        (lambda d: d["client_keys"][0].update(models=[]), "(top level)",
         "models is empty"),
        (lambda d: d["client_keys"][0].update(models=["sora-2", "sora-3", "gpt-4o"]),
         "(top level)", "unknown models gpt-4o, sora-2, sora-3"),
    ],
)
def test_bad_config_is_refused_naming_the_field(mutate: Any, field: str, fragment: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as refused:
        parse_config(data, env=ENV)
    message = str(refused.value)
    assert f"  {field}:" in message, message
    assert fragment in message
    assert "fake-ark-key-1" not in message and "fake-alice-1" not in message


def test_model_overrides_add_and_narrow_models() -> None:
    config = parse_config(base(models={"overrides": [
        {"name": "doubao-seedance-2-0-260128", "resolutions": ["720p"]},
        {"name": "my-endpoint", "upstream": "ark", "upstream_model": "ep-20260101000000-abcde",
         "resolutions": ["480p", "720p"]},
    ]}), env=ENV)
    catalogue = build_catalogue(config)
    narrowed = catalogue.resolve("doubao-seedance-2-0-260128")
    assert narrowed is not None and narrowed.resolutions == ("720p",)
    added = catalogue.resolve("my-endpoint")
    assert added is not None and added.upstream_model == "ep-20260101000000-abcde"


def test_new_model_without_essentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs resolutions, upstream, upstream_model"):
        parse_config(base(models={"overrides": [{"name": "new-one"}]}), env=ENV)


def test_wisgate_preset_uses_reseller_names_and_limits() -> None:
    data = base()
    data["upstreams"][0]["preset"] = "wisgate"
    catalogue = build_catalogue(parse_config(data, env=ENV))
    spec = catalogue.resolve("doubao-seedance-2.0")
    assert spec is not None and spec.upstream_model == "doubao-seedance-2.0"
    assert (spec.duration_min, spec.duration_max, spec.ratios) == (5, 15, ("16:9", "9:16", "1:1"))
    assert catalogue.resolve("doubao-seedance-2-0-260128") is None


def test_config_is_immutable() -> None:
    config = parse_config(base(), env=ENV)
    with pytest.raises(Exception, match="frozen"):
        config.server.port = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- URLs with secrets


def test_store_url_takes_references_anywhere_and_keeps_the_password_secret(
        tmp_path: Path) -> None:
    password = tmp_path / "redis-password"
    password.write_text("fake-redis-pw-2\n")
    for url, expected in [
        ("redis://:${REDIS_PASSWORD}@redis:6379/0?prefix=sgw:",
         "redis://:fake-redis-pw-1@redis:6379/0?prefix=sgw:"),
        ("rediss://sgw:${file:" + str(password) + "}@redis:6380/1",
         "rediss://sgw:fake-redis-pw-2@redis:6380/1"),
        ("${STORE_URL}", "redis://:fake-redis-pw-3@redis:6379/0"),
        ("sqlite:///${DATA_DIR}/tasks.db", "sqlite:////var/lib/sgw/tasks.db"),
    ]:
        env = {**ENV, "REDIS_PASSWORD": "fake-redis-pw-1", "DATA_DIR": "/var/lib/sgw",
               "STORE_URL": "redis://:fake-redis-pw-3@redis:6379/0"}
        config = parse_config(base(store={"url": url}), env=env)
        assert config.store.url.get_secret_value() == expected
        assert "fake-redis-pw" not in repr(config) + str(config)
        if "pw" in expected:  # the log redactor is given the password
            assert any(s.startswith("fake-redis-pw") for s in config.secret_values())


@pytest.mark.parametrize(("field", "mutate"), [
    ("store.url", lambda d: d.update(store={"url": "redis://:hunter2-literal@redis:6379/0"})),
    ("upstreams.0.proxy",
     lambda d: d["upstreams"][0].update(proxy="http://egress:hunter2-literal@proxy:3128")),
])
def test_a_literal_password_in_a_url_is_refused(field: str, mutate: Any) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as refused:
        parse_config(data, env=ENV)
    message = str(refused.value)
    assert f"  {field}:" in message and "literal passwords are not allowed" in message
    assert "hunter2-literal" not in message


def test_proxy_and_ca_file_per_upstream(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    upstream = {"proxy": "http://egress:${PROXY_PASSWORD}@proxy.internal:3128",
                "ca_file": str(ca_file)}
    data = base()
    data["upstreams"][0].update(upstream)
    config = parse_config(data, env={**ENV, "PROXY_PASSWORD": "fake-proxy-pw"})
    assert config.upstreams[0].proxy is not None
    assert config.upstreams[0].proxy.get_secret_value() == (
        "http://egress:fake-proxy-pw@proxy.internal:3128")
    assert config.upstreams[0].ca_file == ca_file
    assert "fake-proxy-pw" in config.secret_values()

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for bad, fragment in [({"ca_file": str(not_pem)}, "cannot load CA certificates"),
                          ({"ca_file": str(tmp_path / "none.pem")}, "cannot load CA"),
                          ({"proxy": "socks5://proxy:1080"}, "http:// or https://")]:
        data = base()
        data["upstreams"][0].update(bad)
        with pytest.raises(ConfigError) as refused:
            parse_config(data, env=ENV)
        assert fragment in str(refused.value)


def test_client_keys_may_be_empty_when_admin_keys_manage_every_key() -> None:
    admin = {"keys": [{"name": "ops", "secret": "${GATEWAY_KEY_ALICE}"}]}
    config = parse_config(base(client_keys=[], admin=admin), env=ENV)
    assert config.client_keys == ()
    with pytest.raises(ConfigError) as refused:
        parse_config(base(client_keys=[]), env=ENV)
    assert "client_keys or admin.keys" in str(refused.value)
