"""The face-crop cache: the codec round trip, crop shards written and read back through the cache's own writer
and reader, the kind in the spec, and a maps cache refusing crops (and the other way round)."""

from __future__ import annotations

import numpy as np
import pytest

from model.split import cache_kind_of
from pipeline.cache.crops import CropCodec, decode_crops, default_cache_kind, encode_crop, encode_crops
from pipeline.cache.read import open_cache
from pipeline.cache.schema import crop_schema, frames_table, shard_schema
from pipeline.cache.spec import spec_hash
from pipeline.cache.write import CacheSpecError, CacheWriter, ShardConfig
from tests.pipeline.cache.shards import spec

SIZE = 32  # small crops keep these tests fast


def face_like(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Smooth images (n, 3, size, size) uint8: a bright disc on a gradient, moving a little per frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    out = []
    for k in range(n):
        cx, cy = 0.5 + 0.05 * np.sin(k), 0.5 + 0.05 * np.cos(k)
        disc = ((x - cx) ** 2 + (y - cy) ** 2 < 0.08).astype(float)
        channels = [80 + 120 * disc + 40 * x, 60 + 100 * disc + 40 * y, 50 + 90 * disc]
        out.append(np.stack(channels) + rng.normal(0, 2, (3, size, size)))
    return np.clip(out, 0, 255).astype(np.uint8)


def crop_spec(codec: CropCodec = CropCodec()) -> dict:
    from pipeline.cache.spec import make_spec

    backbone = {"backbone": "mobilenetv4_conv_small", "weights_hash": "random-init", "input_size": SIZE}
    return make_spec(backbone | {"boundary": [[4, 3, 3], [6, 2, 2]]}, "float16", {"mode": "detect"},
                     crops=codec.spec())  # fmt: skip


@pytest.mark.parametrize("codec", [CropCodec("jpeg", 90), CropCodec("webp", 90), CropCodec("png")])
def test_codec_round_trip_keeps_the_crop(codec):
    crops = face_like(3)
    images = encode_crops(crops, np.array([True, False, True]), codec)
    assert images[1] is None and all(isinstance(b, bytes) for b in (images[0], images[2]))
    back = decode_crops(images, SIZE)
    assert back.shape == crops.shape and back.dtype == np.uint8
    assert not back[1].any()  # no face: a blank crop
    error = np.abs(back[[0, 2]].astype(int) - crops[[0, 2]]).mean()
    if codec.codec == "png":
        assert error == 0
    else:
        assert error < 4.0, error  # lossy, but a few grey levels on average


def test_lower_quality_makes_smaller_images():
    crop = face_like(1, size=64)[0]
    sizes = [len(encode_crop(crop, CropCodec("jpeg", q))) for q in (50, 90, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_a_stored_crop_of_another_size_is_a_clear_error():
    image = encode_crop(face_like(1, size=16)[0])
    with pytest.raises(ValueError, match="16x16.*32x32"):
        decode_crops([image], SIZE)


def test_bad_codec_settings_are_refused():
    with pytest.raises(ValueError, match="unknown crop codec"):
        CropCodec("gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality"):
        CropCodec("jpeg", 0)


def test_default_kind_follows_the_trainable_blocks():
    assert [default_cache_kind(n) for n in range(6)] == ["maps"] * 4 + ["crops"] * 2


def test_the_spec_records_the_kind_and_codec_and_a_map_spec_is_unchanged():
    maps, crops = spec(), crop_spec()
    assert cache_kind_of(maps) == "maps" and cache_kind_of({}) == "maps"  # older caches read as maps
    # a map spec records its kind, and hashes as one without it: older caches keep their hash
    assert spec_hash(maps) == spec_hash({k: v for k, v in maps.items() if k != "cache_kind"})
    assert cache_kind_of(crops) == "crops" and crops["crops"] == {
        "codec": "jpeg",
        "quality": 90,
        "subsampling": 0,
    }
    assert spec_hash(crop_spec(CropCodec("jpeg", 80))) != spec_hash(crops) != spec_hash(maps)
    assert shard_schema(crops) == crop_schema() and "s8" in shard_schema(maps).names


def crop_rows(n: int, start: int = 0):
    crops = face_like(n, seed=start)
    face = np.ones(n, bool)
    face[2] = False
    images = encode_crops(crops, face)
    table = frames_table(crop_schema(), np.arange(start, start + n), face, np.zeros((n, 4)), np.ones(n),
                         np.zeros((n, 5, 2)), np.where(face, "detected", "none"), (images,))  # fmt: skip
    return table, crops, face


def test_a_crop_shard_is_written_once_and_read_back_as_crops(tmp_path):
    writer = CacheWriter(str(tmp_path), crop_spec(), shard=ShardConfig(row_group_size=4))
    table, crops, face = crop_rows(10)
    shard = writer.opener().open("s", "s")
    shard.add(table.slice(4, 6))  # out of order, as the write stage may get them
    shard.add(table.slice(0, 4))
    shard.end(10)
    writer.record(shard.close())
    cache = open_cache(str(tmp_path))
    assert cache.kind == "crops" and cache.subjects() == ["s"] and cache.num_faces("s") == 9
    got = cache.read("s", 1, 7)  # decodes the rows asked for only
    (read,) = got.maps
    assert read.shape == (6, 3, SIZE, SIZE) and read.dtype == np.uint8
    assert got.face.tolist() == face[1:7].tolist() and not read[1].any()  # frame 2: no face, no crop
    assert np.abs(read[got.face].astype(int) - crops[1:7][got.face]).mean() < 4.0
    assert cache.read("s", maps=False).maps == ()


def test_a_maps_cache_and_a_crops_cache_refuse_each_other(tmp_path):
    CacheWriter(str(tmp_path / "maps"), spec())
    with pytest.raises(
        CacheSpecError, match=r"(?s)holds maps, this extraction makes crops.*cache_kind: 'maps' -> 'crops'"
    ):
        CacheWriter(str(tmp_path / "maps"), spec() | {"cache_kind": "crops", "crops": CropCodec().spec()})
    CacheWriter(str(tmp_path / "crops"), crop_spec())
    with pytest.raises(CacheSpecError, match=r"(?s)holds crops, this extraction makes maps.*--rebuild"):
        CacheWriter(
            str(tmp_path / "crops"),
            {k: v for k, v in crop_spec().items() if k not in ("cache_kind", "crops")},
        )
