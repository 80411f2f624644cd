"""What clients get when the upstream is awkward: a real gateway on 127.0.0.1 in front of raw
asyncio servers, driven by the official SDKs and httpx.

The upstream here is a hand-written Ark (create, get) whose result files come from a second
raw server, so each test decides every byte the gateway receives.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import trustme
import uvicorn
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import ArkAPIStatusError

from gateway.simulator import SimulatorSettings, create_simulator_app
from tests.conftest import GatewayFactory
from tests.hostile import (
    INTERIM,
    Handler,
    ProxyLog,
    RawServer,
    SeenRequest,
    answer,
    answer_each,
    chunked_answer,
    close_delimited_head,
    connect_proxy,
    gzipped,
    json_answer,
    raw_server,
    tls_pair,
)
from tests.leaks import TrapStream
from tests.servers import (
    FAKE_ALICE_KEY,
    FAKE_BOB_KEY,
    FAKE_UPSTREAM_KEY,
    ServerThread,
    free_port,
)

pytestmark = [pytest.mark.anyio,
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

FILE = bytes(range(256)) * 4096  # 1 MiB
TASKS = "/api/v3/contents/generations/tasks"


def fake_ark(files_origin: Callable[[], str], *, interim: int | None = None,
             get_answer: Callable[[SeenRequest], bytes] | None = None) -> Handler:
    """Ark's create and get: creates number their tasks, every task has succeeded, its video
    at `{files_origin()}/<id>.mp4`. `interim`: a 1xx before every answer."""
    def respond(server: RawServer, request: SeenRequest) -> bytes:
        if request.method == "POST":
            server.state["created"] = server.state.get("created", 0) + 1
            wire = json_answer({"id": f"cgt-fake-{server.state['created']}"},
                               "X-Request-Id: up-create")
        elif get_answer is not None:
            wire = get_answer(request)
        else:
            task_id = request.path.rsplit("/", 1)[1]
            wire = json_answer({
                "id": task_id, "model": "doubao-seedance-2-0-fast-260128",
                "status": "succeeded", "created_at": 1, "updated_at": 2,
                "content": {"video_url": f"{files_origin()}/{task_id}.mp4?sig=s",
                            "last_frame_url": f"{files_origin()}/{task_id}.png?sig=s"},
                "usage": {"completion_tokens": 10, "total_tokens": 10},
                "resolution": "720p", "ratio": "16:9", "duration": 5,
            })
        return (INTERIM[interim] if interim else b"") + wire

    return answer_each(respond)


@asynccontextmanager
async def upstream_pair(files: Handler, **ark: Any) -> AsyncIterator[tuple[RawServer,
                                                                           RawServer]]:
    async with raw_server(files) as file_server:
        async with raw_server(fake_ark(lambda: file_server.origin, **ark)) as ark_server:
            yield ark_server, file_server


def video_client(gateway: ServerThread, key: str = FAKE_ALICE_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0,
                              timeout=10)


async def start(start_gateway: GatewayFactory, ark_server: RawServer,
                **options: Any) -> ServerThread:
    return await asyncio.to_thread(start_gateway, ark_server.origin + "/api/v3", **options)


async def created_video(gateway: ServerThread) -> str:
    async with video_client(gateway) as client:
        video = await client.videos.create(model="sora-2", prompt="a fox")
    return video.id


def error_lines(stream: TrapStream, since: int) -> list[str]:
    return [line for line in stream.lines[since:] if '"level":"error"' in line
            or '"level": "error"' in line or "Traceback" in line]


# --------------------------------------------------------------------------- interim answers


async def test_interim_answers_are_never_relayed_and_ids_stay_right(
        start_gateway: GatewayFactory) -> None:
    async with upstream_pair(answer_each(lambda s, r: answer(FILE)), interim=103) as (ark, _):
        gateway = await start(start_gateway, ark)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            alice = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
            bob = {"Authorization": f"Bearer {FAKE_BOB_KEY}"}
            body = {"model": "doubao-seedance-2-0-260128",
                    "content": [{"type": "text", "text": "a fox"}]}
            ids = []
            for headers in (alice, bob, alice):
                created = await http.post(TASKS, json=body, headers=headers)
                assert created.status_code == 200, created.text
                ids.append(created.json()["id"])
            assert ids == ["cgt-fake-1", "cgt-fake-2", "cgt-fake-3"]
            got = await http.get(f"{TASKS}/cgt-fake-2", headers=bob)
            assert got.status_code == 200 and got.json()["id"] == "cgt-fake-2"
            assert (await http.get(f"{TASKS}/cgt-fake-1", headers=bob)).status_code == 404
        async with video_client(gateway) as client:
            video = await client.videos.create(model="sora-2", prompt="x")
        assert video.id == "cgt-fake-4" and video.status == "queued"


# --------------------------------------------------------------------------- file framings


def _file_handler(kind: str) -> Handler:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        request = await server.next_request(reader)
        if request is None:
            return
        if kind == "chunked":
            writer.write(chunked_answer(*(FILE[i:i + 65536] for i in range(0, len(FILE), 65536)),
                                        headers=("Content-Type: video/mp4",)))
        elif kind == "close-delimited":
            writer.write(close_delimited_head("Content-Type: video/mp4") + FILE)
        else:  # gzip although identity was asked for
            writer.write(answer(gzipped(FILE), "Content-Type: video/mp4",
                                "Content-Encoding: gzip"))
        await writer.drain()

    return handler


@pytest.mark.parametrize("kind", ["chunked", "close-delimited", "gzip"])
async def test_result_file_reaches_the_client_whole(
        kind: str, start_gateway: GatewayFactory) -> None:
    async with upstream_pair(_file_handler(kind)) as (ark, files):
        gateway = await start(start_gateway, ark)
        video_id = await created_video(gateway)
        async with video_client(gateway) as client:
            content = await client.videos.download_content(video_id)
            data = await content.aread()
        assert content.response.status_code == 200
        assert content.response.headers["content-type"] == "video/mp4"
        assert content.response.headers.get("content-length") in (None, str(len(FILE)))
    assert len(data) == len(FILE) and data == FILE
    assert files.requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("kind", ["content-length", "chunked", "stall"])
async def test_truncated_file_is_cut_off_for_the_client_and_logged_without_error(
        kind: str, start_gateway: GatewayFactory, log_stream: TrapStream) -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if await server.next_request(reader) is None:
            return
        if kind == "chunked":
            writer.write(chunked_answer(FILE[:300_000], end=False))
        else:
            writer.write(answer(FILE)[:500_000])
        await writer.drain()
        if kind == "stall":
            await asyncio.sleep(30)

    async with upstream_pair(handler) as (ark, _):
        gateway = await start(start_gateway, ark, timeouts={"read": 0.5})
        video_id = await created_video(gateway)
        since = len(log_stream.lines)
        received = bytearray()
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                async with http.stream("GET", f"{gateway.url}/v1/videos/{video_id}/content",
                                       headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
                                       ) as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_raw():
                        received += chunk
        assert time.monotonic() - started < 5
        assert 0 < len(received) < len(FILE)
        await asyncio.sleep(0.1)
        assert not error_lines(log_stream, since)
        assert any('"download_truncated"' in line for line in log_stream.lines[since:])


async def test_range_past_the_end_is_a_416_in_openai_shape(
        start_gateway: GatewayFactory) -> None:
    files = answer_each(lambda s, r: answer(
        b"", f"Content-Range: bytes */{len(FILE)}", status="416 Range Not Satisfiable"))
    async with upstream_pair(files) as (ark, _):
        gateway = await start(start_gateway, ark)
        video_id = await created_video(gateway)
        async with httpx.AsyncClient(timeout=10) as http:
            got = await http.get(f"{gateway.url}/v1/videos/{video_id}/content",
                                 headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}",
                                          "Range": "bytes=99999999-"})
    assert got.status_code == 416
    assert got.headers["content-range"] == f"bytes */{len(FILE)}"
    error = got.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "range_not_satisfiable")


# --------------------------------------------------------------------------- Retry-After


async def test_upstream_retry_after_reaches_both_surfaces_as_is(
        start_gateway: GatewayFactory) -> None:
    limited = json_answer({"error": {"code": "RateLimitExceeded.EndpointRPM", "type":
                                     "TooManyRequests", "message": "slow down"}},
                          "Retry-After: 17", status="429 Too Many Requests")
    async with upstream_pair(answer_each(lambda s, r: answer(FILE)),
                             get_answer=lambda request: limited) as (ark, _):
        gateway = await start(start_gateway, ark)
        video_id = await created_video(gateway)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            auth = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
            native = await http.get(f"{TASKS}/{video_id}", headers=auth)
            openai_style = await http.get(f"/v1/videos/{video_id}", headers=auth)
    assert (native.status_code, native.headers.get("retry-after")) == (429, "17")
    assert native.json()["error"]["code"] == "RateLimitExceeded.EndpointRPM"
    assert (openai_style.status_code, openai_style.headers.get("retry-after")) == (429, "17")
    assert openai_style.json()["error"]["type"] == "rate_limit_error"


# --------------------------------------------------------------------------- TLS


async def test_tls_failure_names_its_cause_in_the_502s_log_event(
        start_gateway: GatewayFactory, log_stream: TrapStream, tmp_path: Path) -> None:
    pair = tls_pair(tmp_path, "localhost")
    async with raw_server(fake_ark(lambda: "https://localhost"), tls=pair.server) as ark:
        gateway = await asyncio.to_thread(
            start_gateway, f"https://localhost:{ark.port}/api/v3")
        since = len(log_stream.lines)
        async with AsyncArk(base_url=gateway.url + "/api/v3", api_key=FAKE_ALICE_KEY,
                            max_retries=0, timeout=10) as client:
            with pytest.raises(ArkAPIStatusError) as failed:
                await client.content_generation.tasks.create(
                    model="doubao-seedance-2-0-260128",
                    content=[{"type": "text", "text": "x"}])
        await asyncio.sleep(0.05)
    assert failed.value.status_code == 502
    access = [orjson.loads(line) for line in log_stream.lines[since:] if '"request"' in line]
    event = next(e for e in access if e.get("event") == "request" and e.get("status") == 502)
    assert "CERTIFICATE_VERIFY_FAILED" in event["upstream_error"]
    assert "local issuer certificate" in event["upstream_error"]


# --------------------------------------------------------------------------- a proxy, for real


class TlsSimulator:
    """The built-in simulator over TLS (uvicorn with a private CA's certificate)."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        chain = directory / "simulator.pem"
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(chain))
        self.ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        app = create_simulator_app(SimulatorSettings(upstream_keys=(FAKE_UPSTREAM_KEY,),
                                                     delay=0.3, seed=3))
        self.server = ServerThread(app)
        self.server.server.config = uvicorn.Config(
            app, log_config=None, access_log=False, ssl_certfile=str(chain),
            ssl_keyfile=str(chain))
        self.url = f"https://localhost:{self.server.port}/api/v3"


async def test_started_gateway_sends_every_upstream_call_through_https_proxy(
        tmp_path: Path) -> None:
    """`seedance-gateway serve` with HTTPS_PROXY set: the official SDK's create, poll and
    download all reach the (TLS) upstream through the proxy's CONNECT tunnels."""
    simulator = TlsSimulator(tmp_path)
    await asyncio.to_thread(simulator.server.start)
    log = ProxyLog()
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(orjson.dumps({
        "server": {"port": port},
        "upstreams": [{"name": "ark", "base_url": simulator.url, "ca_file": str(
            simulator.ca_file), "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "models": {"aliases": {"sora-2": "doubao-seedance-2-0-fast-260128"}},
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
        "tracker": {"enabled": False},
    }).decode())
    try:
        async with raw_server(connect_proxy(log)) as proxy:
            env = {**os.environ, "HTTPS_PROXY": proxy.origin, "NO_PROXY": "",
                   "UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve", "--config", str(config),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                base = f"http://127.0.0.1:{port}"
                await _until_ready(base)
                async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=FAKE_ALICE_KEY,
                                              max_retries=0, timeout=20) as client:
                    video = await client.videos.create_and_poll(
                        model="sora-2", prompt="a fox", poll_interval_ms=100)
                    assert video.status == "completed"
                    data = await (await client.videos.download_content(video.id)).aread()
                assert data[4:8] == b"ftyp"
            finally:
                if process.returncode is None:
                    process.terminate()
                await process.wait()
    finally:
        await asyncio.to_thread(simulator.server.stop)
    assert log.heads and {h.target for h in log.heads} == {f"localhost:{simulator.server.port}"}


async def _until_ready(base: str) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(base + "/healthz", timeout=0.5)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not start")


# --------------------------------------------------------------------------- hostile numbers


async def test_numbers_no_store_could_keep_are_not_a_500(start_gateway: GatewayFactory) -> None:
    """An upstream that reports 2**64-1 tokens, or a time no 64-bit clock holds: the native
    caller still gets the upstream's answer, the OpenAI caller a Video, and nothing is a 500."""
    most = 2**64 - 1  # what JSON parsers still read as an integer; SQLite keeps up to 2**63-1
    huge = (b'{"id": "cgt-fake-1", "model": "doubao-seedance-2-0-fast-260128", '
            b'"status": "succeeded", "created_at": 1, "updated_at": %d, '
            b'"content": {"video_url": "http://127.0.0.1:9/v"}, '
            b'"usage": {"completion_tokens": %d, "total_tokens": %d}}' % (most, most, most))
    async with upstream_pair(answer_each(lambda s, r: answer(FILE)),
                             get_answer=lambda request: answer(huge)) as (ark, _):
        gateway = await start(start_gateway, ark)
        video_id = await created_video(gateway)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            auth = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
            native = await http.get(f"{TASKS}/{video_id}", headers=auth)
            again = await http.get(f"/v1/videos/{video_id}", headers=auth)
            listed = await http.get(TASKS, headers=auth)
    assert (native.status_code, native.content) == (200, huge)
    assert again.status_code == 200 and again.json()["status"] == "completed"
    assert listed.status_code == 200 and listed.json()["items"][0]["status"] == "succeeded"
