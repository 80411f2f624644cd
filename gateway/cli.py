"""Command line: serve, simulate, demo, check-config."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import tempfile
from collections.abc import Sequence

from prometheus_client import disable_created_metrics
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway import __version__
from gateway.app import create_app
from gateway.catalog import OPENAI_ALIASES, RESELLER_ALIASES, build_catalogue
from gateway.config import Config
from gateway.keys.cli import add_keys_parser, add_usage_parser, load_or_exit
from gateway.observability.logs import LEVELS, configure_logging
from gateway.secrets import mask, masked_url
from gateway.server import raise_open_files_limit, run, run_with_simulator
from gateway.simulator import SimulatorSettings, create_simulator_app


class AppFactory:
    """Builds the app inside each worker process (picklable, so `--workers N` can spawn it)."""

    def __init__(self, config: Config, *, log_level: str = "info") -> None:
        self.config = config
        self.log_level = log_level

    def __call__(self) -> Starlette:
        # Runs in each worker process: logging must be set up there, with the secrets to redact.
        configure_logging(self.log_level, secrets=self.config.secret_values())
        # `_created` series double every scrape for no dashboard use.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        return create_app(self.config)


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)
    host = args.host or config.server.host
    port = args.port or config.server.port
    workers = args.workers or config.server.workers
    if workers > 1:
        # prometheus_client reads this in each worker at import: the workers' metrics are
        # written there and /metrics adds them up.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="seedance-gateway-metrics-"))
    raise_open_files_limit()
    run(AppFactory(config, log_level=args.log_level), host=host, port=port, workers=workers,
        factory=True, limits=config.server)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    keys = tuple(args.upstream_key) if args.upstream_key else ("sim-upstream-key",)
    settings = SimulatorSettings(upstream_keys=keys, delay=args.delay)
    print(f"Seedance simulator on http://{args.host}:{args.port}/api/v3 "
          f"(upstream keys: {', '.join(keys)})", flush=True)
    run(create_simulator_app(settings), host=args.host, port=args.port)
    return 0


def demo_config(
    args: argparse.Namespace, client_keys: Sequence[str], upstream_url: str
) -> tuple[Config, str]:
    """A complete config for the demo: embedded simulator (or --upstream-url), SQLite."""
    upstream_key = args.upstream_key or secrets.token_urlsafe(24)
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
            {"name": f"member-{i}", "secret": SecretStr(key)}
            for i, key in enumerate(client_keys, start=1)
        ],
        "store": {"url": SecretStr(args.store)},  # a command-line value, not a file's
        "admin": {"keys": [{"name": "demo-admin", "secret": SecretStr(args.admin_key)}]
                  if args.admin_key else []},
    }
    return Config.model_validate(data, context={"env": {}}), upstream_key


def cmd_demo(args: argparse.Namespace) -> int:
    client_keys = args.client_key or [f"sgw-demo-{secrets.token_urlsafe(12)}"]
    # The embedded simulator gets its own loopback port, so the gateway's metrics and access
    # log show gateway traffic only.
    sim_socket = None if args.upstream_url else _loopback_socket()
    upstream_url = args.upstream_url or (
        f"http://127.0.0.1:{_port(sim_socket)}/api/v3")
    config, upstream_key = demo_config(args, client_keys, upstream_url)
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    print(_demo_banner(base, client_keys, simulated=sim_socket is not None,
                       admin_key=args.admin_key), flush=True)
    raise_open_files_limit()
    app = AppFactory(config, log_level=args.log_level)
    if sim_socket is None:
        run(app, host=args.host, port=args.port, factory=True, limits=config.server)
        return 0
    settings = SimulatorSettings(upstream_keys=(upstream_key,), delay=args.sim_delay)
    run_with_simulator(app, create_simulator_app(settings), sim_socket, host=args.host,
                       port=args.port, limits=config.server)
    return 0


def _port(sock: socket.socket | None) -> int:
    assert sock is not None
    port: int = sock.getsockname()[1]
    return port


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _demo_banner(base: str, client_keys: Sequence[str], *, simulated: bool,
                 admin_key: str | None = None) -> str:
    key = client_keys[0]
    upstream = "the embedded Seedance simulator" if simulated else "the given upstream"
    lines = [
        f"seedance-gateway {__version__} demo, upstream: {upstream}",
        f"  base URL:     {base}",
        *(f"  client key {i}: {k}" for i, k in enumerate(client_keys, start=1)),
        *([f"  admin key:    {admin_key}   (POST {base}/admin/keys, GET {base}/admin/usage)"]
          if admin_key else []),
        "",
        "Native (Ark) API with curl:",
        f"  curl -s {base}/api/v3/contents/generations/tasks \\",
        f"    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
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


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_or_exit(args.file)
    print(f"{args.file}: OK")
    print(f"  store: {masked_url(config.store.url.get_secret_value())}")
    for upstream in config.upstreams:
        keys = ", ".join(f"{k.name}={mask(k.secret)}" for k in upstream.keys)
        print(f"  upstream {upstream.name}: {upstream.base_url} (preset {upstream.preset}, "
              f"priority {upstream.priority}, "
              f"validation {'on' if upstream.validation else 'off'}, keys: {keys})")
        if upstream.proxy is not None:
            print(f"    proxy: {masked_url(upstream.proxy.get_secret_value())}")
        if upstream.ca_file is not None:
            print(f"    extra CA certificates: {upstream.ca_file}")
    for client in config.client_keys:
        cred = f"secret {mask(client.secret)}" if client.secret else "sha256 digest"
        print(f"  client key {client.name}: {cred}, models: {', '.join(client.models)}")
    catalogue = build_catalogue(config)
    for spec in catalogue.models():
        print(f"  model {spec.name} -> {spec.upstream}/{spec.upstream_model}: "
              f"{'/'.join(spec.resolutions)}, {spec.duration_min}-{spec.duration_max}s")
        fallbacks = catalogue.fallbacks(spec)
        if fallbacks:
            print("    fails over to " + ", ".join(f"{s.upstream}/{s.upstream_model}"
                                                  for s in fallbacks))
    for alias, target in sorted(catalogue.aliases().items()):
        print(f"  alias {alias} -> {target}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="seedance-gateway", description=__doc__)
    root.add_argument("--version", action="version", version=__version__)
    root.add_argument("--log-level", choices=LEVELS, default="info")
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway from a config file")
    serve.add_argument("--config", required=True, metavar="FILE")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    sim = sub.add_parser("simulate", help="run the built-in Seedance simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9090)
    sim.add_argument("--upstream-key", action="append", metavar="KEY")
    sim.add_argument("--delay", type=float, default=3.0, metavar="SECONDS")
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="gateway + embedded simulator, no config file needed")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--client-key", action="append", metavar="KEY")
    demo.add_argument("--upstream-url", metavar="URL")
    demo.add_argument("--upstream-key", metavar="KEY")
    demo.add_argument("--store", default="sqlite:///seedance-gateway-demo.db", metavar="URL")
    demo.add_argument("--sim-delay", type=float, default=3.0, metavar="SECONDS")
    demo.add_argument("--admin-key", metavar="KEY", help="enables /admin/* with this key")
    demo.set_defaults(func=cmd_demo)

    add_keys_parser(sub)
    add_usage_parser(sub)

    check = sub.add_parser("check-config", help="validate a config file and print it, masked")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=cmd_check_config)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "demo" and args.upstream_url and not args.upstream_key:
        parser().error("--upstream-url needs --upstream-key")
    configure_logging(args.log_level)
    result: int = args.func(args)
    return result
