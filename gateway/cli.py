"""Command line: serve, simulate, demo, check-config."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

from prometheus_client import disable_created_metrics
from starlette.applications import Starlette

from gateway import __version__
from gateway.app import create_app
from gateway.catalog import build_catalogue
from gateway.config import ARK_API_PATH, Config
from gateway.demo import add_demo_parser
from gateway.keys.cli import add_keys_parser, add_usage_parser, load_or_exit
from gateway.observability.logs import LEVELS, configure_logging
from gateway.secrets import mask, masked_url
from gateway.server import CannotListen, listen, raise_open_files_limit, run
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
    try:
        sock = listen(host, port)
    except CannotListen as exc:
        print(f"seedance-gateway serve: {exc}", file=sys.stderr, flush=True)
        return 1
    raise_open_files_limit()
    run(AppFactory(config, log_level=args.log_level), sock=sock, workers=workers,
        factory=True, limits=config.server)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    keys = tuple(args.upstream_key) if args.upstream_key else ("sim-upstream-key",)
    settings = SimulatorSettings(upstream_keys=keys, delay=args.delay)
    try:
        sock = listen(args.host, args.port)
    except CannotListen as exc:
        print(f"seedance-gateway simulate: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"Seedance simulator on http://{args.host}:{args.port}/api/v3 "
          f"(upstream keys: {', '.join(keys)})", flush=True)
    run(create_simulator_app(settings), sock=sock)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_or_exit(args.file)
    print(f"{args.file}: OK")
    print(f"  store: {masked_url(config.store.url.get_secret_value())}")
    for upstream in config.upstreams:
        keys = ", ".join(f"{k.name}={mask(k.secret)}" for k in upstream.keys)
        if upstream.api_path_added:
            print(f"  upstream {upstream.name}: base_url names no path; {ARK_API_PATH} added, "
                  "where Ark's API lives")
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

    add_demo_parser(sub)

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
