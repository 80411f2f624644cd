"""The SSRF guard: webhook and callback URLs must not reach the gateway's own network.

Checked when a URL is given (a key's webhook_url, a task's callback_url) and again at every
delivery, on the addresses the connection actually uses (a name may resolve elsewhere later).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class PrivateAddress(Exception):
    """The URL's host is (or resolves to) a loopback, private or link-local address."""


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
            or ip.is_reserved or ip.is_multicast)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook target (its form), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    if len(url) > 2048:
        return "is too long (at most 2048 characters)"
    return None


async def check_public(url: str) -> None:
    """Raises PrivateAddress when the URL's host resolves to any non-public address (or does
    not resolve: a name that resolves nowhere now is refused rather than trusted later)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None,
                                                             type=socket.SOCK_STREAM)
    except OSError:
        raise PrivateAddress(f"{host} does not resolve") from None
    if not infos or any(_private(str(info[4][0])) for info in infos):
        raise PrivateAddress(f"{host} resolves to a loopback, private or link-local address")


class PublicResolver(AbstractResolver):
    """aiohttp resolver that refuses private addresses at connect time (no DNS rebinding)."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if not results or any(_private(r["host"]) for r in results):
            raise PrivateAddress(f"{host} resolves to a loopback, private or link-local address")
        return results

    async def close(self) -> None:
        await self._resolver.close()
