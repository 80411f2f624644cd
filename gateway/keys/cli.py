"""`seedance-gateway keys …`: the key lifecycle from the command line, on the configured store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.catalog import build_catalogue
from gateway.config import Config, ConfigError, load_config
from gateway.errors import GatewayError
from gateway.keys.lifecycle import KeyLifecycle, usage_report
from gateway.store import GatewayStore, open_store


def load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def cmd_keys(args: argparse.Namespace) -> int:
    """Key lifecycle against the configured store, as the admin API does it."""
    config = load_or_exit(args.config)
    actor = f"cli:{getpass.getuser()}"
    policy = {field: getattr(args, field) for field in _POLICY_FLAGS
              if getattr(args, field, None) is not None}
    if getattr(args, "models", None):
        policy["models"] = args.models
    if getattr(args, "disable", None) is not None:
        policy["disabled"] = args.disable

    async def work(store: GatewayStore) -> Any:
        keys = KeyLifecycle(store, config.client_keys, time.time,
                            catalogue=build_catalogue(config))
        if args.action == "create":
            return await keys.create({"name": args.name, **policy}, actor=actor)
        if args.action == "list":
            return await keys.list()
        if args.action == "get":
            return await keys.get(args.name)
        if args.action == "update":
            return await keys.update(args.name, policy, actor=actor)
        if args.action == "revoke":
            return await keys.revoke(args.name, actor=actor)
        return await keys.rotate(args.name, actor=actor)

    result = _on_store(config, work)
    if result is _FAILED:
        return 1
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if isinstance(result, dict) and "key" in result:
        print("The key is shown only now; store it safely.", file=sys.stderr)
    return 0


_POLICY_FLAGS = ("rpm", "max_in_flight", "daily_tokens", "monthly_tokens", "daily_cost",
                 "monthly_cost", "expires_at")
_FAILED = object()


def _on_store(config: Config, work: Callable[[GatewayStore], Awaitable[Any]]) -> Any:
    """Run `work` on the configured store; a refusal is printed and returns _FAILED."""

    async def run() -> Any:
        store = open_store(config.store.url.get_secret_value())
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except GatewayError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return _FAILED


def cmd_usage(args: argparse.Namespace) -> int:
    config = load_or_exit(args.config)

    async def work(store: GatewayStore) -> Any:
        return await usage_report(store, since=args.since, until=args.until, key=args.key,
                                  now=time.time(), currency=config.prices.currency)

    report = _on_store(config, work)
    if report is _FAILED:
        return 1
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    currency = report["currency"] or ""
    print(f"usage {report['from']} .. {report['to']}" + (f" (cost in {currency})"
                                                          if currency else ""))
    print(f"{'day':<12}{'key':<20}{'model':<36}{'tasks':>7}{'tokens':>14}{'cost':>16}")
    for row in report["data"]:
        print(f"{row['day']:<12}{row['key']:<20}{row['model']:<36}{row['tasks']:>7}"
              f"{row['tokens']:>14}{_cost(row['cost']):>16}")
    for month in report["months"]:
        print(f"{month['month']:<12}{month['key']:<20}{'':<36}{month['tasks']:>7}"
              f"{month['tokens']:>14}{_cost(month['cost']):>16}")
    for total in report["totals"]:
        print(f"{'total':<12}{total['key']:<20}{'':<36}{total['tasks']:>7}{total['tokens']:>14}"
              f"{_cost(total['cost']):>16}")
    return 0


def _cost(value: float | None) -> str:
    """A cost as the table shows it: 6 decimals at most, `-` for an unpriced model."""
    return "-" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def add_usage_parser(sub: Any) -> None:
    usage = sub.add_parser("usage", help="tasks, tokens and cost by key, model and day")
    usage.add_argument("--config", required=True, metavar="FILE")
    usage.add_argument("--from", dest="since", metavar="YYYY-MM-DD")
    usage.add_argument("--to", dest="until", metavar="YYYY-MM-DD")
    usage.add_argument("--key", metavar="NAME")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=cmd_usage)


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update, revoke and rotate client keys")
    keys.add_argument("--config", required=True, metavar="FILE")
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every key (config keys too), secrets never shown")
    for action in ("get", "revoke", "rotate"):
        actions.add_parser(action).add_argument("name")
    for action in ("create", "update"):
        parser = actions.add_parser(action)
        parser.add_argument("name")
        parser.add_argument("--models", nargs="+", metavar="MODEL")
        parser.add_argument("--rpm", type=int)
        parser.add_argument("--max-in-flight", type=int, dest="max_in_flight")
        parser.add_argument("--daily-tokens", type=int, dest="daily_tokens")
        parser.add_argument("--monthly-tokens", type=int, dest="monthly_tokens")
        parser.add_argument("--daily-cost", type=float, dest="daily_cost",
                            help="budget in prices.currency per UTC day")
        parser.add_argument("--monthly-cost", type=float, dest="monthly_cost")
        parser.add_argument("--expires-at", dest="expires_at",
                            help="unix seconds or ISO 8601 (2026-12-31T00:00:00Z)")
        if action == "update":
            state = parser.add_mutually_exclusive_group()
            state.add_argument("--disable", dest="disable", action="store_true", default=None)
            state.add_argument("--enable", dest="disable", action="store_false")
    keys.set_defaults(func=cmd_keys)
