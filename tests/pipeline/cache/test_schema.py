"""The shard schema's column types."""

from __future__ import annotations

import pyarrow as pa

from pipeline.cache.schema import frame_schema
from tests.pipeline.cache.shards import FULL


def test_schema_types_match_the_contract():
    schema = frame_schema(FULL)
    assert schema.field("index").type == pa.int32()
    assert schema.field("face").type == pa.bool_()
    for name in ("x1", "y1", "x2", "y2", "score"):
        assert schema.field(name).type == pa.float32()
    assert schema.field("landmarks").type == pa.list_(pa.field("element", pa.float32(), False), 10)
    assert schema.field("source").type == pa.string()
    assert schema.field("s8").type.list_size == 64 * 28 * 28
    assert schema.field("s16").type.list_size == 96 * 14 * 14
    assert schema.field("s8").type.value_type == pa.float16()
