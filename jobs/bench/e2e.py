"""End-to-end benchmark: the real `extract` Ray job on the benchmark videos, and its peak memory.

`bench_extract` starts a local Ray (timed apart), then times `jobs.extract.driver.extract` on a folder of
videos: Ray Data stages, actors loading their models, every frame decoded, tracked, aligned, run through
the backbone and written once into the cache's shards. Its face boxes are read back from the cache and
scored against the truth (`jobs.bench.scores`), and the worker time of writing the maps into the shards is
reported per decoded frame.

`bench_command` times the command as a user runs it, `python -m jobs extract --input FOLDER --cache FRESH` in
a child process, from its launch to its exit: the interpreter's start, the imports, Ray's start, the
actors and their models, every frame, Ray's shutdown and the interpreter's exit all count; what its local
Ray's processes still do after its exit does not, and is waited for before the next run
(`jobs.bench.leftovers`; the seconds are reported). Its `env` (the
bench's own memo folder, `pipeline.cache.backbone_spec`) says whether the backbone's spec is remembered
from a run before or described by the backbone workers, as on a machine's first run.

`bench_memory` runs `lwaffect extract` (as `python -m jobs extract`) in a child process and samples, every
`interval` seconds, the resident memory of that process and all its descendants (the local Ray's GCS,
raylet and workers, the decoder processes) through psutil: the peak of the summed RSS (shared pages count
once per process that maps them, so the Ray object store can count several times) and of the summed PSS
(shared pages split between the processes that map them; psutil's `memory_full_info().pss`). It does so
for a short video and one many times longer; as both runs pay the same start-up, the extra frames over
the extra seconds are the job's steady throughput (`marginal_fps`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from jobs.bench.leftovers import Leftovers
from jobs.bench.scores import FaceScore, pooled, video_score
from jobs.bench.videos import BenchVideo
from jobs.extract.config import ExtractConfig
from jobs.extract.driver import extract
from jobs.extract.runtime import ray_session

MB = 1e6


def bench_extract(cfg: ExtractConfig, videos: Sequence[BenchVideo], say: Any) -> dict[str, Any]:
    """Frames/s of `extract(cfg)` with Ray already started, the Ray start, and face scores of the cache."""
    from pipeline.cache.read import open_cache

    started = time.perf_counter()
    with ray_session(cfg.runtime):
        ray_s = time.perf_counter() - started
        report = extract(cfg, say=say)
    if report.failures:
        raise RuntimeError(f"extract failed: {'; '.join(f.reason for f in report.failures)}")
    cache = open_cache(cfg.cache)
    scores: list[FaceScore] = []
    for video in videos:
        records = {}
        for subject in video.truth:
            rows = cache.read(subject, maps=False)
            records[subject] = (rows.index, rows.face, rows.box)
        truth = {s: (t.face, t.boxes) for s, t in video.truth.items()}
        scores += video_score(truth, records).values()
    stages = {
        name: {"fps": t.fps, "worker_s": t.seconds}
        for name, t in report.stages.items()
        if t.frames > 0 and t.seconds > 0
    }
    # writing the maps (part files, in the write workers) and assembling the shards (the driver's thread):
    # the work that each map's single write is to halve, in worker milliseconds per decoded frame
    written = sum(report.stages[s].seconds for s in ("write", "assemble") if s in report.stages)
    return {
        "frames": float(report.frames),
        "seconds": report.wall_s,
        "fps": report.frames / report.wall_s,
        "fps_with_ray_start": report.frames / (report.wall_s + ray_s),
        "ray_start_s": ray_s,
        "first_result_s": report.startup_s,
        "write_assemble_ms": 1000 * written / report.frames if report.frames else float("nan"),
        **pooled(scores).figures(),
        "in_pipeline": stages,
        "plan": report.plan,
    }


# ------------------------------------------------------------------------------------------- memory


def _name(proc: psutil.Process) -> str:
    """A short name of a process: Ray's title for its workers, else the program and its first argument."""
    try:
        args = proc.cmdline()
    except psutil.Error:
        return str(proc.pid)
    if not args:
        return str(proc.pid)
    if args[0].startswith("ray::"):
        return args[0].split()[0][:60]
    program = os.path.basename(args[0])
    rest = [a for a in args[1:3] if not a.startswith("-")]
    return " ".join([program, *(os.path.basename(a) for a in rest[:1])])[:60]


def tree_memory(root: int) -> tuple[float, float, list[tuple[str, float, float]]]:
    """Summed RSS and PSS (bytes) of `root`'s process tree, and (name, RSS, PSS) of each process.

    A process that exits while it is read (or a zombie) counts with no memory, under its pid.
    """
    try:
        top = psutil.Process(root)
        tree = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0, []
    each = []
    for proc in tree:
        try:
            memory = proc.memory_full_info()  # rss from /proc/PID/statm, pss from /proc/PID/smaps_rollup
            rss, pss = float(memory.rss), float(memory.pss)
        except psutil.Error:
            rss = pss = 0.0
        each.append((_name(proc), rss, pss))
    return sum(e[1] for e in each), sum(e[2] for e in each), each


