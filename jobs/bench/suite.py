"""`lwaffect bench`: per-stage and end-to-end throughput, memory and cache size against a naive loop.

One run on synthetic videos made for it (`jobs.bench.videos`: H.264 files of a real face, true boxes):

1. each stage alone, in this process (`jobs.bench.stages`, `jobs.bench.model`): decode (decord and PyAV),
   face detection + tracking (the pipeline's settings, scored against the true boxes), align, the frozen
   backbone (fp32 NCHW, fp32 channels-last, bf16 channels-last), cache write and read, the temporal
   model's training steps and prediction (tam_s1, tam_s3);
   the face stage's methods (`jobs.bench.faces`) on the default videos and on the hard set (a video per
   hard variant of `pipeline.synth.hard`), scored per subject against the truth (`jobs.bench.scores`);
2. the naive per-frame loop on the first frames of each video (`jobs.bench.naive`; the median of `repeats`
   passes), whose MTCNN part is the baseline of the face stage;
3. the real `extract` job on the same videos (`jobs.bench.e2e`), then the command a user runs, from its
   launch to its exit (a machine's first run, then the median of `repeats` runs), each run compared with
   the mean of the naive loop's passes timed just before and just after it (the machine's speed drifts
   over minutes; the passes on either side of a run share its moment), and the pipeline efficiency:
   CPU: e2e frames/s / (1 / sum of each stage's seconds per frame), the stages back to back;
   GPU: e2e frames/s / the slowest stage's frames/s;
4. the peak memory of `lwaffect extract` with its default settings, run as a child process (summed over
   it and all its descendants: Ray's GCS, raylet and workers, decoders) on one short video and on one
   `memory_factor` times longer, at the benchmark's resolution; both runs pay the same start-up, so
   (extra frames) / (extra seconds) is the job's steady throughput, compared with the naive loop too.

Stage figures run with a warm-up (a one-second video, or one batch) before the timed calls; the naive
loop runs on the first `naive_frames` frames of each video, its frames/s standing for the whole video.

Writes OUTPUT/bench.json (nested figures, NaN and infinities left out) and OUTPUT/bench.md (the table).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from jobs.bench.e2e import bench_command, bench_extract, bench_memory, finite, placement
from jobs.bench.faces import bench_faces, check_methods
from jobs.bench.model import bench_cache, bench_temporal
from jobs.bench.naive import NaiveLoop
from jobs.bench.report import goals, markdown
from jobs.bench.stages import bench_backbone, bench_decode, face_pass, middle_run
from jobs.bench.videos import BenchVideoSpec, make_hard_videos, make_video, make_videos, resolution
from jobs.extract.config import ExtractConfig, FaceSettings
from jobs.extract.plan import FACE_GPU_ALONE
from jobs.extract.runtime import RuntimeConfig
from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.backbone_spec import MEMO_VAR
from pipeline.features import FeatureConfig
from pipeline.synth.hard import VARIANTS, check_variant

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark measures and on what."""

    output: Path = Path("bench-out")  # folder for bench.json and bench.md
    videos: int = 2  # benchmark videos (stage figures and end-to-end)
    resolution: str = "720p"  # 360p, 480p, 720p or 1080p
    seconds: float = 10.0  # length of each video
    fps: int = 30  # frame rate of the videos
    device: Literal["cpu", "cuda"] = "cpu"  # where the models run (stages and extract)
    repeats: int = 3  # runs of each short stage, the naive loop and the command; the median is reported
    threads: int | None = None  # torch threads of the stage-alone runs (None: every core)
    naive_frames: int = 20  # frames per video run through the naive loop (its frames/s stand for all)
    backbone_crops: int = 128  # face crops for the backbone, cache and temporal-model figures
    temporal_configs: tuple[str, ...] = ("tam_s1", "tam_s3")  # model configs timed
    seq_len: int = 32  # frames per temporal-model window
    train_batch: int = 4  # windows per training step
    memory_seconds: float = 6.0  # length of the short video of the memory test; 0 skips the test
    memory_factor: int = 10  # the long video is this many times longer
    memory_resolution: str | None = None  # resolution of the memory test's videos (None: `resolution`)
    hard_variants: tuple[str, ...] = VARIANTS  # the hard set: a video per variant (pipeline.synth.hard)
    hard_seconds: float = 3.0  # length of each hard video
    hard_seed: int = 0  # people, paths and tints of the hard videos (tests use other seeds)
    face_methods: tuple[str, ...] = ("today", "refine")  # face stage methods compared (jobs.bench.faces)
    faces: FaceSettings = FaceSettings()  # the pipeline's face stage settings
    backbone: BackboneConfig = BackboneConfig()  # frozen backbone (random weights: speed does not care)
    features: FeatureConfig = FeatureConfig()  # backbone batch, layout, autocast
    runtime: RuntimeConfig = RuntimeConfig()  # Ray placement of the extract job
    workdir: Path | None = None  # videos and caches go here (None: a temporary folder, removed after)

    def __post_init__(self) -> None:
        resolution(self.resolution)
        if self.memory_resolution is not None:
            resolution(self.memory_resolution)
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.runtime.face_device == "cuda" and self.device != "cuda":
            raise ValueError(FACE_GPU_ALONE)
        if self.videos < 1 or self.seconds <= 0 or self.repeats < 1 or self.naive_frames < 1:
            raise ValueError("videos, seconds, repeats and naive_frames must be positive")
        if self.memory_seconds < 0 or self.memory_factor < 2:
            raise ValueError("memory_seconds must be >= 0 and memory_factor >= 2")
        for variant in self.hard_variants:
            check_variant(variant)
        if self.hard_seconds <= 0:
            raise ValueError(f"hard_seconds must be positive, not {self.hard_seconds}")
        check_methods(self.face_methods)

    @property
    def face_device(self) -> str:
        """Where the face stage is timed: where the extraction's face workers run their detector."""
        return self.runtime.face_device  # "cuda" only with device "cuda" (__post_init__)


