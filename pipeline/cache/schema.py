"""The feature cache's row format: the Arrow schemas of shards, the manifest and the failures table, and the
JSON description every shard carries.

A shard holds one subject: one row per decoded frame (`index` 0-based), the face record of that frame and
the frozen backbone's cached maps, one column each, named as the spec's `cached_names` say (N = 2: `s8`
stride 8, `s16` stride 16; see `model.split`) as fixed-size lists of float16; a crop cache's shard
(`cache_kind` "crops") holds the aligned face crop instead, as the bytes of a compressed image (`crop`,
null where the frame has no face; `pipeline.cache.crops`). The key `lwaffect` of the Parquet footer's key-value metadata holds a JSON document that makes
the shard self-describing: the cache spec (`pipeline.cache.spec`), its hash, the lwaffect version,
subject, video, frame and face counts and the `complete` flag. The footer is written last, when a shard
is closed, so the counts are those of the whole shard.

May import: numpy, pyarrow, model (the version, model.split), pipeline.cache.spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from model import __version__
from model.split import cache_kind_of
from pipeline.cache.spec import MAP_NAMES, map_names, spec_hash

META_KEY = "lwaffect"  # key of the shard's JSON description in its Parquet footer
MAP_DTYPES = {"float16": pa.float16()}  # supported stored dtypes of the maps
ROW_COLUMNS = ("index", "face", "x1", "y1", "x2", "y2", "score", "landmarks", "source")  # before the maps
CROP_COLUMN = "crop"  # a crop cache's column: the compressed image of the aligned face crop


def _record_fields() -> list[pa.Field]:
    return [
        pa.field("index", pa.int32(), nullable=False),
        pa.field("face", pa.bool_(), nullable=False),
        *(pa.field(name, pa.float32(), nullable=False) for name in ("x1", "y1", "x2", "y2", "score")),
        pa.field(
            "landmarks", pa.list_(pa.field("element", pa.float32(), nullable=False), 10), nullable=False
        ),
        pa.field("source", pa.string(), nullable=False),
    ]


def crop_schema() -> pa.Schema:
    """The Arrow schema of a crop cache's shard: the face record and the crop's image (null: no face)."""
    return pa.schema([*_record_fields(), pa.field(CROP_COLUMN, pa.binary(), nullable=True)])


def shard_schema(spec: Mapping[str, Any]) -> pa.Schema:
    """The Arrow schema of the shards of a cache spec: maps or crops (`model.split.cache_kind_of`)."""
    if cache_kind_of(spec) == "crops":
        return crop_schema()
    return frame_schema(spec["boundary"], spec["dtype"], map_names(spec))


def frame_schema(
    boundary: Sequence[Sequence[int]], dtype: str = "float16", names: Sequence[str] = MAP_NAMES
) -> pa.Schema:
    """The Arrow schema of a shard for cached map shapes `((C, H, W), ...)` named `names`."""
    if len(boundary) != len(names):
        raise ValueError(f"expected {len(names)} cached maps ({', '.join(names)}), got shapes {boundary}")
    value = MAP_DTYPES[dtype]
    fields = _record_fields()
    for name, shape in zip(names, boundary, strict=True):
        size = int(np.prod(shape))
        fields.append(
            pa.field(name, pa.list_(pa.field("element", value, nullable=False), size), nullable=False)
        )
    return pa.schema(fields)


def map_columns(schema: pa.Schema) -> list[str]:
    """The names of a shard schema's map columns, in order."""
    return schema.names[len(ROW_COLUMNS) :]


def _fixed_list(values: np.ndarray, field: pa.Field) -> pa.FixedSizeListArray:
    # (n, ...) -> n fixed-size lists of prod(...) values, zero copy where the dtype already matches
    flat = np.ascontiguousarray(values).reshape(-1)
    inner = pa.array(flat, type=field.type.value_type)
    return pa.FixedSizeListArray.from_arrays(inner, type=field.type)


