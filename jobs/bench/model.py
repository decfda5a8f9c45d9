"""Benchmark of the feature cache and the temporal model: cache write / read, map fidelity, train, predict.

The cache figures come from writing the backbone maps of the benchmark's face crops as one subject's shard
with the pipeline's writer (streamed into the shard, renamed into place) and reading it back whole
(`FeatureCache.read`, a warm read: the file is in the page cache). Bytes per frame are the shard's size on
disk over its rows; the raw figure is the uncompressed float16 maps. The fidelity figure is the cosine
between each frame's cached maps (bf16 where the pipeline uses it, stored as float16) and the same frame's
float32 maps. Beside the single write, the design it replaced is timed turn about with it, in CPU seconds
per frame: each write call's rows written to a part file (lz4), read back by the driver and written again
into the shard.

The temporal model runs on windows of that shard: optimiser steps (`pipeline.temporal.optim.train_step`, VA
loss, AdamW, the training defaults: fp32, windows of 32 frames) and whole-subject prediction with the
`Predictor` that `lwaffect predict` uses (`pipeline.temporal.predictor`, windows every 16 frames,
overlapping outputs averaged).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from jobs.bench.stages import median_seconds
from model.backbone import MultiScaleBackbone
from pipeline.cache.read import open_cache
from pipeline.cache.schema import frame_schema, frames_table
from pipeline.cache.spec import make_spec, map_names
from pipeline.cache.write import CacheWriter, ShardConfig
from pipeline.features import cosine_per_frame
from pipeline.temporal.optim import train_step
from pipeline.temporal.predictor import Predictor

SUBJECT = "bench"  # the subject name of the benchmark shard
PART_ROWS = 128  # rows per part file of the two-write design (its write stage's batch)
MB = 1e6


def bench_cache(
    maps: tuple[np.ndarray, ...],  # ((n, 64, 28, 28), (n, 96, 14, 14)) float16 pipeline maps
    reference: np.ndarray,  # (n, D) float32 maps of the same crops, flattened and concatenated
    backbone: MultiScaleBackbone,
    faces_spec: dict[str, Any],
    folder: Path,
    repeats: int,
    shard: ShardConfig = ShardConfig(),
) -> dict[str, float]:
    """Write and read a shard of `n` frames; leaves the last one at `folder / "cache"` for the model."""
    n = len(maps[0])
    spec = make_spec(backbone.spec(), "float16", faces_spec)
    schema = frame_schema(spec["boundary"], spec["dtype"], map_names(spec))
    location = str(folder / "cache")
    box = np.tile(np.array([10, 10, 110, 130], np.float32), (n, 1))
    landmarks = np.zeros((n, 5, 2), np.float32)

    def write() -> None:
        shutil.rmtree(location, ignore_errors=True)
        table = frames_table(
            schema, np.arange(n), np.ones(n, bool), box, np.ones(n), landmarks, ["detected"] * n, maps
        )
        CacheWriter(location, spec, shard=shard).write_subject(SUBJECT, SUBJECT, table)

    def write_twice() -> None:  # the design before each map was written once: parts, then the shard
        shutil.rmtree(location, ignore_errors=True)
        table = frames_table(
            schema, np.arange(n), np.ones(n, bool), box, np.ones(n), landmarks, ["detected"] * n, maps
        )
        writer = CacheWriter(location, spec, shard=shard)
        parts = Path(location) / "parts"
        parts.mkdir()
        names = []
        for start in range(0, n, PART_ROWS):  # each write call's rows: a part file, lz4
            names.append(parts / f"{start}.parquet")
            pq.write_table(table.slice(start, PART_ROWS), names[-1], compression="lz4")
        whole = pa.concat_tables(pq.read_table(name) for name in names)  # the driver reads them back
        writer.write_subject(SUBJECT, SUBJECT, whole)

    write_s = median_seconds(write, repeats)
    # the single write against the two writes it replaced, side by side: CPU seconds, turn about
    once_cpu: list[float] = []
    twice_cpu: list[float] = []
    for _ in range(max(repeats, 1)):  # the single write last: its shard is the one read below
        for run, times in ((write_twice, twice_cpu), (write, once_cpu)):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
    cache = open_cache(location)
    size = float(cache.manifest().to_pylist()[0]["bytes"])
    read: list[Any] = []

    def read_all() -> None:
        read[:] = [open_cache(location).read(SUBJECT)]

    read_s = median_seconds(read_all, repeats)
    cached = np.concatenate([m.reshape(n, -1).astype(np.float32) for m in read[0].maps], axis=1)  # (n, D)
    cosine = cosine_per_frame(cached, reference)
    raw = sum(int(np.prod(m.shape[1:])) for m in maps) * 2.0  # float16 bytes per frame
    return {
        "frames": float(n),
        "write_fps": n / write_s,
        "write_once_cpu_ms": 1000 * statistics.median(once_cpu) / n,
        "write_twice_cpu_ms": 1000 * statistics.median(twice_cpu) / n,
        "write_mb_s": size / MB / write_s,
        "read_fps": n / read_s,
        "read_mb_s": size / MB / read_s,
        "bytes_per_frame": size / n,
        "raw_bytes_per_frame": raw,
        "compression_ratio": raw * n / size,
        "cosine_median": float(np.median(cosine)),
        "cosine_min": float(cosine.min()),
    }


def _windows(cache: Any, seq_len: int, batch: int, rng: np.random.Generator) -> tuple:
    """A training batch from the benchmark shard: maps (B, T, C, H, W), VA targets (B, T, 2), mask (B, T)."""
    data = cache.read(SUBJECT)
    n = len(data.index)
    starts = rng.integers(0, max(n - seq_len, 0) + 1, size=batch)
    rows = [np.minimum(np.arange(s, s + seq_len), n - 1) for s in starts]
    maps = tuple(torch.from_numpy(np.stack([m[r] for r in rows]).astype(np.float32)) for m in data.maps)
    targets = torch.from_numpy(rng.uniform(-1, 1, size=(batch, seq_len, 2)).astype(np.float32))
    return maps, targets, torch.ones(batch, seq_len, dtype=torch.bool)


def bench_temporal(
    location: str,
    backbone: MultiScaleBackbone,
    configs: tuple[str, ...],
    device: str,
    repeats: int,
    seq_len: int = 32,
    batch: int = 8,
    stride: int = 16,
) -> dict[str, dict[str, float]]:
    """Frames/s of training steps (B x T frames per step) and of whole-subject prediction per config.

    B is `batch`, or fewer where the shard holds fewer than `batch` windows of `seq_len` frames.
    """
    from model.configs import build_model

    cache = open_cache(location)
    if cache.kind != "maps":  # its windows would be crops, which this bench does not run the frozen part on
        raise ValueError(
            f"the model bench times the temporal model on a map cache, {location} holds {cache.kind}: "
            "the training rate from crops is measured by `python -m jobs.bench.crops`"
        )
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for name in configs:
        torch.manual_seed(0)
        model = build_model(name, "va", backbone=backbone, num_frames=seq_len).to(device)
        windows = min(batch, max(1, cache.num_frames(SUBJECT) // seq_len))  # no more than the shard holds
        batches = [_windows(cache, seq_len, windows, rng) for _ in range(2)]
        out[name] = _time_model(model, cache, batches, device, repeats, seq_len, stride)
    return out


def _time_model(
    model: Any, cache: Any, batches: list[tuple], device: str, repeats: int, seq_len: int, stride: int
) -> dict[str, float]:
    """Median frames/s of a training step on `batches` (alternating) and of predicting the whole shard."""
    from model.losses import loss_for

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = loss_for("va")
    steps = [0]
    batch = len(batches[0][1])

    def train() -> None:
        steps[0] += 1
        train_step(model, batches[steps[0] % len(batches)], loss_fn, optimizer, device=device)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    predictor = Predictor(model, "va", seq_len, stride, batch_size=batch, device=device)

    def predict() -> None:  # head outputs of the whole shard, read afresh as `lwaffect predict` reads it
        predictor.raw(predictor.reader(cache), SUBJECT)

    train_s = median_seconds(train, repeats, warmup=1)
    predict_s = median_seconds(predict, repeats)  # the training steps warmed the kernels up
    return {
        "train_fps": batch * seq_len / train_s,
        "predict_fps": cache.num_frames(SUBJECT) / predict_s,
        "windows_per_step": float(batch),
    }
