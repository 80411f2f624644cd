"""Result file contents: the embedded sample MP4 (optionally padded) and last-frame PNGs."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files

# assets/sample.mp4 was made once (ffmpeg is not needed at run time) with:
#   ffmpeg -f lavfi -i testsrc=size=320x180:rate=24 -f lavfi -i sine=frequency=440:sample_rate=24000
#     -t 2 -c:v libx264 -pix_fmt yuv420p -profile:v baseline -crf 30 -c:a aac -b:a 32k -ac 1
#     -movflags +faststart -map_metadata -1 -fflags +bitexact -flags:v +bitexact
#     -flags:a +bitexact sample.mp4
# (2 s, 320×180, H.264 baseline + mono AAC, moov first, 20,792 bytes.)

CHUNK_SIZE = 256 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_sample_video() -> bytes:
    return files("gateway.simulator").joinpath("assets", "sample.mp4").read_bytes()


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A result file: ``head`` followed by ``zero_tail`` zero bytes, never held whole in memory."""

    head: bytes
    zero_tail: int = 0

    @property
    def size(self) -> int:
        return len(self.head) + self.zero_tail

    def chunks(self, start: int, stop: int, zeros: bytes) -> Iterator[bytes]:
        """Bytes ``[start, stop)`` in chunks of at most ``len(zeros)``, reusing ``zeros``."""
        if start < len(self.head):
            for offset in range(start, min(stop, len(self.head)), len(zeros)):
                yield self.head[offset:min(offset + len(zeros), stop, len(self.head))]
            start = len(self.head)
        remaining = stop - start
        while remaining >= len(zeros):
            yield zeros
            remaining -= len(zeros)
        if remaining > 0:
            yield zeros[:remaining]


def padded_video(sample: bytes, target: int) -> StoredObject:
    """The sample followed by a top-level ``free`` box bringing the file to ``target`` bytes.

    Players skip ``free`` boxes, so the result stays playable. A target at most the sample's
    size serves the sample as is; one too close to it for an 8-byte box header grows to fit one.
    """
    padding = target - len(sample)
    if padding <= 0:
        return StoredObject(sample)
    padding = max(padding, 8)
    if padding <= 0xFFFFFFFF:
        header = struct.pack(">I4s", padding, b"free")
    else:  # size field 1 means a 64-bit "largesize" follows the type
        header = struct.pack(">I4sQ", 1, b"free", padding)
    return StoredObject(sample + header, padding - len(header))


def gradient_png(width: int, height: int) -> bytes:
    """An RGB PNG with a left-to-right colour gradient, the same on every row."""
    row = bytearray([0])  # filter type None for the first row
    for x in range(width):
        shade = x * 255 // max(width - 1, 1)
        row += bytes((shade, 96, 255 - shade))
    # Every later row is filter type Up with all-zero differences, so it compresses to nothing.
    same_as_above = b"\x02" + bytes(3 * width)
    compressor = zlib.compressobj(6)
    parts = [compressor.compress(bytes(row))]
    parts.extend(compressor.compress(same_as_above) for _ in range(height - 1))
    parts.append(compressor.flush())
    data = b"".join(parts)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


class MediaLibrary:
    """The result files one simulator serves; PNGs are built once per output size."""

    __slots__ = ("_sample", "_zeros", "_frames")

    def __init__(self, sample: bytes) -> None:
        self._sample = sample
        self._zeros = bytes(CHUNK_SIZE)
        self._frames: dict[tuple[int, int], StoredObject] = {}

    @property
    def zeros(self) -> bytes:
        return self._zeros

    def video(self, target_bytes: int) -> StoredObject:
        return padded_video(self._sample, target_bytes)

    def last_frame(self, width: int, height: int) -> StoredObject:
        frame = self._frames.get((width, height))
        if frame is None:
            frame = self._frames[(width, height)] = StoredObject(gradient_png(width, height))
        return frame
