"""The extraction's face stage for Ray Data: per video, decode, detect/track and align face crops.

One work item (a video, its path and its subjects as JSON) -> batches of stage rows (`jobs.extract.rows`):
one batch per subject and decode chunk with the face records and the aligned crops, then an END or FAIL
row per subject. `FaceStage` is stateful per video (tracking across chunks), so it is a generator over a
whole video; it holds only the chunks the tracker still lags behind (`FrameBuffer`). With organiser crops
(`FaceSettings.mode` "cropped-aligned") it decodes only to count frames and reads the crops from files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jobs.extract.config import FaceSettings
from jobs.extract.rows import END, FAIL, FRAME, blank_rows, marker
from jobs.extract.runtime import node_address
from pipeline.faces.align import AlignConfig, align_faces
from pipeline.faces.detect import load_detector
from pipeline.faces.track import FaceTracker
from pipeline.video.decode import DecodeConfig, iter_chunks
from pipeline.video.probe import VideoError, probe_video


class FrameBuffer:
    """Decoded chunks the tracker has not yet emitted records for."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)

    def align(
        self, index: np.ndarray, landmarks: np.ndarray, face: np.ndarray, cfg: AlignConfig
    ) -> np.ndarray:
        """Aligned crops (n, 3, S, S) uint8 of the frames with decode indices `index` (n,), landmarks
        (n, 5, 2) and face flags (n,); aligned chunk by chunk from views of the decoded frames, so no
        whole frame is copied (a 720p frame is 2.8 MB, its crop 150 kB)."""
        index = np.asarray(index)
        out = np.zeros((len(index), 3, cfg.size, cfg.size), np.uint8)
        covered = np.zeros(len(index), bool)
        for chunk in self.chunks:
            rows = np.flatnonzero((index >= chunk.start) & (index < chunk.stop))
            if rows.size == 0:
                continue
            lo, hi = int(index[rows].min()), int(index[rows].max()) + 1
            at = index[rows] - lo  # rows' places in the span lo..hi of this chunk
            span_face = np.zeros(hi - lo, bool)
            span_face[at] = face[rows]
            span_marks = np.zeros((hi - lo, 5, 2), np.float32)
            span_marks[at] = landmarks[rows]
            frames = chunk.frames[lo - chunk.start : hi - chunk.start]  # (m, H, W, 3) view, no copy
            out[rows] = align_faces(frames, span_marks, span_face, cfg).numpy()[at]
            covered[rows] = True
        if not covered.all():
            missing = index[~covered][:5].tolist()
            raise RuntimeError(f"frames {missing} are no longer buffered (internal error)")
        return out

    def drop_before(self, index: int) -> None:
        self.chunks = [c for c in self.chunks if c.stop > index]


def _crop_files(root: Path, subject: str, start: int, stop: int) -> list[Path | None]:
    # organiser crops are numbered from 1: decode index i -> NNNNN.jpg with NNNNN = i + 1
    folder = root / subject
    return [p if (p := folder / f"{i + 1:05d}.jpg").is_file() else None for i in range(start, stop)]


