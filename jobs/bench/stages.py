"""Benchmark of the extraction stages one at a time: decode, face detection + tracking, align, backbone.

Each stage runs alone in this process on the benchmark videos, with the pipeline's own settings
(`jobs.extract.config.FaceSettings`, `pipeline.features.FeatureConfig`) and the torch threads of the
process. Frames per second count the frames a stage handles: every decoded frame for decode, faces and
align (align skips frames without a face, as in the pipeline), face crops for the backbone. Short
stages are repeated and the median reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from jobs.bench.scores import FaceScore, pooled, video_score
from jobs.bench.videos import BenchVideo
from jobs.extract.config import FaceSettings
from model.backbone import BackboneConfig, build_backbone
from pipeline.features import FeatureConfig, extract_maps, use_bf16
from pipeline.video.decode import DecodeConfig, iter_chunks


def median_seconds(run: Callable[[], Any], repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of `repeats` calls of `run` (after `warmup` untimed calls)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


Run = TypeVar("Run")


def middle_run(runs: Sequence[Run], key: Callable[[Run], float]) -> Run:
    """The run at the median of `key` (seconds); of an even count the slower middle one."""
    return sorted(runs, key=key)[len(runs) // 2]


# ------------------------------------------------------------------------------------------------ decode


def _decode_all(videos: Sequence[BenchVideo], cfg: DecodeConfig) -> None:
    for video in videos:
        for _ in iter_chunks(video.path, cfg):
            pass


def bench_decode(
    videos: Sequence[BenchVideo], decode: DecodeConfig, repeats: int, warmup: BenchVideo
) -> dict[str, Any]:
    """Frames/s of decoding every video with decord and with PyAV (the pipeline's chunked decoder).

    Each backend first decodes `warmup` untimed (starting the decoder processes' server, imports).
    """
    frames = sum(v.frames for v in videos)
    out: dict[str, Any] = {}
    for backend in ("decord", "pyav"):
        cfg = replace(decode, backend=backend)
        _decode_all([warmup], cfg)

        def run(cfg: DecodeConfig = cfg) -> None:
            _decode_all(videos, cfg)

        out[backend] = {"fps": frames / median_seconds(run, repeats)}
    out["pipeline_backend"] = "decord" if decode.backend in ("auto", "decord") else "pyav"
    return out


# ------------------------------------------------------------------------------------------- faces, align


@dataclass
class VideoFaces:
    """What the face stage did on one video."""

    name: str  # the video's file stem
    variant: str  # "default" or the hard variant
    frames: float  # decoded frames
    detect_s: float  # detect + track seconds
    align_s: float  # alignment seconds
    scores: dict[str, FaceScore]  # per subject


@dataclass
class FacePass:
    """What one pass of the face and align stages over the videos measured and produced."""

    frames: float = 0.0  # decoded frames handled
    face_seconds: float = 0.0  # detect + track
    align_seconds: float = 0.0  # alignment of the chunks' frames
    crops: list[np.ndarray] = field(default_factory=list)  # (n, 3, S, S) uint8 face crops, per batch
    videos: list[VideoFaces] = field(default_factory=list)  # per video: times and scores
    face_frames: int = 0  # rows (frames x subjects) where a face was reported

    @property
    def score(self) -> FaceScore:
        """The scores of every subject of every video, pooled."""
        return pooled(s for v in self.videos for s in v.scores.values())


def _stage_rows(stage: Any, video: BenchVideo) -> Iterator[dict[str, np.ndarray]]:
    """The FRAME rows `FaceStage` gives for one video (every subject); a failure is raised, except that of
    a subject where no face was found (its rows say so, and score as such)."""
    from jobs.extract.rows import FAIL, FRAME

    for rows in stage.video(video.name, video.path, video.subjects):
        if int(rows["kind"][0]) == FAIL and "no face found" not in str(rows["reason"][0]):
            raise RuntimeError(f"face stage failed on {video.path}: {rows['reason'][0]}")
        if int(rows["kind"][0]) == FRAME:
            yield rows


def face_pass(
    videos: Sequence[BenchVideo],
    settings: FaceSettings,
    device: str,
    max_crops: int,
    warmup: BenchVideo,
    threads: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> FacePass:
    """The pipeline's face stage (`FaceStage`: decode, detect + track, align) over each video, decoding
    in this process so that nothing runs beside the timed parts; the stage times its own parts with
    `clock`. The stage first runs untimed on `warmup` (MTCNN's first call in a process is several times
    slower). `threads`: torch threads of the pass (None: the process's), restored after it. Frames count
    decoded frames (a two-subject video's frame once); scores are per subject."""
    from jobs.extract.stages.face import FaceStage

    before = torch.get_num_threads()
    try:
        stage = FaceStage(
            replace(settings, decode=replace(settings.decode, isolate=False)),
            device,
            threads or before,
            clock,
        )
        return _face_pass(stage, videos, max_crops, warmup)
    finally:
        torch.set_num_threads(before)


def _face_pass(stage: Any, videos: Sequence[BenchVideo], max_crops: int, warmup: BenchVideo) -> FacePass:
    for _ in _stage_rows(stage, warmup):
        pass
    result = FacePass()
    kept = 0
    for video in videos:
        parts: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s, _ in video.subjects}
        frames = detect_s = align_s = 0.0
        for rows in _stage_rows(stage, video):
            frames += float(rows["w_video"].sum())  # each row's share of a decoded frame
            detect_s += float(rows["t_detect"].sum())
            align_s += float(rows["t_align"].sum())
            parts[str(rows["subject"][0])].append(rows)
            if kept < max_crops:
                crops = rows["crops"][rows["face"]][: max_crops - kept]  # (n, 3, S, S) uint8
                result.crops.append(crops)
                kept += len(crops)
        if not any(parts.values()):
            raise RuntimeError(f"the face stage gave no rows for {video.path}")
        records = {  # subject -> (n,) decode index, (n,) face, (n, 4) box
            s: (np.concatenate([r["index"] for r in p]), np.concatenate([r["face"] for r in p]),
                np.concatenate([r["box"] for r in p]))
            for s, p in parts.items()
            if p
        }  # fmt: skip
        truth = {s: (t.face, t.boxes) for s, t in video.truth.items()}
        scores = video_score(truth, records)
        result.frames += frames
        result.face_seconds += detect_s
        result.align_seconds += align_s
        result.face_frames += sum(int(r[1].sum()) for r in records.values())
        result.videos.append(VideoFaces(video.name, video.variant, frames, detect_s, align_s, scores))
    return result


# ---------------------------------------------------------------------------------------------- backbone

# name -> (channels_last, autocast, BatchNorms folded into the convolutions as the extraction's workers do)
VARIANTS: dict[str, tuple[bool, Literal["off", "bf16"], bool]] = {
    "fp32_nchw": (False, "off", False),
    "fp32_channels_last": (True, "off", False),
    "fp32_channels_last_folded": (True, "off", True),
    "bf16_channels_last": (True, "bf16", False),
    "bf16_channels_last_folded": (True, "bf16", True),
}


def pipeline_variant(features: FeatureConfig, device: torch.device) -> str:
    """The variant `extract` runs with `features` on `device` (its backbone workers fold BatchNorms)."""
    layout = "channels_last" if features.channels_last else "nchw"
    return f"{'bf16' if use_bf16(features, device) else 'fp32'}_{layout}_folded"


def bench_backbone(
    crops: np.ndarray,  # (n, 3, S, S) uint8 face crops
    backbone_cfg: BackboneConfig,
    features: FeatureConfig,
    device: str,
    repeats: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Frames/s of the frozen backbone in each variant; also returns each variant's maps (n, D).

    The maps are float32 for `fp32_nchw` (the fidelity reference), the stored dtype for the others.
    Variants whose autocast the device lacks natively (bf16 on a CPU without AVX512-BF16 / AMX) are left
    out: the pipeline never picks them.
    """
    out: dict[str, Any] = {}
    maps: dict[str, np.ndarray] = {}
    dev = torch.device(device)
    for name, (channels_last, autocast, folded) in VARIANTS.items():
        if autocast == "bf16" and dev.type == "cpu" and not use_bf16(replace(features, autocast="auto"), dev):
            continue  # no native bf16 on this CPU: emulated bf16 is far slower, not a pipeline choice
        torch.manual_seed(0)  # the same random weights in every variant (a weights file is the same anyway)
        backbone = build_backbone(replace(backbone_cfg, channels_last=channels_last))
        if folded:
            backbone.frozen, _ = backbone.folded_frozen()
        backbone.frozen.to(dev)
        dtype = "float32" if name == "fp32_nchw" else features.dtype  # fp32_nchw: the fidelity reference
        cfg = replace(features, channels_last=channels_last, autocast=autocast, dtype=dtype)
        kept: list[tuple[np.ndarray, ...]] = []

        def run(backbone: Any = backbone, cfg: FeatureConfig = cfg, kept: list = kept) -> None:
            kept[:] = [extract_maps(crops, backbone, cfg)]  # ((n, 64, 28, 28), (n, 96, 14, 14))
            if dev.type == "cuda":
                torch.cuda.synchronize()

        extract_maps(crops[: cfg.batch_size], backbone, cfg)  # warm-up: one batch
        out[name] = {"fps": len(crops) / median_seconds(run, repeats)}
        maps[name] = np.concatenate([m.reshape(len(crops), -1) for m in kept[0]], axis=1)  # (n, 68992)
    out["pipeline"] = pipeline_variant(features, dev)
    out["batch_size"] = features.batch_size
    return out, maps
