"""Hostile requests on both surfaces: an answer in the caller's envelope, never a 500.

Deep JSON (orjson reads 1024 levels but writes only 254), deeply bracketed form fields, integers
past 64 bits, and a trailing slash that Starlette would have redirected to the Host header.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.errors import GatewayError
from gateway.translate.openai_form import unflatten_form
from tests.conftest import GatewayFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, ServerThread

NATIVE = "/api/v3/contents/generations/tasks"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
JSON = {"content-type": "application/json"}
MODEL = "doubao-seedance-2-0-260128"
TEXT = '[{"type": "text", "text": "a kite"}]'
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def native(extra: str, model: str = "sora-2") -> str:
    return f'{{"model": "{model}", "content": {TEXT}{extra}}}'


def openai(extra: str) -> str:
    return f'{{"prompt": "a kite", "model": "sora-2"{extra}}}'


def form(*fields: tuple[str, str]) -> dict[str, tuple[None, str]]:
    """A multipart body of text parts, as the OpenAI SDKs send creates."""
    return {name: (None, value) for name, value in [("prompt", "a kite"), *fields]}


# (what, method, path, JSON text or form fields, status)
CASES: list[tuple[str, str, str, str | dict[str, Any], int]] = [
    # Deep JSON: re-encoding an aliased model's body used to fail at 255 levels.
    ("native deep, aliased model", "POST", NATIVE, native(f', "x": {nested(300)}'), 400),
    ("native deep, plain model", "POST", NATIVE, native(f', "x": {nested(300)}', MODEL), 400),
    ("native just too deep", "POST", NATIVE, native(f', "x": {nested(64)}'), 400),
    ("native past orjson's limit", "POST", NATIVE, native(f', "x": {nested(2000)}'), 400),
    ("native delete deep", "DELETE", NATIVE + "/cgt-20261124000000-nosuch",
     f'{{"x": {nested(300)}}}', 400),
    ("openai deep", "POST", "/v1/videos", openai(f', "x": {nested(300)}'), 400),
    ("openai deep extra_body", "POST", "/v1/videos",
     openai(f', "extra_body": {{"tools": {nested(300)}}}'), 400),
    ("admin deep", "POST", "/admin/keys", f'{{"name": "rita", "x": {nested(300)}}}', 400),
    # Deeply bracketed multipart names nest the same way (2000 used to exhaust the recursion).
    ("form deep", "POST", "/v1/videos", form(("a" + "[b]" * 300, "v")), 400),
    ("form past the recursion limit", "POST", "/v1/videos",
     form(("a" + "[b]" * 2000, "v")), 400),
    ("form deep list", "POST", "/v1/videos", form(("images" + "[]" * 300, "v")), 400),
    ("form deep extra_body", "POST", "/v1/videos",
     form(("extra_body[tools]" + "[x]" * 2000, "v")), 400),
    ("form with a file, deep", "POST", "/v1/videos",  # Starlette's parser, not the fast path
     {**form(("a" + "[b]" * 1000, "v")), "input_reference": ("a.png", PNG, "image/png")}, 400),
    ("form tools JSON deep", "POST", "/v1/videos", form(("tools", nested(300))), 400),
    # Integers past 64 bits: orjson reads them as floats, or refuses (1e400 is infinite).
    ("native duration huge", "POST", NATIVE, native(', "duration": 99999999999999999999999'), 400),
    ("native duration u64", "POST", NATIVE, native(', "duration": 18446744073709551615'), 400),
    ("native duration -huge", "POST", NATIVE,
     native(', "duration": -99999999999999999999999'), 400),
    ("native seed 1e400", "POST", NATIVE, native(', "seed": 1e400'), 400),
    ("native seed u64", "POST", NATIVE, native(', "seed": 18446744073709551615'), 400),
    ("native priority -huge", "POST", NATIVE, native(', "priority": -9223372036854775809'), 400),
    ("native expires huge", "POST", NATIVE,
     native(', "execution_expires_after": 1e300'), 400),
    ("openai seconds -huge", "POST", "/v1/videos",
     openai(', "seconds": -99999999999999999999999'), 400),
    ("openai seconds 1e400", "POST", "/v1/videos", openai(', "seconds": 1e400'), 400),
    ("openai seed huge", "POST", "/v1/videos", openai(', "seed": 99999999999999999999999'), 400),
    ("openai seed u64", "POST", "/v1/videos", openai(', "seed": 18446744073709551615'), 400),
    ("openai priority -huge", "POST", "/v1/videos",
     openai(', "extra_body": {"priority": -18446744073709551616}'), 400),
    ("form seed huge", "POST", "/v1/videos", form(("seed", "9" * 40)), 400),
    ("form seconds huge", "POST", "/v1/videos", form(("seconds", "9" * 40)), 400),
    # Other shapes of body.
    ("native too large", "POST", NATIVE, native(', "x": "' + "a" * 20000 + '"'), 413),
    ("openai too large", "POST", "/v1/videos", openai(', "x": "' + "a" * 20000 + '"'), 413),
]


def send(gateway: ServerThread, method: str, path: str, body: str | dict[str, Any],
         **headers: str) -> httpx.Response:
    auth = ADMIN if path.startswith("/admin") else ALICE
    if isinstance(body, dict):
        return httpx.request(method, gateway.url + path, headers={**auth, **headers},
                             files=body)
    return httpx.request(method, gateway.url + path, headers={**auth, **JSON, **headers},
                         content=body.encode())


def assert_envelope(response: httpx.Response, path: str) -> dict[str, Any]:
    """The error envelope of the surface `path` belongs to."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    if path.startswith(("/v1/", "/admin/")):
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == ("invalid_request_error" if response.status_code < 500
                                 else "server_error")
    else:
        assert set(error) == {"code", "message", "param", "type"}
        assert error["type"] in ("BadRequest", "RequestEntityTooLarge", "UnsupportedMediaType")
    return error


