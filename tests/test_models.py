"""GET /v1/models over real sockets with the official `openai` SDK: a key sees what it may use."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from gateway.catalog import build_catalogue
from tests.conftest import GatewayFactory
from tests.openapi import validate_error
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
BOB_MODELS = ("sora-2", "doubao-seedance-2-0-260128")


def client(gateway: ServerThread, key: str) -> OpenAI:
    return OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


@pytest.fixture
def restricted(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3", bob_models=BOB_MODELS)


def test_an_unrestricted_key_lists_every_model_and_alias(restricted: ServerThread) -> None:
    models = client(restricted, FAKE_ALICE_KEY).models.list()
    ids = [m.id for m in models]
    catalogue = build_catalogue(restricted.app.app.state.services.config)
    assert ids == catalogue.names()
    assert {"sora-2", "sora-2-pro", "doubao-seedance-2.0", "doubao-seedance-2-0-260128",
            "doubao-seedance-2-5-260628"} <= set(ids)
    for model in models:
        assert model.object == "model" and model.owned_by == "seedance-gateway"
    by_id = {m.id: m for m in models}
    assert by_id["doubao-seedance-2-0-260128"].created == 1769558400  # 2026-01-28 UTC
    # An alias is dated by the model it stands for.
    assert by_id["sora-2"].created == by_id["doubao-seedance-2-0-fast-260128"].created


def test_a_restricted_key_sees_only_its_models(restricted: ServerThread) -> None:
    sdk = client(restricted, FAKE_BOB_KEY)
    assert sorted(m.id for m in sdk.models.list()) == sorted(BOB_MODELS)
    model = sdk.models.retrieve("sora-2")
    assert (model.id, model.object, model.owned_by) == ("sora-2", "model", "seedance-gateway")

    # Another key's model is a 404 like an unknown one: nothing learnt about the catalogue.
    for hidden in ("sora-2-pro", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.models.retrieve(hidden)
        body = caught.value.response.json()
        validate_error(body)
        assert body["error"]["code"] == "model_not_found"
        assert body["error"]["param"] == "model"
    assert client(restricted, FAKE_ALICE_KEY).models.retrieve("sora-2-pro").id == "sora-2-pro"


def test_models_need_a_valid_key_and_answer_in_openais_envelope(
    restricted: ServerThread
) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(restricted, "sk-wrong").models.list()
    validate_error(caught.value.response.json())
    assert httpx.get(restricted.url + "/v1/models/sora-2").status_code == 401