def _setup(cfg: BenchConfig) -> dict[str, Any]:
    width, height = resolution(cfg.resolution)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in _lines("/proc/cpuinfo") if ln.startswith("model name")), ""
    )
    return {
        "videos": cfg.videos,
        "resolution": cfg.resolution,
        "width": width,
        "height": height,
        "seconds": cfg.seconds,
        "fps": cfg.fps,
        "frames": cfg.videos * BenchVideoSpec(seconds=cfg.seconds, fps=cfg.fps).frames,
        "device": cfg.device,
        "face_device": cfg.face_device,
        "hard_variants": ",".join(cfg.hard_variants),
        "hard_seconds": cfg.hard_seconds,
        "face_methods": ",".join(cfg.face_methods),
        "repeats": cfg.repeats,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count() or 1,
        "cpu": cpu or platform.processor() or "unknown",
        "gpu": torch.cuda.get_device_name() if cfg.device == "cuda" else "none",
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def efficiency(figures: dict[str, Any], device: str) -> dict[str, Any]:
    """Pipeline efficiency of the e2e job against the stages alone (seconds per decoded frame)."""
    face_share = figures["faces"]["face_frames"] / figures["faces"]["frames"]
    backbone = figures["backbone"][figures["backbone"]["pipeline"]]["fps"]
    per_frame = {
        "decode": 1 / figures["decode"][figures["decode"]["pipeline_backend"]]["fps"],
        "faces": 1 / figures["faces"]["pipeline"]["fps"],
        "align": 1 / figures["align"]["fps"],
        "backbone": face_share / backbone,
        "write": 1 / figures["cache"]["write_fps"],
    }
    e2e = figures["extract"]
    if device == "cpu":
        ideal = 1 / sum(per_frame.values())
        definition = "cpu: e2e fps / (1 / sum over stages of seconds per frame alone): stages back to back"
    else:
        ideal = 1 / max(per_frame.values())
        definition = "gpu: e2e fps / fps of the slowest stage alone"
    out = {
        "definition": definition,
        "ideal_fps": ideal,
        "value": e2e["fps"] / ideal,
        "slowest_stage": max(per_frame, key=per_frame.__getitem__),
        "stage_ms_per_frame": {k: 1000 * v for k, v in per_frame.items()},
    }
    if "steady_fps" in e2e:
        out["steady"] = e2e["steady_fps"] / ideal
    return out


def run_bench(cfg: BenchConfig, say: Say | None = None) -> dict[str, Any]:
    """Run every measurement; writes bench.json and bench.md to `cfg.output` and returns the figures."""
    began = time.perf_counter()
    out: Say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    def timed(line: str) -> None:  # progress lines carry the time since the start
        out(f"[{time.perf_counter() - began:6.1f} s] {line}")

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(tempfile.mkdtemp(prefix="lwaffect-bench-", dir=cfg.workdir))
    try:
        figures = _measure(cfg, work, timed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["setup"]["wall_s"] = time.perf_counter() - began
    figures = finite(figures)
    cfg.output.mkdir(parents=True, exist_ok=True)
    (cfg.output / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    (cfg.output / "bench.md").write_text(markdown(figures) + "\n")
    return figures


def _measure(cfg: BenchConfig, work: Path, say: Say) -> dict[str, Any]:
    width, height = resolution(cfg.resolution)
    spec = BenchVideoSpec(width=width, height=height, seconds=cfg.seconds, fps=cfg.fps)
    figures: dict[str, Any] = {"setup": _setup(cfg)}
    say(f"bench: {cfg.videos} videos {width}x{height} x {cfg.seconds:g} s at {cfg.fps} fps on {cfg.device}")
    videos = make_videos(work / "videos", cfg.videos, spec)
    warmup = make_video(work / "warmup" / "warmup.mp4", replace(spec, seconds=min(1.0, cfg.seconds), seed=99))
    if cfg.hard_variants:
        say(
            f"bench: hard set, {len(cfg.hard_variants)} videos x {cfg.hard_seconds:g} s: {', '.join(cfg.hard_variants)}"
        )
    hard = make_hard_videos(work / "hard", cfg.hard_variants, cfg.hard_seconds, cfg.hard_seed)

    say("bench: decode")
    figures["decode"] = bench_decode(videos, cfg.faces.decode, cfg.repeats, warmup)

    say("bench: faces and align")
    passed = face_pass(videos, cfg.faces, cfg.face_device, cfg.backbone_crops, warmup)
    figures["faces"] = {
        "frames": passed.frames,
        "face_frames": passed.face_frames,
        "pipeline": {
            "fps": passed.frames / passed.face_seconds,
            "ms_per_frame": 1000 * passed.face_seconds / passed.frames,
            **passed.score.figures(),
        },
    }
    sets = {"default": videos, "hard": hard}
    figures["face_methods"] = bench_faces(
        sets, cfg.face_methods, cfg.faces, cfg.face_device, warmup, cfg.repeats, say
    )
    figures["align"] = {"fps": passed.frames / passed.align_seconds, "crop_size": cfg.faces.crop_size}
    crops = np.concatenate(passed.crops)[: cfg.backbone_crops]

    say(f"bench: backbone on {len(crops)} face crops")
    figures["backbone"], maps = bench_backbone(crops, cfg.backbone, cfg.features, cfg.device, cfg.repeats)

    say("bench: cache")
    torch.manual_seed(0)
    backbone = build_backbone(cfg.backbone)  # the weights of bench_backbone's variants
    shapes = backbone.boundary_shapes
    cut = int(np.prod(shapes[0]))
    flat = maps[figures["backbone"]["pipeline"]]  # (n, D)
    pipeline_maps = (flat[:, :cut].reshape(-1, *shapes[0]), flat[:, cut:].reshape(-1, *shapes[1]))
    faces_spec = cfg.faces.spec() | {"subject": "main"}
    figures["cache"] = bench_cache(pipeline_maps, maps["fp32_nchw"], backbone, faces_spec, work, cfg.repeats)

    say("bench: temporal model")
    figures["temporal"] = bench_temporal(
        str(work / "cache"),
        backbone,
        cfg.temporal_configs,
        cfg.device,
        cfg.repeats,
        cfg.seq_len,
        cfg.train_batch,
    )

    say(f"bench: naive loop on {cfg.naive_frames} frames per video")
    loop = NaiveLoop(videos, cfg.naive_frames, cfg.backbone, cfg.features, cfg.faces.align, cfg.device)
    naive = loop.figures(cfg.repeats)
    figures["faces"]["mtcnn_full"] = naive.pop("mtcnn_full")
    figures["faces"]["speedup"] = figures["faces"]["pipeline"]["fps"] / figures["faces"]["mtcnn_full"]["fps"]
    figures["naive"] = naive

    say("bench: end-to-end extract")
    extract_cfg = ExtractConfig(
        input=videos[0].path.parent,
        cache=str(work / "e2e-cache"),
        faces=cfg.faces,
        backbone=cfg.backbone,
        features=cfg.features,
        runtime=cfg.runtime,
        device=cfg.device,
    )
    figures["extract"] = bench_extract(extract_cfg, videos, lambda line: say(f"  {line}"))
    figures["extract"]["speedup_vs_naive"] = figures["extract"]["fps"] / naive["fps"]
    figures["extract"]["speedup_vs_naive_all"] = figures["extract"]["fps_with_ray_start"] / naive["fps"]
    runs = max(cfg.repeats, 1)
    say(f"bench: end-to-end `python -m jobs extract`, from launch to exit: a first run, then {runs} more")
    frames = float(sum(v.frames for v in videos))
    # the bench's own memo, empty: in the first run the backbone workers describe the backbone; the next
    # runs read the spec that run remembered
    memo = {MEMO_VAR: str(work / "memo")}
    flags = placement(cfg.device, cfg.runtime.face_device)
    # each run of the command between two passes of the naive loop, and compared with their mean: the
    # machine's speed drifts by a tenth or more over minutes (and the block of passes above ran minutes
    # before), while the passes on either side of a run share its moment (a steady drift cancels). The
    # first pass after a run (and after the job in this process above) is left out (`settling`): it ran
    # slower than the next in 5 of 6 tries here (by about 4 %), which would flatter the command
    settling = [loop.fps()]
    passes = [loop.fps()]

    def between_passes(name: str) -> dict[str, Any]:
        run = bench_command(
            videos[0].path.parent, work / f"{name}-cache", frames, flags, work / f"{name}.log", memo
        )
        settling.append(loop.fps())
        passes.append(loop.fps())
        return {**run, "naive_fps": (passes[-2] + passes[-1]) / 2}

    first = between_passes("command-first")
    # a run of the command is short beside the machine's swings: the median of `repeats`, each one listed
    timed = [between_passes(f"command-{i}") for i in range(runs)]
    median = middle_run(timed, key=lambda r: r["seconds"])
    ratios = [r["fps"] / r["naive_fps"] for r in timed]
    command: dict[str, Any] = {
        **median,
        "runs_s": [r["seconds"] for r in timed],
        "naive_passes_fps": passes,  # before the first run, then after each run (after its settling pass)
        "naive_settling_fps": settling,  # the first pass after the job above and after each run, left out
        "paired_speedups": ratios,
    }
    first["specs_remembered"] = float(len(list((work / "memo" / "backbone-specs").glob("*.json"))))
    figures["extract"]["command_first"] = first
    figures["extract"]["speedup_vs_naive_command_first"] = first["fps"] / first["naive_fps"]
    figures["extract"]["command"] = command
    # the median of the paired ratios (of an even count the lower middle one)
    figures["extract"]["speedup_vs_naive_command"] = middle_run(ratios, key=lambda r: -r)
    # the same runs against the block of naive passes, minutes earlier (how the bench compared them before)
    figures["extract"]["speedup_vs_naive_command_block"] = command["fps"] / naive["fps"]

    if cfg.memory_seconds > 0:
        memory_res = cfg.memory_resolution or cfg.resolution
        mw, mh = resolution(memory_res)
        short_spec = BenchVideoSpec(width=mw, height=mh, seconds=cfg.memory_seconds, fps=cfg.fps)
        long_spec = replace(short_spec, seconds=cfg.memory_seconds * cfg.memory_factor)
        say(
            f"bench: peak memory of extract, {mw}x{mh} x {short_spec.seconds:g} s and {long_spec.seconds:g} s"
        )
        short = make_videos(work / "memory-short", 1, short_spec, prefix="short")
        long = make_videos(work / "memory-long", 1, long_spec, prefix="long")
        figures["memory"] = bench_memory(short, long, work, flags, memo)
        if memory_res == cfg.resolution and figures["memory"]["marginal_fps"] > 0:
            steady = figures["memory"]["marginal_fps"]
            figures["extract"]["steady_fps"] = steady
            figures["extract"]["speedup_vs_naive_steady"] = steady / naive["fps"]
    figures["efficiency"] = efficiency(figures, cfg.device)
    figures["goals"] = goals(figures)
    return figures