def frames_table(
    schema: pa.Schema,
    index: np.ndarray,  # (n,) int
    face: np.ndarray,  # (n,) bool
    box: np.ndarray,  # (n, 4) x1, y1, x2, y2 in full-frame pixels (a face cut by the edge: its whole box)
    score: np.ndarray,  # (n,)
    landmarks: np.ndarray,  # (n, 5, 2) or (n, 10)
    source: Sequence[str],  # (n,) one of pipeline.faces.track.SOURCES
    maps: Sequence[Any],  # ((n, C, H, W), ...) in the schema's map columns' order; a crop shard: (n images,)
) -> pa.Table:
    """Rows of a shard from numpy arrays (maps are cast to the schema's dtype; a crop shard's one column
    holds the bytes of each crop's image, None or empty where there is no face: stored as null)."""
    n = len(index)
    box = np.asarray(box, np.float32).reshape(n, 4)
    columns: dict[str, pa.Array] = {
        "index": pa.array(np.asarray(index, np.int32)),
        "face": pa.array(np.asarray(face, bool)),
        "x1": pa.array(box[:, 0]),
        "y1": pa.array(box[:, 1]),
        "x2": pa.array(box[:, 2]),
        "y2": pa.array(box[:, 3]),
        "score": pa.array(np.asarray(score, np.float32).reshape(n)),
        "landmarks": _fixed_list(np.asarray(landmarks, np.float32).reshape(n, 10), schema.field("landmarks")),
        "source": pa.array([str(s) for s in source], pa.string()),
    }
    if CROP_COLUMN in schema.names:
        (images,) = maps
        columns[CROP_COLUMN] = pa.array(
            [b or None for b in images], pa.binary()
        )  # no image (None, b""): null
        return pa.Table.from_pydict(columns, schema=schema)
    for name, values in zip(map_columns(schema), maps, strict=True):
        dtype = schema.field(name).type.value_type.to_pandas_dtype()
        columns[name] = _fixed_list(
            np.asarray(values).astype(dtype, copy=False).reshape(n, -1), schema.field(name)
        )
    return pa.Table.from_pydict(columns, schema=schema)


def shard_metadata(
    spec: Mapping[str, Any], subject: str, video: str, frames: int, faces: int, complete: bool
) -> dict[str, str]:
    """The key-value metadata of a shard's Parquet footer: `META_KEY` -> its JSON description."""
    doc = {
        "spec": spec,
        "spec_hash": spec_hash(spec),
        "version": __version__,
        "subject": subject,
        "video": video,
        "frames": int(frames),
        "faces": int(faces),
        "complete": bool(complete),
    }
    return {META_KEY: json.dumps(doc)}


def read_metadata(meta: pq.FileMetaData) -> dict[str, Any]:
    """The JSON description in a shard's Parquet footer (`pq.read_metadata`'s); empty when absent."""
    raw = (meta.metadata or {}).get(META_KEY.encode())
    return json.loads(raw) if raw else {}


MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("subject", pa.string()),
        pa.field("video", pa.string()),
        pa.field("frames", pa.int64()),
        pa.field("faces", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("spec_hash", pa.string()),
        pa.field("file", pa.string()),  # shard path relative to the cache root
    ]
)


@dataclass(frozen=True)
class ManifestEntry:
    """One complete shard: a row of the manifest."""

    subject: str  # subject name
    video: str  # video name
    frames: int  # rows = decoded frames
    faces: int  # frames with a face
    bytes: int  # shard file size
    spec_hash: str  # `pipeline.cache.spec.spec_hash` of the spec it was made with
    file: str  # shard path relative to the cache root


FAILURES_SCHEMA = pa.schema(  # inputs an extraction or a run could not process
    [
        pa.field("video", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("stage", pa.string()),  # the stage that failed: decode, faces, ... (`lwaffect run`: predict)
        pa.field("reason", pa.string()),
    ]
)
