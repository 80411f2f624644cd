"""Building blocks without HTTP: padded MP4 layout, chunking, Range parsing and URL signing."""

from __future__ import annotations

import struct

import pytest

from gateway.simulator.files import RangeNotSatisfiable, byte_range
from gateway.simulator.media import CHUNK_SIZE, load_sample_video, padded_video
from gateway.simulator.signing import Signature, UrlSigner

from .simkit import mp4_boxes

SAMPLE = load_sample_video()
ZEROS = bytes(CHUNK_SIZE)


def test_sample_is_a_small_faststart_mp4() -> None:
    kinds = [kind for kind, _, _ in mp4_boxes(lambda o, n: SAMPLE[o:o + n], len(SAMPLE))]
    assert kinds[0] == "ftyp"
    assert kinds.index("moov") < kinds.index("mdat")  # playable while still downloading
    assert len(SAMPLE) < 100_000


@pytest.mark.parametrize(("target", "size"), [
    (0, len(SAMPLE)),
    (len(SAMPLE) - 1, len(SAMPLE)),  # never truncated
    (len(SAMPLE) + 1, len(SAMPLE) + 8),  # too small for a box header: grows to fit one
    (len(SAMPLE) + 8, len(SAMPLE) + 8),
    (10_000_000, 10_000_000),
])
def test_padding_sizes(target: int, size: int) -> None:
    stored = padded_video(SAMPLE, target)
    assert stored.size == size
    if size > len(SAMPLE):
        body = b"".join(stored.chunks(0, stored.size, ZEROS))
        boxes = mp4_boxes(lambda o, n: body[o:o + n], len(body))
        assert boxes[-1] == ("free", len(SAMPLE), size - len(SAMPLE))


def test_padding_beyond_4_gib_uses_a_64_bit_box_size() -> None:
    target = 5 * 1024**3
    stored = padded_video(SAMPLE, target)
    assert stored.size == target

    def read(offset: int, n: int) -> bytes:
        return b"".join(stored.chunks(offset, min(offset + n, stored.size), ZEROS))

    boxes = mp4_boxes(read, stored.size)
    assert boxes[-1] == ("free", len(SAMPLE), target - len(SAMPLE))
    assert struct.unpack(">I4s", read(len(SAMPLE), 8)) == (1, b"free")


def test_chunks_are_bounded_and_reuse_one_zero_buffer() -> None:
    stored = padded_video(SAMPLE, 3 * CHUNK_SIZE + 123)
    chunks = list(stored.chunks(10, stored.size, ZEROS))
    assert max(map(len, chunks)) <= CHUNK_SIZE
    assert sum(map(len, chunks)) == stored.size - 10
    assert sum(chunk is ZEROS for chunk in chunks) >= 2


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-0", (0, 1)),
    ("bytes=10-", (10, 100)),
    ("bytes=-30", (70, 100)),
    ("bytes=-300", (0, 100)),
    ("bytes=90-1000", (90, 100)),
    ("bytes=5-2", None),  # invalid: ignored
    ("bytes=0-1,4-5", None),  # several ranges: whole file
    ("items=0-1", None),
    ("bytes=-", None),
    ("bytes=a-b", None),
])
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_byte_range(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)


def test_signatures_bind_path_and_window() -> None:
    signer = UrlSigner(b"secret")
    query = dict(pair.split("=") for pair in signer.query("/files/a", now=1000, ttl=60).split("&"))
    assert signer.check("/files/a", query, now=1059) is Signature.VALID
    assert signer.check("/files/a", query, now=1060) is Signature.EXPIRED
    assert signer.check("/files/b", query, now=1000) is Signature.INVALID
    assert UrlSigner(b"other").check("/files/a", query, now=1000) is Signature.INVALID
    assert signer.check("/files/a", {}, now=1000) is Signature.INVALID
