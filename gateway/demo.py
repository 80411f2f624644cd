"""`seedance-gateway demo`: the gateway on its embedded defaults, no config file needed.

The built-in simulator plays the upstream on its own loopback port (so the gateway's metrics
and access log show gateway traffic only), SQLite keeps the tasks and the result archive sits in
a `results` folder beside the database. The banner is printed once the gateway's port is bound:
a demo that cannot listen says so in one line and hands out no key.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from gateway import __version__
from gateway.catalog import OPENAI_ALIASES, RESELLER_ALIASES
from gateway.config import Config
from gateway.server import CannotListen, listen, raise_open_files_limit, run, run_with_simulator
from gateway.simulator import SimulatorSettings, create_simulator_app
from gateway.webhooks.signing import new_secret

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="gateway + embedded simulator, no config file needed")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--client-key", action="append", metavar="KEY")
    demo.add_argument("--upstream-url", metavar="URL")
    demo.add_argument("--upstream-key", metavar="KEY")
    demo.add_argument("--store", default="sqlite:///seedance-gateway-demo.db", metavar="URL")
    demo.add_argument("--sim-delay", type=float, default=3.0, metavar="SECONDS")
    demo.add_argument("--sim-port", type=int, default=0, metavar="PORT",
                      help="the embedded simulator's loopback port (default: any free one)")
    demo.add_argument("--admin-key", metavar="KEY", help="enables /admin/* with this key")
    demo.add_argument("--webhook-url", metavar="URL",
                      help="the demo's client keys send signed task events (video.completed, "
                           "…) to this URL")
    demo.set_defaults(func=cmd_demo)


def demo_config(args: argparse.Namespace, client_keys: Sequence[str], upstream_url: str,
                webhook_secret: str | None = None) -> tuple[Config, str]:
    """A complete config for the demo: embedded simulator (or --upstream-url), SQLite."""
    upstream_key = args.upstream_key or secrets.token_urlsafe(24)
    webhook = ({"webhook_url": args.webhook_url, "webhook_secret": SecretStr(webhook_secret)}
               if args.webhook_url and webhook_secret else {})
    data = {
        "server": {"host": args.host, "port": args.port},
        "upstreams": [{
            "name": "ark", "preset": "volcengine", "base_url": upstream_url,
            "keys": [{"name": "demo", "secret": SecretStr(upstream_key)}],
            # The embedded simulator is on this machine: a proxy from the environment could
            # not reach it.
            "env_proxy": args.upstream_url is not None,
        }],
        "models": {"aliases": {**RESELLER_ALIASES, **OPENAI_ALIASES}},
        "client_keys": [
            {"name": f"member-{i}", "secret": SecretStr(key), **webhook}
            for i, key in enumerate(client_keys, start=1)
        ],
        "store": {"url": SecretStr(args.store)},  # a command-line value, not a file's
        "admin": {"keys": [{"name": "demo-admin", "secret": SecretStr(args.admin_key)}]
                  if args.admin_key else []},
        # A demo listening on loopback is one person's playground: its webhook receivers are
        # on this machine too. Listening wider, the SSRF rule applies as in production.
        "webhooks": {"allow_private": args.host in LOOPBACK_HOSTS},
    }
    return Config.model_validate(data, context={"env": {}}), upstream_key


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli import AppFactory  # the CLI imports this module

    try:
        gateway_socket = listen(args.host, args.port)
        sim_socket = None if args.upstream_url else listen("127.0.0.1", args.sim_port)
    except CannotListen as exc:
        print(f"seedance-gateway demo: {exc}", file=sys.stderr, flush=True)
        return 1
    client_keys = args.client_key or [f"sgw-demo-{secrets.token_urlsafe(12)}"]
    webhook_secret = new_secret() if args.webhook_url else None
    sim_base = None if sim_socket is None else f"http://127.0.0.1:{_port(sim_socket)}"
    upstream_url = args.upstream_url or f"{sim_base}/api/v3"
    config, upstream_key = demo_config(args, client_keys, upstream_url, webhook_secret)
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    print(banner(base, client_keys, simulator=sim_base, admin_key=args.admin_key,
                 webhook=(args.webhook_url, webhook_secret) if webhook_secret else None),
          flush=True)
    raise_open_files_limit()
    app = AppFactory(config, log_level=args.log_level)
    if sim_socket is None:
        run(app, sock=gateway_socket, factory=True, limits=config.server)
        return 0
    settings = SimulatorSettings(upstream_keys=(upstream_key,), delay=args.sim_delay)
    run_with_simulator(app, create_simulator_app(settings), sim_socket, sock=gateway_socket,
                       limits=config.server)
    return 0


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def banner(base: str, client_keys: Sequence[str], *, simulator: str | None,
           admin_key: str | None = None,
           webhook: tuple[str, str] | None = None) -> str:
    key = client_keys[0]
    upstream = (f"the embedded Seedance simulator ({simulator})" if simulator
                else "the given upstream")
    lines = [
        f"seedance-gateway {__version__} demo, upstream: {upstream}",
        f"  base URL:     {base}",
        *(f"  client key {i}: {k}" for i, k in enumerate(client_keys, start=1)),
        *([f"  admin key:    {admin_key}   (POST {base}/admin/keys, GET {base}/admin/usage)"]
          if admin_key else []),
        f"  web console:  {base}/   (sign in with the admin key or a client key; "
        f"the API: {base}/docs)",
        *([f"  webhooks:     task events to {webhook[0]}, signed with {webhook[1]}"]
          if webhook else []),
        *([f"  simulator:    `curl -X POST {simulator}/_sim/stop` stops it; finished videos "
           "keep downloading from the gateway's archive"] if simulator else []),
        "",
        f"  export GATEWAY_KEY={key}",
        "",
        "OpenAI SDK (pip install openai):",
        "  from openai import OpenAI",
        f"  client = OpenAI(base_url=\"{base}/v1\", api_key=\"{key}\")",
        "  video = client.videos.create_and_poll(model=\"sora-2\", prompt=\"a cat in the sun\", "
        "seconds=\"4\")",
        "  client.videos.download_content(video.id).write_to_file(\"cat.mp4\")",
        "",
        "Native (Ark) API with curl:",
        f"  curl -s {base}/api/v3/contents/generations/tasks \\",
        "    -H \"Authorization: Bearer $GATEWAY_KEY\" -H 'Content-Type: application/json' \\",
        "    -d '{\"model\": \"doubao-seedance-2.0\", \"content\": "
        "[{\"type\": \"text\", \"text\": \"a cat in the sun\"}], \"duration\": 5}'",
        "",
        "Volcengine Ark SDK (pip install volcengine-ark-runtime):",
        "  from volcenginesdkarkruntime import Ark",
        f"  client = Ark(base_url=\"{base}/api/v3\", api_key=\"{key}\")",
        "  task = client.content_generation.tasks.create(model=\"doubao-seedance-2-0-260128\",",
        "      content=[{\"type\": \"text\", \"text\": \"a cat in the sun\"}])",
        "  print(client.content_generation.tasks.get(task_id=task.id).status)",
        "",
    ]
    return "\n".join(lines)
