"""Config: references resolve, literals and bad fields are refused with the field named."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, build_catalogue, load_config, parse_config

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
