"""Where archived results live: a folder (file://) or an S3-compatible bucket (s3://).

Keys are relative paths (`cgt-…/video.mp4`). A file is written under a temporary name and
only becomes visible once it holds exactly the expected number of bytes, so a reader never
sees half a video.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gateway.config import ResultsConfig

READ_CHUNK = 1024 * 1024
WRITE_BUFFER = 4 * 1024 * 1024  # bytes gathered before one write, so each costs one thread hop
ABANDONED_PART_SECONDS = 600.0  # far beyond any file host's read timeout between two writes


class LengthMismatch(Exception):
    """The copy ended with a different number of bytes than the source announced."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An open stored file: its whole `size` and the bytes of the asked range."""

    size: int
    chunks: AsyncIterator[bytes]


class ResultStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, length: int | None) -> int:
        """Store the stream under `key`, visible only when complete (and `length` long when
        given, else LengthMismatch); the number of bytes stored."""
        ...

    async def read(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile | None:
        """Bytes `start`..`end` (inclusive; None: to the end) of `key`, None when absent."""
        ...

    async def size(self, key: str) -> int | None: ...

    async def get_small(self, key: str) -> bytes | None: ...

    async def put_small(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write a small object; with `exclusive`, only when absent (False if it was there)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with `prefix` (a folder path ending in `/`, or a task id)."""
        ...


class FileResults:
    """A folder; blocking file calls run in threads so the event loop keeps serving."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def open(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        return self.root / key

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, length: int | None) -> int:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(_remove_abandoned_parts, path)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        file = await asyncio.to_thread(open, temp, "wb")
        written, buffer = 0, bytearray()
        try:
            try:
                async for chunk in chunks:
                    buffer += chunk
                    if len(buffer) >= WRITE_BUFFER:
                        await asyncio.to_thread(file.write, buffer)
                        written += len(buffer)
                        buffer = bytearray()
                if buffer:
                    await asyncio.to_thread(file.write, buffer)
                    written += len(buffer)
            finally:
                await asyncio.to_thread(file.close)
            if length is not None and written != length:
                raise LengthMismatch(f"{written} bytes stored, {length} announced")
            await asyncio.to_thread(os.replace, temp, path)
        except BaseException:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            raise
        return written

    async def read(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile | None:
        try:
            file = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            return None
        size = os.fstat(file.fileno()).st_size
        last = size - 1 if end is None else min(end, size - 1)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                await asyncio.to_thread(file.seek, start)
                left = last - start + 1
                while left > 0:
                    chunk = await asyncio.to_thread(file.read, min(READ_CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk
            finally:
                file.close()

        return StoredFile(size, chunks())

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self._path(key))).st_size
        except FileNotFoundError:
            return None

    async def get_small(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            return None

    async def put_small(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        return await asyncio.to_thread(self._put_small, self._path(key), data, exclusive)

    @staticmethod
    def _put_small(path: Path, data: bytes, exclusive: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return True
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        temp.write_bytes(data)
        os.replace(temp, path)
        return True

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)
        # An emptied task folder goes too.
        parent = self._path(key).parent
        if parent != self.root:
            try:
                await asyncio.to_thread(parent.rmdir)
            except OSError:
                pass

    async def keys(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._keys, prefix)

    def _keys(self, prefix: str) -> list[str]:
        folder, _, start = prefix.rpartition("/")
        found: list[str] = []
        base = self.root / folder if folder else self.root
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.name.startswith(start) or entry.name.startswith("."):
                continue
            key = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_dir():
                found += [f"{key}/{e.name}" for e in os.scandir(entry.path)
                          if e.is_file() and not e.name.startswith(".")]
            else:
                found.append(key)
        return found


def _remove_abandoned_parts(path: Path) -> None:
    """Temporary files of `path` no write has touched for ABANDONED_PART_SECONDS: left by a
    process killed mid-copy, they would otherwise stay for good (a live copy, here or on
    another replica, writes every WRITE_BUFFER bytes)."""
    cutoff = time.time() - ABANDONED_PART_SECONDS
    for part in path.parent.glob(f".{path.name}.*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except FileNotFoundError:
            pass


def open_results(config: ResultsConfig, store_url: str) -> ResultStore:
    """The result store the config names, or the default beside the task store."""
    url = config.store.get_secret_value() if config.store is not None else None
    if url is None:
        return FileResults(default_folder(store_url))
    if url.startswith("s3://"):
        from gateway.results.s3 import S3Results  # only S3 users need aiobotocore loaded

        return S3Results(url, config.s3)
    return FileResults(Path(unquote(urlsplit(url).path)))


def default_folder(store_url: str) -> Path:
    """A `results` folder beside the SQLite file; ./results for Redis or an in-memory DB."""
    if store_url.startswith("sqlite://"):  # the path as gateway/store/sqlite.py reads it
        rest = store_url.removeprefix("sqlite://")
        path = rest[1:] if rest.startswith("/") else rest
        if path and path != ":memory:":
            return Path(path).parent / "results"
    return Path("results")
