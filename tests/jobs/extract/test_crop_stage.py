"""The crop stage of a crop cache: crops -> images, empty bytes where no face (a whole faceless batch too),
stored as nulls by the shard's table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jobs.extract.stages.crops import CropStage
from pipeline.cache.crops import decode_crops
from pipeline.cache.schema import crop_schema, frames_table
from tests.pipeline.cache.test_crops import face_like


def batch(face):
    n = len(face)
    return {"crops": face_like(n), "face": np.asarray(face, bool), "index": np.arange(n, dtype=np.int32)}


def test_images_replace_the_crops_and_faceless_rows_get_empty_bytes():
    out = CropStage()(batch([True, False, True]))
    assert "crops" not in out and out["crop"].dtype == object and out["index"].tolist() == [0, 1, 2]
    assert out["crop"][1] == b"" and all(len(b) > 100 for b in out["crop"][[0, 2]])
    assert out["t_backbone"].shape == (3,) and (out["t_backbone"] > 0).all()
    faceless = CropStage()(batch([False, False]))["crop"]
    assert faceless.tolist() == [b"", b""]  # bytes all the same: one column type for every block


def test_the_shard_stores_no_image_as_null():
    out = CropStage()(batch([True, False]))
    n = 2
    table = frames_table(crop_schema(), np.arange(n), out["face"], np.zeros((n, 4)), np.ones(n),
                         np.zeros((n, 5, 2)), ["detected", "none"], (out["crop"],))  # fmt: skip
    assert table["crop"].null_count == 1 and table["crop"].type == pa.binary()
    crops = decode_crops(table["crop"].to_pylist(), 32)
    assert crops[0].any() and not crops[1].any()
