"""How an upstream is reached: one aiohttp session, its TLS trust and its proxy choice."""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

import aiohttp
from yarl import URL

# Idle connections are dropped before servers typically drop them (uvicorn after 5 s), so a
# create is rarely written on a connection the server is closing at that moment.
KEEPALIVE_SECONDS = 4.0
# Header limits per answer: Ark sends ~15 short headers; anything near these is hostile.
MAX_HEADER_LINE = 8190
MAX_HEADERS = 100
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's connection attempt delay
DNS_CACHE_SECONDS = 10
USER_AGENT = "seedance-gateway"
_PROXY_CACHE_LIMIT = 1024


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust store, plus the operator's own CA certificates when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def open_session(*, max_connections: int, tls: ssl.SSLContext) -> aiohttp.ClientSession:
    """The session every call of one upstream shares (task calls and result files).

    The proxy is chosen per request by :class:`ProxyChoice`, not with ``trust_env``: that
    costs a thread hop per request and would add ``~/.netrc`` credentials to signed URLs.
    No cookies are kept, so nothing one key's answer sets travels with another key's call.
    """
    connector = aiohttp.TCPConnector(
        limit=0,  # per host instead: result files come from other hosts than the task API
        limit_per_host=max_connections,
        ssl=tls,
        keepalive_timeout=KEEPALIVE_SECONDS,
        happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
        ttl_dns_cache=DNS_CACHE_SECONDS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
        max_headers=MAX_HEADERS,
        skip_auto_headers=("User-Agent",),
    )


class ProxyChoice:
    """Which proxy a URL goes through: the upstream's `proxy`, else (unless `use_environment`
    is off) the environment's HTTP_PROXY / HTTPS_PROXY / ALL_PROXY; a host NO_PROXY lists goes
    direct either way.

    The environment is read once, when the upstream opens; answers are cached per origin.
    """

    def __init__(self, configured: str | None, *, use_environment: bool = True) -> None:
        self._configured = URL(configured) if configured else None
        self._environment = urllib.request.getproxies() if use_environment else {}
        self._cache: dict[tuple[str, str], URL | None] = {}

    def for_url(self, url: URL) -> URL | None:
        origin = (url.scheme, url.host_port_subcomponent or "")
        if origin in self._cache:
            return self._cache[origin]
        proxy = self._choose(url)
        if len(self._cache) >= _PROXY_CACHE_LIMIT:
            self._cache.clear()
        self._cache[origin] = proxy
        return proxy

    def _choose(self, url: URL) -> URL | None:
        env = self._environment
        if any(urllib.request.proxy_bypass(host)
               for host in (url.host or "", url.host_port_subcomponent or "")):
            return None
        if self._configured is not None:
            return self._configured
        found = URL(env.get(url.scheme) or env.get("all") or "")
        # aiohttp speaks to http(s) proxies only; a socks ALL_PROXY is for other programs.
        return found if found.scheme in ("http", "https") else None
