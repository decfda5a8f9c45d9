"""The face-crop cache's codec: aligned face crops <-> compressed images, one per frame.

A crop cache (`--cache-kind crops`) stores what the backbone stage would see, the aligned S x S RGB crops,
instead of the frozen part's maps; training and prediction run the frozen part on the fly
(`pipeline.temporal.crops`). That pays where the maps outweigh the face itself: from 4 trainable blocks on
the cached map is the 32 x 56 x 56 output of block 0 (200 kB a frame in float16) or the 32 x 112 x 112
stem output (800 kB), against 15 kB for a JPEG of the 224 x 224 crop.

Codec choice, measured on 256 aligned face crops of the synthetic set at 224 px (`python -m
jobs.bench.crops`; README "Face-crop cache"), by bytes a frame and the cosine between the frozen maps (s8,
s16 of the random-init MobileNetV4-small, fp32) of the decoded crops and of the originals, median / min:

    JPEG 4:2:0 quality 75 / 85 / 90 / 95   7.4 / 9.5 / 11.7 / 16.3 kB   0.9986 / 0.9990 / 0.9991 / 0.9993
    JPEG 4:4:4 quality 75 / 85 / 90 / 95   9.2 / 12.1 / 14.9 / 21.1 kB  0.9992 / 0.9995 / 0.9996 / 0.9998
                                                                        (min at 90: 0.99907)
    WebP quality 90                        7.6 kB                       0.9991, but 20 ms to encode, 5 to decode
    PNG                                    63 kB                        1 (lossless)

The error in the maps comes mostly from the chroma subsampling: 4:4:4 at quality 75 is closer than 4:2:0
at 95, and 4:4:4 at 90 has half the error of 4:2:0 at 95 in fewer bytes; past 90 the gains flatten. So
the default is JPEG 4:4:4 at quality 90: 15 kB a frame (a quarter of today's zstd-compressed map cache,
67 kB; a ninth of the raw s8 + s16 maps, 138 kB; a thirteenth of block 0's 32 x 56 x 56 map at N = 4,
200 kB raw), 1-2 ms to encode or decode on this CPU. WebP is half the size, but its encoding would slow
the extraction and its decoding the training loader.

Frames without a face keep their row, with no image (null), as in a map cache their maps are zeros;
decoding gives an all-zero crop there.

May import: numpy, PIL.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

CacheKind = Literal["maps", "crops"]
CACHE_KINDS: tuple[CacheKind, ...] = ("maps", "crops")
Codec = Literal["jpeg", "webp", "png"]
CODECS: tuple[Codec, ...] = ("jpeg", "webp", "png")
CROPS_FROM_BLOCKS = 4  # trainable blocks from which the crop cache is the default (its maps outweigh a crop)


def default_cache_kind(trainable_blocks: int) -> CacheKind:
    """The cache kind for `trainable_blocks` trainable backbone blocks: crops from `CROPS_FROM_BLOCKS` on,
    where the cached map (block 0's 32 x 56 x 56 output or the stem's 32 x 112 x 112) outweighs a JPEG
    crop ten to fifty times; maps below, where they are smaller or close and save the frozen part's
    compute."""
    return "crops" if trainable_blocks >= CROPS_FROM_BLOCKS else "maps"


@dataclass(frozen=True)
class CropCodec:
    """How a crop cache compresses its crops (`spec()` is what the cache spec records of it)."""

    codec: Codec = "jpeg"  # image format of a stored crop
    quality: int = 90  # JPEG / WebP quality 1-100 (PNG is lossless: ignored); why 90: the module docstring
    subsampling: int = (
        0  # JPEG chroma subsampling (PIL's code): 0 = 4:4:4, 2 = 4:2:0 (0.8x the bytes, 2.5x the error)
    )

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"unknown crop codec {self.codec!r}; use one of {', '.join(CODECS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"crop quality must be within 1-100, got {self.quality}")

    def spec(self) -> dict[str, Any]:
        """The settings that decide the stored pixels."""
        if self.codec == "png":
            return {"codec": "png"}
        spec: dict[str, Any] = {"codec": self.codec, "quality": self.quality}
        if self.codec == "jpeg":
            spec["subsampling"] = self.subsampling
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CropCodec:
        return cls(
            codec=spec.get("codec", "jpeg"),
            quality=int(spec.get("quality", cls.quality)),
            subsampling=int(spec.get("subsampling", cls.subsampling)),
        )


def encode_crop(crop: np.ndarray, codec: CropCodec = CropCodec()) -> bytes:
    """One crop (3, S, S) uint8 RGB -> the bytes of its image."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(np.asarray(crop, np.uint8).transpose(1, 2, 0)), "RGB")
    out = io.BytesIO()
    if codec.codec == "jpeg":
        image.save(out, "JPEG", quality=codec.quality, subsampling=codec.subsampling)
    elif codec.codec == "webp":
        image.save(out, "WEBP", quality=codec.quality, method=4)
    else:
        image.save(out, "PNG", compress_level=6)
    return out.getvalue()


def encode_crops(
    crops: np.ndarray,  # (n, 3, S, S) uint8
    face: np.ndarray | None = None,  # (n,) bool: rows that hold a face; others get no image (None)
    codec: CropCodec = CropCodec(),
) -> list[bytes | None]:
    """The stored images of `n` crops, None where a row has no face."""
    face = np.ones(len(crops), bool) if face is None else np.asarray(face, bool)
    return [encode_crop(c, codec) if f else None for c, f in zip(crops, face, strict=True)]


def decode_crop(data: bytes, size: int) -> np.ndarray:
    """The bytes of one stored crop -> (3, size, size) uint8 RGB; a clear error when it is not one."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"))
    if rgb.shape != (size, size, 3):
        raise ValueError(
            f"a stored crop is {rgb.shape[1]}x{rgb.shape[0]}, the cache's crops are {size}x{size}"
        )
    return rgb.transpose(2, 0, 1)


def decode_crops(images: Sequence[bytes | None], size: int) -> np.ndarray:
    """Stored images (None where no face) -> crops (n, 3, size, size) uint8, all zero where None."""
    out = np.zeros((len(images), 3, size, size), np.uint8)
    for k, data in enumerate(images):
        if data is not None:
            out[k] = decode_crop(data, size)
    return out
