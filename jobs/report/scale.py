"""A large run made from a small one, to measure the HTML report at the size of a full test split.

`python -m jobs.report.scale --run demo --output big --videos 150 --frames 5500` takes the subjects of a
finished run (the demo's, say) and repeats them over `--videos` videos of `--frames` frames each (5,500
is about the mean length of an Aff-Wild2 video): each source video is re-encoded once with its frames
repeated up to that length, and its subjects' predictions and face records are repeated with the same
period, so that boxes still fit the frames (values get a little noise, `--jitter`, so that the repeats
compress no better than real series would). The face records go to a cache of their own whose maps are a
single value (the report reads no maps; a crop cache's run gets such a map cache too). Then it writes the report of the big run and prints its size,
time and share by part (library, figures, thumbnails).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from jobs.report.build import ReportConfig, write_report
from jobs.report.record import read_record
from jobs.run.report import RUN_FILE
from model.split import DEFAULT_CACHE_KIND
from model.tasks import get_task
from pipeline.cache.read import open_cache
from pipeline.cache.schema import frame_schema, frames_table
from pipeline.cache.spec import map_names
from pipeline.cache.write import CacheWriter


def long_video(source: Path, target: Path, frames: int) -> int:
    """`source`'s frames repeated up to `frames` frames into `target` (H.264); the source's frame count."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(target), "w") as out:
        encoded = out.add_stream("libx264", rate=rate)
        encoded.height, encoded.width = images[0].shape[:2]
        encoded.pix_fmt, encoded.options = "yuv420p", {"preset": "ultrafast", "crf": "28"}
        for i in range(frames):
            for packet in encoded.encode(av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")):
                out.mux(packet)
        for packet in encoded.encode():
            out.mux(packet)
    return len(images)


def jittered(table: pl.DataFrame, task: str, jitter: float, rng: np.random.Generator) -> pl.DataFrame:
    """VA values and AU / AH probabilities plus noise of scale `jitter` (decisions and classes follow), so
    that repeated series do not compress better than real ones would."""
    spec = get_task(task)
    columns = list(spec.label_columns if spec.kind == "regression" else spec.probability_columns)
    if jitter <= 0 or spec.kind == "multiclass":
        return table
    low, high = spec.value_range
    noisy = np.clip(
        table.select(columns).to_numpy() + rng.normal(0, jitter, (len(table), len(columns))), low, high
    )
    table = table.with_columns([pl.Series(c, noisy[:, k], pl.Float32) for k, c in enumerate(columns)])
    if spec.kind in ("multilabel", "binary"):
        decided = [
            pl.Series(c, (noisy[:, k] >= 0.5).astype(np.int8)) for k, c in enumerate(spec.label_columns)
        ]
        table = table.with_columns(decided)
    return table


def big_cache_spec(spec: dict) -> dict:
    """The spec of the big run's cache: the run's cache settings with maps of one value each, a map cache
    whatever the run's cache held (the report reads no maps, nor crops)."""
    kept = {k: v for k, v in spec.items() if k != "crops"}
    return {**kept, "cache_kind": DEFAULT_CACHE_KIND, "boundary": [[1, 1, 1]] * len(map_names(spec))}


def scale_run(run: Path, output: Path, videos: int, frames: int, sources: int, jitter: float = 0.05) -> Path:
    """The big run's folder (predictions, cache, long videos, run.json) made from the run in `run`."""
    rng = np.random.default_rng(0)
    record = read_record(run)
    cache = open_cache(str(record.cache))
    tables = {t: pl.read_parquet(p) for t, p in record.predictions.items()}
    first = next(iter(tables.values()))
    originals = [v for v in dict.fromkeys(first["video"].to_list()) if v in record.videos][:sources]
    names = map_names(cache.spec)
    spec = big_cache_spec(cache.spec)
    writer = CacheWriter(str(output / "cache"), spec)
    schema = frame_schema(spec["boundary"], spec.get("dtype", "float16"), names)
    new_tables: dict[str, list[pl.DataFrame]] = {t: [] for t in tables}
    video_record, period = {}, {}
    for name in originals:
        target = output / "videos" / f"{name}.mp4"
        period[name] = long_video(Path(record.videos[name]["path"]), target, frames)
        video_record[name] = {**record.videos[name], "path": str(target), "frames": frames}
    repeat = np.arange(frames)
    for j in range(videos):
        source = originals[j % len(originals)]
        video = f"{source}-x{j:03d}"
        subjects = [s for s in dict.fromkeys(first.filter(pl.col("video") == source)["subject"].to_list())]
        for subject in subjects:
            name = subject.replace(source, video)
            rows = (repeat % cache.num_frames(subject)).tolist()
            shard = cache.read(subject, maps=False)
            n = len(rows)
            writer.write_subject(name, video, frames_table(
                schema, np.arange(n), shard.face[rows], shard.box[rows], shard.score[rows], shard.landmarks[rows],
                shard.source[rows].tolist(), [np.zeros((n, 1, 1, 1), np.float16)] * len(names)))  # fmt: skip
            for task, table in tables.items():
                mine = table.filter(pl.col("subject") == subject).sort("frame")
                tiled = mine[[r % len(mine) for r in range(frames)]].with_columns(
                    frame=pl.Series(np.arange(1, frames + 1, dtype=np.int32)), video=pl.lit(video),
                    subject=pl.lit(name))  # fmt: skip
                tiled = jittered(tiled, task, jitter, rng)
                new_tables[task].append(tiled)
        video_record[video] = video_record[source]
    writer.finish()
    predictions = {}
    for task, parts in new_tables.items():
        predictions[task] = str(output / "predictions" / f"{task}.parquet")
        Path(predictions[task]).parent.mkdir(parents=True, exist_ok=True)
        pl.concat(parts).write_parquet(predictions[task])
    raw = {**record.raw, "output": str(output), "cache": str(output / "cache"), "predictions": predictions,
           "videos": {v: e for v, e in video_record.items() if v not in originals}}  # fmt: skip
    (output / RUN_FILE).write_text(json.dumps(raw, indent=1))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.report.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run's output folder")
    parser.add_argument("--output", type=Path, required=True, help="folder for the big run")
    parser.add_argument("--videos", type=int, default=150, help="videos of the big run")
    parser.add_argument("--frames", type=int, default=5500, help="frames per video")
    parser.add_argument("--sources", type=int, default=3, help="videos of the run repeated")
    parser.add_argument("--jitter", type=float, default=0.05, help="noise added to repeated values")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    big = scale_run(args.run, args.output, args.videos, args.frames, args.sources, args.jitter)
    made = time.perf_counter()
    result = write_report(ReportConfig(run=big), say=print)
    text = result.path.read_text()
    parts = {
        "library": len(re.search(r'id="plotly-library">([^<]*)<', text).group(1)),  # type: ignore[union-attr]
        "figures": sum(len(m) for m in re.findall(r'id="figure-[^"]*">([^<]*)<', text)),
        "thumbnails": sum(len(m) for m in re.findall(r'src="(data:image/jpeg[^"]*)"', text)),
    }
    print(f"big run made in {made - started:.0f} s; report {result.bytes / 2**20:.1f} MiB in {result.seconds:.0f} s: "
          f"{result.videos} videos, {result.subjects} subjects; "
          + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in parts.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
