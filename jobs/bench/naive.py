"""The naive baseline: one frame at a time, every model on every full-resolution frame.

For each frame: decode it (PyAV, sequentially), run MTCNN (facenet-pytorch, its default settings) on the
full-resolution frame, keep the most confident face, align it (the pipeline's 5-point alignment) and run
the frozen backbone on that one crop (batch 1, the pipeline's backbone variant). This is the loop one
writes first; `lwaffect extract` is measured against it. It runs on the first `frames` frames of each
video (MTCNN on full frames is slow) and its frames/s stand for the whole video. Its MTCNN part is also the
baseline of the face stage: MTCNN on every full-resolution frame, with the same IoU and found figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from jobs.bench.scores import pooled, subject_score
from jobs.bench.stages import middle_run
from jobs.bench.videos import BenchVideo
from model.backbone import BackboneConfig, build_backbone
from pipeline.features import FeatureConfig, extract_maps


def detect_one(mtcnn: Any, frame: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The most confident face of one (H, W, 3) frame: box (4,) and landmarks (5, 2), or (None, None)."""
    boxes, probs, points = mtcnn.detect(frame, landmarks=True)
    if boxes is None or len(boxes) == 0:
        return None, None
    probs = np.asarray(probs, np.float64)  # object dtype under numpy 2
    best = int(np.argmax(probs))
    return np.asarray(boxes[best], np.float32), np.asarray(points[best], np.float32).reshape(5, 2)


class NaiveLoop:
    """The per-frame loop on the first `frames` frames of each video, its models loaded and warmed up once,
    so that its passes can be timed at any point of a bench run (`figures`: a block of passes; `fps`: one
    pass, timed next to a run it is compared with)."""

    def __init__(
        self,
        videos: Sequence[BenchVideo],
        frames: int,
        backbone_cfg: BackboneConfig,
        features: FeatureConfig,
        align: Any,
        device: str,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.videos, self.frames, self.align, self.device = videos, frames, align, device
        self.mtcnn = MTCNN(keep_all=True, device=device)
        self.backbone = build_backbone(backbone_cfg)
        self.backbone.frozen.to(device)
        self.one = replace(features, batch_size=1)
        _warm_up(videos[0], self.mtcnn, self.backbone, self.one, align)

    def _pass(self) -> tuple[dict[str, float], int, list[Any]]:
        return _pass(self.videos, self.frames, self.mtcnn, self.backbone, self.one, self.align, self.device)

    def fps(self) -> float:
        """Frames/s of one pass."""
        seconds, done, _ = self._pass()
        return done / sum(seconds.values())

    def figures(self, repeats: int = 1) -> dict[str, Any]:
        """Frames/s of the loop and of its parts: the median of `repeats` passes (of an even count the slower
        middle one, as for the extract command), each pass's frames/s listed in `runs_fps`."""
        passes = [self._pass() for _ in range(max(repeats, 1))]
        runs = [done / sum(seconds.values()) for seconds, done, _ in passes]
        seconds, done, scores = middle_run(passes, key=lambda p: sum(p[0].values()))
        return {
            "frames": float(done),
            "fps": done / sum(seconds.values()),
            "runs_fps": runs,
            "parts_fps": {k: done / v for k, v in seconds.items() if v > 0},
            "mtcnn_full": {"fps": done / seconds["detect"], **pooled(scores).figures()},
        }


def _warm_up(video: BenchVideo, mtcnn: Any, backbone: Any, one: FeatureConfig, align: Any) -> None:
    """Every part once on the first frame of `video`: first calls in a process are slow."""
    import av

    from pipeline.faces.align import align_faces

    with av.open(str(video.path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    box, landmarks = detect_one(mtcnn, frame)
    if box is not None and landmarks is not None:
        crop = align_faces(frame[None], landmarks[None], np.ones(1, bool), align)
        extract_maps(torch.as_tensor(crop).numpy(), backbone, one)


def _pass(
    videos: Sequence[BenchVideo], frames: int, mtcnn: Any, backbone: Any, one: FeatureConfig, align: Any,
    device: str,
) -> tuple[dict[str, float], int, list[Any]]:  # fmt: skip
    """One pass of the loop: seconds per part, frames done, and each video's score."""
    import av

    from pipeline.faces.align import align_faces

    seconds = dict.fromkeys(("decode", "detect", "align", "backbone"), 0.0)
    done, scores = 0, []
    for video in videos:
        index, found, boxes = [], [], []
        with av.open(str(video.path)) as container:
            decoded = container.decode(video=0)
            for i in range(min(frames, video.frames)):
                started = time.perf_counter()
                frame = next(decoded).to_ndarray(format="rgb24")  # (H, W, 3) uint8
                seconds["decode"] += time.perf_counter() - started
                started = time.perf_counter()
                box, landmarks = detect_one(mtcnn, frame)
                seconds["detect"] += time.perf_counter() - started
                index.append(i)
                found.append(box is not None)
                boxes.append(box if box is not None else np.full(4, np.nan, np.float32))
                if box is None or landmarks is None:
                    continue
                started = time.perf_counter()
                crop = align_faces(frame[None], landmarks[None], np.ones(1, bool), align)  # (1, 3, S, S)
                seconds["align"] += time.perf_counter() - started
                started = time.perf_counter()
                extract_maps(torch.as_tensor(crop).numpy(), backbone, one)
                if torch.device(device).type == "cuda":
                    torch.cuda.synchronize()
                seconds["backbone"] += time.perf_counter() - started
        done += len(index)
        truth = next(iter(video.truth.values()))  # the one face of a default benchmark video
        at = np.array(index)
        scores.append(subject_score(truth.face[at], truth.boxes[at], np.array(found), np.stack(boxes)))
    return seconds, done, scores