def load_crops(files: list[Path | None], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Organiser crops resized to size x size: ((n, 3, size, size) uint8, (n,) bool present)."""
    from PIL import Image

    present = np.array([f is not None for f in files])
    crops = np.zeros((len(files), 3, size, size), np.uint8)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files if f is not None]
    if images:
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (k, h, w, 3) -> (k, 3, h, w)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        crops[present] = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return crops, present


class FaceStage:
    """Ray Data stage: one work item (a video and its subjects) -> batches of rows with face crops."""

    def __init__(
        self,
        settings: FaceSettings,
        device: str = "cpu",
        threads: int = 1,
        clock: Callable[[], float] = time.perf_counter,  # times the parts; the benchmark passes CPU time
    ):
        torch.set_num_threads(threads)
        self.settings, self.clock = settings, clock
        self.detector = load_detector(device, cfg=settings.face) if settings.mode == "detect" else None
        self.node = node_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for video, path, subjects in zip(batch["video"], batch["path"], batch["subjects"], strict=True):
            yield from self.video(str(video), Path(str(path)), [tuple(s) for s in json.loads(str(subjects))])

    def video(
        self, video: str, path: Path, subjects: list[tuple[str, str]]
    ) -> Iterator[dict[str, np.ndarray]]:
        """Rows of every subject (name, position) of one video, then an END or FAIL row per subject."""
        size = self.settings.crop_size
        emitted = dict.fromkeys((s for s, _ in subjects), 0)
        faces = dict.fromkeys(emitted, 0)
        try:
            info = probe_video(path)
            claimed, decode = info.frame_count, self.settings.decode_for(info.width, info.height)
            source = self._detect if self.detector is not None else self._organiser
            for rows in source(video, path, subjects, decode):
                rows["node"][:] = self.node
                subject = str(rows["subject"][0])
                emitted[subject] += len(rows["index"])
                faces[subject] += int(rows["face"].sum())
                yield rows
            decoded = max(emitted.values())
            if claimed and decoded < claimed * (1 - self.settings.max_missing) - 1:
                raise VideoError(path, f"truncated: the container claims {claimed} frames, {decoded} decoded")
        except Exception as err:  # every failure ends as a FAIL row; the run goes on
            stage = "decode" if isinstance(err, VideoError) else "faces"
            reason = str(err) if isinstance(err, VideoError) else f"{path}: {type(err).__name__}: {err}"
            for subject in emitted:
                yield marker(subject, video, FAIL, size, stage=stage, reason=reason)
            return
        for subject, n in emitted.items():
            if faces[subject] == 0:
                what = "no face found" if self.detector is not None else "no organiser crop"
                yield marker(
                    subject, video, FAIL, size, stage="faces", reason=f"{path}: {what} in {n} frames"
                )
            else:
                yield marker(subject, video, END, size, frames=n)

    def _detect(
        self, video: str, path: Path, subjects: list[tuple[str, str]], decode: DecodeConfig
    ) -> Iterator[dict[str, np.ndarray]]:
        cfg = self.settings
        wanted = {p for _, p in subjects}
        positions = ("left", "right") if wanted & {"left", "right"} else ("main",)
        buffer, tracker, share = FrameBuffer(), None, 1.0 / len(subjects)
        needed = dict.fromkeys(wanted, 0)  # first frame index not yet emitted, per wanted position
        chunks = iter_chunks(path, decode)
        while True:
            started = self.clock()
            chunk = next(chunks, None)
            t_decode = self.clock() - started
            started = self.clock()
            if chunk is not None and tracker is None:
                tracker = FaceTracker(cfg.face, positions, self.detector, tuple(chunk.frames.shape[1:3]))
            if chunk is not None:
                buffer.add(chunk)
            records = {} if tracker is None else tracker.push(chunk) if chunk is not None else tracker.flush()
            records = {p: r for p, r in records.items() if p in wanted and len(r.index)}
            t_detect = self.clock() - started
            total = sum(len(records[p].index) for _, p in subjects if p in records) or 1  # rows of this call
            for subject, position in subjects:
                if position not in records:
                    continue
                rec = records[position]
                started = self.clock()
                index = np.asarray(rec.index, np.int32)
                face = np.asarray(rec.face, bool)
                landmarks = np.asarray(rec.landmarks, np.float32).reshape(-1, 5, 2)
                crops = buffer.align(index, landmarks, face, cfg.align)  # (n, 3, S, S) uint8
                rows = blank_rows(subject, video, FRAME, len(index), cfg.crop_size)
                rows.update(
                    index=index,
                    face=face,
                    box=np.asarray(rec.box, np.float32).reshape(-1, 4),
                    score=np.asarray(rec.score, np.float32),
                    landmarks=landmarks,
                    source=np.asarray(rec.source, dtype=object),
                    crops=crops,
                )
                rows["t_align"][:] = (self.clock() - started) / len(index)
                rows["t_decode"][:] = t_decode / total  # this call's decode and detection time, shared
                rows["t_detect"][:] = t_detect / total
                rows["w_video"][:] = share
                needed[position] = int(index.max()) + 1
                yield rows
            if chunk is None:
                return
            buffer.drop_before(min(needed.values()))

    def _organiser(
        self, video: str, path: Path, subjects: list[tuple[str, str]], decode: DecodeConfig
    ) -> Iterator[dict[str, np.ndarray]]:
        cfg = self.settings
        root = Path(cfg.crops_root or "")
        share = 1.0 / len(subjects)
        chunks = iter_chunks(path, decode)
        while True:
            started = self.clock()
            chunk = next(chunks, None)
            t_decode = self.clock() - started
            if chunk is None:
                return
            for subject, _ in subjects:
                started = self.clock()
                files = _crop_files(root, subject, chunk.start, chunk.stop)
                crops, present = load_crops(files, cfg.crop_size)
                n = len(files)
                rows = blank_rows(subject, video, FRAME, n, cfg.crop_size)
                rows.update(
                    index=np.arange(chunk.start, chunk.stop, dtype=np.int32),
                    face=present,
                    score=np.where(present, 1.0, 0.0).astype(np.float32),
                    source=np.where(present, "detected", "none").astype(object),
                    crops=crops,
                )
                rows["t_detect"][:] = (self.clock() - started) / n  # reading the crops
                rows["t_decode"][:] = t_decode / (n * len(subjects))
                rows["w_video"][:] = share
                yield rows