@pytest.fixture
def strict_gateway(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3",
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]},
                                "server": {"max_body_bytes": 16384}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


@pytest.mark.parametrize(("what", "method", "path", "body", "status"), CASES,
                         ids=[case[0] for case in CASES])
def test_hostile_bodies_get_the_surfaces_error(strict_gateway: ServerThread, what: str,
                                               method: str, path: str,
                                               body: str | dict[str, Any], status: int) -> None:
    response = send(strict_gateway, method, path, body)
    assert response.status_code == status, response.text
    error = assert_envelope(response, path)
    if "deep" in what and status == 400 and "form" not in what:
        assert "64 levels" in error["message"]


def test_a_form_that_is_not_a_form_is_415(strict_gateway: ServerThread) -> None:
    response = send(strict_gateway, "POST", "/v1/videos", "prompt=a kite",
                    **{"content-type": "text/plain"})
    assert response.status_code == 415
    assert_envelope(response, "/v1/videos")


def test_nesting_up_to_the_limit_still_works(strict_gateway: ServerThread) -> None:
    # 64 levels: the body object, then 63 arrays.
    native_ok = send(strict_gateway, "POST", NATIVE, native(f', "x": {nested(63)}'))
    assert native_ok.status_code == 200, native_ok.text
    form_ok = send(strict_gateway, "POST", "/v1/videos", form(("a" + "[b]" * 63, "v")))
    assert form_ok.status_code == 200, form_ok.text


@pytest.mark.parametrize(("key", "allowed"), [
    ("a", True), ("a[b]", True), ("a[b][c]", True), ("a[][c]", True),
    ("a[b][c][d]", False), ("a[][][]", False), ("a[b][][c]", False),
    ("a[b", True), ("[x][y][z][w]", True),  # not bracket syntax: a literal key, never nested
])
def test_unflatten_form_limits_nesting(key: str, allowed: bool) -> None:
    if allowed:
        assert unflatten_form([(key, "v")], max_depth=3)
        return
    with pytest.raises(GatewayError) as refused:
        unflatten_form([(key, "v")], max_depth=3)
    assert refused.value.status == 400 and refused.value.param == "a"


@pytest.fixture
def unvalidated_gateway(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    """`validation: false`: bodies go upstream as sent, so only the gateway's own limits hold."""
    return start_gateway(simulator.url + "/api/v3", validation=False)


UNVALIDATED: list[tuple[str, str, str | dict[str, Any]]] = [
    ("native duration u64", NATIVE, native(', "duration": 18446744073709551615')),
    ("native duration i64", NATIVE, native(', "duration": 9223372036854775807')),
    ("native seed u64", NATIVE, native(', "seed": 18446744073709551615')),
    ("native deep", NATIVE, native(f', "x": {nested(300)}')),
    ("openai seconds huge", "/v1/videos", openai(', "seconds": 99999999999999999999999')),
    ("openai seed u64", "/v1/videos", openai(', "seed": 18446744073709551615')),
    ("openai deep callback_url", "/v1/videos", openai(f', "callback_url": {nested(300)}')),
    ("openai deep extra_body", "/v1/videos",
     openai(f', "extra_body": {{"tools": {nested(300)}}}')),
    ("form deep tools", "/v1/videos", form(("extra_body[tools]" + "[x]" * 300, "v"))),
    ("form tools JSON deep", "/v1/videos", form(("tools", nested(300)))),
]


@pytest.mark.parametrize(("what", "path", "body"), UNVALIDATED,
                         ids=[case[0] for case in UNVALIDATED])
def test_without_validation_nothing_is_a_500(unvalidated_gateway: ServerThread, what: str,
                                             path: str, body: str | dict[str, Any]) -> None:
    response = send(unvalidated_gateway, "POST", path, body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_envelope(response, path)
    if "deep" in what:
        assert response.status_code == 400


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/videos/", "openai"),
    ("/v1/", "openai"),
    (NATIVE + "/", "ark"),
    ("/admin/keys/", "openai"),  # the admin API answers in OpenAI's envelope throughout
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(
    strict_gateway: ServerThread, path: str, shape: str, method: str
) -> None:
    response = httpx.request(method, strict_gateway.url + path,
                             headers={**ALICE, "Host": "evil.example"})
    assert response.status_code == 404, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert "evil.example" not in response.text
    error = response.json()["error"]
    if shape == "openai":
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
    else:
        assert set(error) == {"code", "message", "param", "type"}
        assert error["type"] == "NotFound"
