"""Result files from their signed URLs: streamed as they arrive, framed as the upstream framed
them, and a file that ends early is reported as truncated, never passed off as complete."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from gateway.upstream.session import USER_AGENT

MAX_REDIRECTS = 3
READ_BUFFER = 256 * 1024  # aiohttp pauses the socket past twice this much unread data
RELAYED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges",
                   "last-modified", "etag")


class FileTruncated(Exception):
    """The upstream stopped sending, or went silent, before the file was complete."""


class UpstreamFile:
    """An upstream file answer: `status`, the headers worth relaying, and `chunks()`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        # A file sent compressed although identity was asked for is relayed decoded, so its
        # length is no longer the upstream's.
        decoded = "Content-Encoding" in response.headers
        self.headers: dict[str, str] = {
            name: value for name in RELAYED_HEADERS
            if (value := response.headers.get(name)) is not None
            and not (decoded and name == "content-length")
        }

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises FileTruncated when it ends short or stalls."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                TimeoutError) as exc:
            raise FileTruncated(f"{type(exc).__name__}: {exc}") from None

    def release(self) -> None:
        """Give the connection back (or drop it, when the body was not read to its end)."""
        self._response.release()


async def open_file(session: aiohttp.ClientSession, url: URL, *, headers: Mapping[str, str],
                    proxy: URL | None, timeout: aiohttp.ClientTimeout) -> UpstreamFile:
    """GET a result file with the caller's `headers` (Range, If-Range): no credentials,
    identity encoding, a few redirects followed with the same headers."""
    response = await session.get(
        url, headers={**headers, "Accept-Encoding": "identity", "User-Agent": USER_AGENT},
        proxy=proxy, timeout=timeout, max_redirects=MAX_REDIRECTS, read_bufsize=READ_BUFFER,
    )
    return UpstreamFile(response)
