"""Benchmark of `load_catalogue` on an Aff-Wild2-shaped tree of the real data set's size.

Writes a tree like the real one into a temporary folder: placeholder video files in `batch1/` and
`batch2/`, VA / AU / EXPR annotation files for every annotated video (train and validation sets, some
invalid-marker lines, one two-subject video), release lists and example files for the test videos, and a
`cropped_aligned/` folder. Then times `load_catalogue` (median of the runs) and prints the figure.

    python -m jobs.bench.catalogue [--videos 600] [--frames-per-video 5000] [--test-videos 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from model.tasks import TASKS
from pipeline.datasets import load_catalogue
from pipeline.synth.affwild2 import RELEASE_LISTS as RELEASE
from pipeline.synth.affwild2 import TASK_FOLDERS


def _line_pool(task: str, rng: np.random.Generator, size: int = 4096) -> np.ndarray:
    """A pool of valid annotation lines (and a few invalid-marker lines) to draw frames from."""
    if task == "va":
        lines = [f"{v:.3f},{a:.3f}" for v, a in rng.uniform(-1, 1, (size, 2))]
        lines[:8] = ["-5,-5"] * 8
    elif task == "au":
        lines = [",".join(map(str, row)) for row in rng.integers(0, 2, (size, 12))]
        lines[:8] = [",".join(["-1"] * 12)] * 8
    else:
        lines = [str(c) for c in rng.integers(0, 8, size)]
        lines[:8] = ["-1"] * 8
    return np.asarray(lines, dtype=object)


def write_tree(root: Path, videos: int, frames: int, test_videos: int, seed: int = 0) -> int:
    """Write the benchmark tree under `root`; returns the number of annotation lines written."""
    rng = np.random.default_rng(seed)
    names = [f"{i}-30-640x360" for i in range(videos + test_videos)]
    for i, name in enumerate(names):
        batch = root / ("batch1" if i % 2 == 0 else "batch2")
        batch.mkdir(parents=True, exist_ok=True)
        (batch / f"{name}.mp4").write_bytes(b"\0" * 64)  # placeholder: the catalogue never opens videos
    (root / "cropped_aligned" / names[0]).mkdir(parents=True, exist_ok=True)
    annotated, test = names[:videos], names[videos:]
    subjects = [f"{annotated[0]}_left", f"{annotated[0]}_right", *annotated[1:]]
    n_train = int(len(subjects) * 0.8)
    lines = 0
    for task, folder in TASK_FOLDERS.items():
        pool = _line_pool(task, rng)
        header = ",".join(TASKS[task].header)
        for k, subject in enumerate(subjects):
            split = "Train_Set" if k < n_train else "Validation_Set"
            out = root / "8th_ABAW_Annotations" / folder / split
            out.mkdir(parents=True, exist_ok=True)
            n = int(frames * rng.uniform(0.8, 1.2))
            body = "\n".join(pool[rng.integers(0, len(pool), n)])
            (out / f"{subject}.txt").write_text(f"{header}\n{body}\n")
            lines += n
        (root / RELEASE[task]).write_text("".join(f"{name}\n" for name in test))
        (root / f"CVPR_8th_ABAW_{task.upper()}_test_set_example.txt").write_text(header + "\n")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=600, help="annotated videos (each in all 3 tasks)")
    parser.add_argument("--frames-per-video", type=int, default=5000, help="mean annotation lines per file")
    parser.add_argument("--test-videos", type=int, default=100, help="videos in the release lists")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--workers", type=int, default=None, help="parser threads (default: CPUs, at most 8)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        lines = write_tree(root, args.videos, args.frames_per_video, args.test_videos)
        written = time.perf_counter() - start
        videos = args.videos + args.test_videos
        print(f"tree: {videos} videos, {lines:,} annotation lines (written in {written:.1f} s)")
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            catalogue = load_catalogue(root, workers=args.workers)
            times.append(time.perf_counter() - start)
        labelled = sum(lab.num_valid for lab in catalogue.labels.values())
        counts = f"{len(catalogue.videos)} videos, {len(catalogue.subjects)} subjects"
        print(f"catalogue: {counts}, {len(catalogue.labels)} label files, {labelled:,} labelled frames")
        each = ", ".join(f"{t:.2f}" for t in times)
        print(f"load_catalogue: median {statistics.median(times):.2f} s of {len(times)} runs ({each} s)")
        print(f"CPUs: {os.cpu_count()}, parser threads: {args.workers or 'default'}")


if __name__ == "__main__":
    main()