class TreeSampler(threading.Thread):
    """Samples a process tree's memory until stopped; keeps the peaks."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_rss = self.peak_pss = 0.0
        self.peak_processes = 0
        self.at_peak: list[tuple[str, float, float]] = []  # (name, RSS, PSS) of each process at the RSS peak
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss, pss, each = tree_memory(self.root)
            if rss > self.peak_rss:
                self.peak_rss, self.at_peak = rss, each
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_processes = max(self.peak_processes, len(each))
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def placement(device: str | None, face_device: str = "cpu") -> tuple[str, ...]:
    """The extract command's options that place its models: `--device`, and `--face-device` where the face
    detector is not on its default (the CPU)."""
    flags = ("--device", device) if device else ()
    return flags + (("--face-device", face_device) if face_device != "cpu" else ())


def extract_command(folder: Path, cache: Path, flags: Sequence[str]) -> list[str]:
    """`lwaffect extract` as a user runs it (`python -m jobs extract`) on `folder`, into `cache`, with the
    placement options `flags` (`placement`)."""
    return [sys.executable, "-m", "jobs", "extract", "--input", str(folder), "--cache", str(cache), *flags]


def _checked(command: list[str], code: int, log: Path) -> None:
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(command)}` exited with {code}:\n{tail}")


def bench_command(
    folder: Path,
    cache: Path,
    frames: float,
    flags: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Seconds from launching `python -m jobs extract` on `folder` (`frames` frames) into the fresh folder
    `cache` to its exit, its frames/s, and the seconds its processes outlived it (waited for, so that the
    next run starts on a machine as quiet as this one did: `jobs.bench.leftovers`); `env`: variables set
    for it."""
    command = extract_command(folder, cache, flags)
    with Leftovers() as left, open(log, "w") as out:
        started = time.perf_counter()
        code = subprocess.call(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        seconds = time.perf_counter() - started
        outlived = left.wait()
    _checked(command, code, log)
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds, "outlived_s": outlived}


def peak_memory(
    folder: Path, cache: Path, flags: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Peak summed RSS / PSS (MB) of `lwaffect extract --input folder --cache cache` and its descendants;
    `env`: variables set for it."""
    command = extract_command(folder, cache, flags)
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with Leftovers() as left, open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            code = proc.wait()
        finally:
            sampler.stop()
        wall_s = time.perf_counter() - started
        left.wait()  # the next run (the longer video) starts on a quiet machine
    _checked(command, code, log)
    largest: dict[str, float] = {}  # RSS (MB) at the peak, summed by process name
    for name, rss, _ in sampler.at_peak:
        largest[name] = largest.get(name, 0.0) + rss / MB
    return {
        "at_peak_rss_mb": dict(sorted(largest.items(), key=lambda kv: -kv[1])[:8]),
        "peak_rss_mb": sampler.peak_rss / MB,
        "peak_pss_mb": sampler.peak_pss / MB,
        "processes": float(sampler.peak_processes),
        "wall_s": wall_s,
    }


def bench_memory(
    short: Sequence[BenchVideo],
    long: Sequence[BenchVideo],
    work: Path,
    flags: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> dict:
    """Peak memory of extracting a short video and a longer one, each in a fresh `lwaffect extract` (with
    the variables `env`)."""
    out: dict[str, Any] = {}
    for name, videos in (("short", short), ("long", long)):
        folder = videos[0].path.parent
        figures = peak_memory(folder, work / f"cache-{name}", flags, work / f"extract-{name}.log", env)
        spec = videos[0].spec
        out[name] = {
            "seconds_of_video": spec.seconds,
            "frames": float(sum(v.frames for v in videos)),
            **figures,
        }
    # the two runs pay the same start-up (Python, Ray, actors, models): the extra frames over the extra
    # seconds is the job's steady throughput
    extra_s = out["long"]["wall_s"] - out["short"]["wall_s"]
    out["marginal_fps"] = (out["long"]["frames"] - out["short"]["frames"]) / extra_s if extra_s > 0 else 0.0
    out["rss_ratio"] = out["long"]["peak_rss_mb"] / out["short"]["peak_rss_mb"]
    out["pss_ratio"] = out["long"]["peak_pss_mb"] / out["short"]["peak_pss_mb"]
    return out


def finite(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without NaN or infinite numbers, which JSON cannot hold (nested dicts, strings and lists of
    finite numbers kept)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out[k] = finite(v)
        elif isinstance(v, str) or _number(v) or (isinstance(v, list) and all(_number(x) for x in v)):
            out[k] = v
    return out


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and bool(np.isfinite(x))
