"""The result store on an S3-compatible service (AWS, R2, MinIO, Volcengine TOS) via aiobotocore.

`s3://bucket/prefix`; the endpoint, region and credentials come from `results.s3` (secrets as
${ENV} references). A file is uploaded in `part_bytes` parts (multipart) as it arrives, so
memory holds one part at most, and the upload is completed only when the byte count matches;
otherwise it is aborted and nothing becomes visible.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from gateway.config import S3Config
from gateway.results.stores import LengthMismatch, StoredFile

READ_CHUNK = 1024 * 1024
MISSING = ("404", "NoSuchKey", "NotFound")


class S3Results:
    def __init__(self, url: str, config: S3Config) -> None:
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/") + "/" if parts.path.strip("/") else ""
        self.config = config
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        c = self.config
        self._client = await self._stack.enter_async_context(get_session().create_client(
            "s3", region_name=c.region or "us-east-1",
            endpoint_url=c.endpoint_url.get_secret_value() if c.endpoint_url else None,
            aws_access_key_id=c.access_key_id.get_secret_value() if c.access_key_id else None,
            aws_secret_access_key=(c.secret_access_key.get_secret_value()
                                   if c.secret_access_key else None),
        ))

    async def close(self) -> None:
        await self._stack.aclose()

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, length: int | None) -> int:
        part_bytes = self.config.part_bytes
        buffer, written, upload_id = bytearray(), 0, None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= part_bytes:
                    if upload_id is None:
                        started = await self._client.create_multipart_upload(
                            Bucket=self.bucket, Key=self._key(key))
                        upload_id = started["UploadId"]
                    body, buffer = bytes(buffer[:part_bytes]), buffer[part_bytes:]
                    sent = await self._client.upload_part(
                        Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                        PartNumber=len(parts) + 1, Body=body)
                    parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
            if length is not None and written != length:
                raise LengthMismatch(f"{written} bytes stored, {length} announced")
            if upload_id is None:
                await self._client.put_object(Bucket=self.bucket, Key=self._key(key),
                                              Body=bytes(buffer))
                return written
            if buffer:
                sent = await self._client.upload_part(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                    PartNumber=len(parts) + 1, Body=bytes(buffer))
                parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                MultipartUpload={"Parts": parts})
            return written
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            raise

    async def read(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile | None:
        size = await self.size(key)
        if size is None:
            return None
        last = size - 1 if end is None else min(end, size - 1)
        if last < start:
            return StoredFile(size, _empty())
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                                   Range=f"bytes={start}-{last}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        body = answer["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in body.iter_chunks(READ_CHUNK):
                    yield chunk
            finally:
                body.close()

        return StoredFile(size, chunks())

    async def size(self, key: str) -> int | None:
        try:
            head = await self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        return int(head["ContentLength"])

    async def get_small(self, key: str) -> bytes | None:
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data

    async def put_small(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        if exclusive:
            try:  # a conditional write: the first writer wins, the others read its object
                await self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                              IfNoneMatch="*")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                    return False
                raise
            return True
        await self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return True

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            found += [item["Key"][len(self.prefix):] for item in page.get("Contents", [])]
        return found


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing
