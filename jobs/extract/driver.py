"""`lwaffect extract`: precompute the feature cache of an input folder on Ray (local or a cluster).

Pipeline (Ray Data, streaming; nothing holds a whole video):

```
work items (one per video: path + subjects still to cache, longest videos first)
  -> FaceStage     actor pool: decode in chunks, detect/track (stateful per video), align -> crop rows
  -> BackboneStage actor pool: frozen backbone on the face rows -> the cached maps (float16)
     (CropStage instead for a crop cache, --cache-kind crops or N >= 4: the face crops -> JPEG images)
  -> WriteStage    one actor: streams each subject's rows into its shard (temporary name), closes it (rename
                   into place) once complete -> summary rows
  -> driver        progress, stage times; lists each closed shard in the manifest (no map reaches it;
                   rewritten at most every MANIFEST_EVERY_S, and at the end)
```

Sizing (`jobs.extract.plan.plan_stages`): the CPU reservations of the pools never add up to every CPU, so no
stage starves; on 2 CPUs one face worker (1 CPU), one backbone worker (0.5 CPU) and the writer (0.25 CPU).
Face workers take one video at a time; the backbone batches rows across videos.

Every stage measures its own seconds per row; the driver sums them into the per-stage table. A video
that fails (unreadable, truncated, no face, or its worker died on it twice: `RuntimeConfig.task_retries`)
becomes rows of the failures table and the run goes on;
`ExtractReport.exit_code` is 2 when anything failed. Run as `python -m jobs.extract ...` for
`ray job submit` (same flags as `lwaffect extract`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from jobs.extract.config import ExtractConfig
from jobs.extract.dataset import build_dataset
from jobs.extract.plan import plan_stages
from jobs.extract.rows import END, FAIL, FRAME, summaries
from jobs.extract.runtime import RayStart, ray_session
from jobs.extract.select import select_subjects
from jobs.extract.spec import cache_spec, known_spec
from jobs.progress import Bar, ProgressDisplay, progress_display
from pipeline.cache.backbone_spec import forget as forget_spec
from pipeline.cache.backbone_spec import remember as remember_spec
from pipeline.cache.layout import shard_file
from pipeline.cache.schema import ManifestEntry
from pipeline.cache.spec import SpecMismatch
from pipeline.cache.write import CacheWriter, Failure
from pipeline.datasets import Catalogue, load_catalogue

STAGES = ("decode", "detect", "align", "backbone", "write")
# the manifest is rewritten at most this often while shards close (and once at the end): a run of many short
# clips would otherwise rewrite the whole table for every one (`CacheWriter`'s `manifest_every_s`)
MANIFEST_EVERY_S = 2.0
# the failure of a subject whose work never came back: its worker process died on it, also when tried again
NO_RESULT = (
    "no result: the worker died while working on it, also when it was tried again (killed for memory, or "
    "a crash in native code; the Ray logs say which)"
)
Say = Callable[[str], None]


@dataclass
class StageTime:
    """Frames a stage handled and the worker seconds it spent (summed over its workers)."""

    frames: float = 0.0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class ExtractReport:
    """What an extraction did."""

    cache: str  # cache location
    cached: list[str] = field(default_factory=list)  # subjects whose shard this run wrote
    skipped: list[str] = field(default_factory=list)  # subjects already complete with the same spec
    failures: list[Failure] = field(default_factory=list)  # subjects that could not be cached
    frames: float = 0.0  # decoded video frames
    rows: int = 0  # cached rows (frames x subjects)
    wall_s: float = 0.0  # wall-clock seconds of the call, Ray and models starting included (from ray_start)
    startup_s: float = 0.0  # seconds until the first result came back (Ray start, model loading, first chunk)
    stages: dict[str, StageTime] = field(default_factory=lambda: {s: StageTime() for s in STAGES})
    plan: str = ""  # stage pool sizes
    nodes: set[str] = field(default_factory=set)  # Ray nodes the face and write stages ran on

    @property
    def exit_code(self) -> int:
        return 2 if self.failures else 0

    @property
    def fps(self) -> float:
        """Decoded frames per wall-clock second, Ray start and model loading included."""
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def steady_fps(self) -> float:
        """Decoded frames per second after the first result (start-up excluded)."""
        busy = self.wall_s - self.startup_s
        return self.frames / busy if busy > 0 else float("nan")

    def table(self) -> str:
        lines = [f"{'stage':<10} {'frames':>9} {'seconds':>9} {'frames/s':>9}"]
        for name, t in self.stages.items():
            lines.append(f"{name:<10} {t.frames:>9.0f} {t.seconds:>9.2f} {t.fps:>9.1f}")
        lines.append(f"{'end-to-end':<10} {self.frames:>9.0f} {self.wall_s:>9.2f} {self.fps:>9.1f}")
        return "\n".join(lines)


class Progress:
    """Driver-side state: per-video and overall progress, stage times, the manifest as shards complete.

    Progress shows on `display` (`jobs.progress`): a bar per video in flight (its frames out of the
    container's count) and one overall (frames of every video, the videos done in its label); without a
    terminal, a plain line every 15 s and one per finished video.
    """

    def __init__(self, writer: CacheWriter, items: list[dict], report: ExtractReport, say: Say,
                 display: ProgressDisplay | None = None,
                 adopt: Callable[[dict], None] | None = None):  # fmt: skip
        """`adopt`: takes the backbone spec the backbone workers described, where the writer has no spec."""
        self.writer, self.report, self.say, self.adopt = writer, report, say, adopt
        self.display = display or ProgressDisplay(say, bars=False)
        self.expected = {item["video"]: item.get("frames") for item in items}  # container frame counts
        counts = list(self.expected.values())
        total = sum(int(c) for c in counts if c is not None) if counts and None not in counts else None
        self.overall = self.display.bar(self._label(0), total, "frames", every_s=15.0, keep=True)
        self.bars: dict[str, Bar] = {}  # video -> its bar while in flight
        self.video_of = {s: item["video"] for item in items for s, _ in json.loads(item["subjects"])}
        self.pending = {item["video"]: {s for s, _ in json.loads(item["subjects"])} for item in items}
        self.failed: dict[str, Failure] = {}
        self.videos_done, self.started = 0, time.perf_counter()

    def _label(self, done: int) -> str:
        return f"extract {done}/{len(self.expected)} videos"

    def _advance(self, video: str, frames: float) -> None:
        self.overall.advance(frames)
        if self.display.live is None:  # per-video bars only on a terminal; lines come per finished video
            return
        bar = self.bars.get(video)
        if bar is None:
            bar = self.bars[video] = self.display.bar(f"  {video}", self.expected.get(video), "frames")
        bar.advance(frames)

    def update(self, batch: dict[str, np.ndarray]) -> None:
        stages = self.report.stages
        for summary in summaries(batch):
            self.report.nodes.update(summary.nodes)
            stages["write"].seconds += summary.times["t_write"]
            if summary.kind == FRAME:
                w, n_face = summary.times["w_video"], summary.times["n_face"]
                self.report.frames += w
                self._advance(self.video_of[summary.subject], w)
                for name, frames in (("decode", w), ("detect", w), ("align", n_face), ("backbone", n_face)):
                    stages[name].frames += frames
                    stages[name].seconds += summary.times[f"t_{name}"]
                stages["write"].frames += summary.stop - summary.start
            elif summary.kind == END:
                if self.writer.spec is None and summary.backbone_spec and self.adopt is not None:
                    self.adopt(json.loads(summary.backbone_spec))
                self._cached(summary.subject, summary.frames, summary.faces, summary.bytes)
            elif summary.kind == FAIL:
                self._fail(
                    Failure(self.video_of[summary.subject], summary.subject, summary.stage, summary.reason)
                )

    def _cached(self, subject: str, frames: int, faces: int, size: int) -> None:
        if subject in self.failed or subject in self.report.cached:
            return
        video = self.video_of[subject]
        made_with = self.writer.spec_hash
        if made_with is None:  # the write stage sends the spec with a new cache's first complete shard
            raise RuntimeError(
                f"{subject}'s shard was closed in a new cache without the spec it was made with"
            )
        entry = ManifestEntry(subject, video, frames, faces, size, made_with, shard_file(subject))
        self.writer.record(entry)
        self.report.cached.append(subject)
        self.report.rows += frames
        self.say(f"  cached {subject}: {frames} frames, {faces} with a face, {size / 2**20:.1f} MiB")
        self._resolved(subject)

    def _fail(self, failure: Failure) -> None:
        if failure.subject in self.failed or failure.subject in self.report.cached:
            return
        self.failed[failure.subject] = failure
        self.report.failures.append(failure)
        self.say(f"  failed {failure.subject} ({failure.stage}): {failure.reason}")
        self._resolved(failure.subject)

    def _resolved(self, subject: str) -> None:
        video = self.video_of[subject]
        left = self.pending[video]
        left.discard(subject)
        if not left:
            self.videos_done += 1
            self.overall.advance(0, label=self._label(self.videos_done))
            if video in self.bars:
                self.bars.pop(video).close()
            elapsed = time.perf_counter() - self.started
            self.say(
                f"[{self.videos_done}/{len(self.pending)} videos] {video} done; "
                f"{self.report.frames:,.0f} frames, {self.report.frames / max(elapsed, 1e-9):.1f} frames/s overall"
            )

    def finish(self) -> None:
        """Subjects that got no result at all are failures."""
        for subject, video in self.video_of.items():
            if subject not in self.failed and subject not in self.report.cached:
                self._fail(Failure(video, subject, "pipeline", NO_RESULT))
        self.close()

    def close(self) -> None:
        """Take the bars off the display."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        self.overall.close()


def extract(cfg: ExtractConfig, say: Say | None = None, ray_start: RayStart | None = None) -> ExtractReport:
    """Extract every subject of the split that has no complete shard yet; returns what happened.

    `ray_start`: Ray begun before this call (`jobs.extract.runtime.RayStart`), which its owner stops; the
    report's wall-clock and start-up seconds then count from its beginning."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    began = time.perf_counter() if ray_start is None else ray_start.began  # start-up counts from there
    catalogue = load_catalogue(cfg.input, strict=False)
    for problem in catalogue.errors:
        say(f"note: {problem}")
    if cfg.faces.mode == "cropped-aligned":
        root = catalogue.cropped_aligned or cfg.input / "cropped_aligned"
        if not Path(root).is_dir():
            raise ValueError(f"--faces cropped-aligned: no cropped_aligned folder under {cfg.input}")
        cfg = replace(cfg, faces=replace(cfg.faces, crops_root=str(root)))
    subjects = select_subjects(catalogue, cfg.split, cfg.subjects)
    # the spec as remembered; else the backbone workers describe it (`jobs.extract.spec`), and it is built
    # here only to compare with a cache that exists
    writer = CacheWriter(cfg.cache, known_spec(cfg) or partial(cache_spec, cfg), rebuild=cfg.rebuild,
                         shard=cfg.shard, manifest_every_s=MANIFEST_EVERY_S)  # fmt: skip
    report = ExtractReport(cache=cfg.cache)
    todo: dict[str, list[tuple[str, str]]] = {}
    for s in subjects:
        if writer.is_complete(s.name):
            report.skipped.append(s.name)
        else:
            todo.setdefault(s.video, []).append((s.name, s.position if cfg.subject == "auto" else "main"))
    say(f"{len(subjects)} subjects in {len(catalogue.videos)} videos; {len(report.skipped)} already cached")
    if not todo:
        writer.write_failures([], [])
        writer.settle()
        return report
    paths = {v: catalogue.videos[v].path for v in todo}
    order = sorted(todo, key=lambda v: -paths[v].stat().st_size if paths[v].is_file() else 0)
    items = [{"video": v, "path": str(paths[v]), "subjects": json.dumps(todo[v])} for v in order]
    runtime = cfg.runtime if cfg.address is None else replace(cfg.runtime, address=cfg.address)
    with progress_display(say) as display:
        frames = {v: _frame_count(catalogue, v) for v in order}
        progress = Progress(
            writer, [{**i, "frames": frames[i["video"]]} for i in items], report, say, display,
            adopt=partial(_adopt, cfg, writer),
        )  # fmt: skip
        _run(cfg, runtime, items, writer, report, progress, began, say, ray_start)
    say(report.table())
    say(f"nodes: {', '.join(sorted(report.nodes))}")
    say(
        f"cached {len(report.cached)} subjects ({report.rows:,} rows), skipped {len(report.skipped)}, "
        f"failed {len(report.failures)}; {report.frames:,.0f} frames in {report.wall_s:.1f} s "
        f"({report.fps:.1f} frames/s end to end; {report.steady_fps:.1f} frames/s after the first "
        f"{report.startup_s:.1f} s of starting Ray and models)"
    )
    return report


def _adopt(cfg: ExtractConfig, writer: CacheWriter, backbone: dict) -> None:
    """The backbone spec the backbone workers described: the cache's, and this machine's memo for the next
    run's driver."""
    writer.adopt(cache_spec(cfg, backbone))
    remember_spec(cfg.backbone, backbone)


def _frame_count(catalogue: Catalogue, video: str) -> int | None:
    """The container's frame count of `video` (for the progress bars); None where it cannot be read."""
    from pipeline.video.probe import VideoError

    try:
        return catalogue.video_info(video).frame_count or None
    except (VideoError, OSError):
        return None


def _mismatch(err: BaseException) -> SpecMismatch | None:
    """The `SpecMismatch` a stage worker raised, out of the Ray error that ended the run; None where that
    came from something else. A worker that fails in its constructor reaches the driver as an
    `ActorDiedError` holding only the worker's traceback as text: the mismatch is read from its last line."""
    tag = f"{SpecMismatch.__module__}.{SpecMismatch.__name__}: "
    seen: BaseException | None = err
    for _ in range(8):  # a few causes deep; a chain of causes can loop
        if seen is None or isinstance(seen, SpecMismatch):
            return seen
        text = str(seen)
        if tag in text:
            return SpecMismatch(text.rsplit(tag, 1)[1].split("\n", 1)[0].strip())
        seen = seen.__cause__
    return None


def _run(cfg: ExtractConfig, runtime: Any, items: list[dict], writer: CacheWriter, report: ExtractReport,
         progress: Progress, began: float, say: Say, ray_start: RayStart | None) -> None:  # fmt: skip
    """The Ray part of `extract`: stream every item through the stages into `progress`."""
    todo = [s for item in items for s, _ in json.loads(item["subjects"])]
    try:
        with ray_session(runtime, ray_start) as resources:
            cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
            plan = plan_stages(runtime, cpus, gpus, cfg.device, videos=len(items))
            report.plan = plan.describe()
            say(f"{len(items)} videos to extract; {report.plan}")
            ds = build_dataset(cfg, plan, items, writer)
            try:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    report.startup_s = report.startup_s or time.perf_counter() - began
                    progress.update(batch)
            except Exception as err:  # a stage worker's spec check stops the run with its own words
                mismatch = _mismatch(err)
                if mismatch is None:
                    raise
                forget_spec(cfg.backbone)  # the next run describes the backbone from its file again
                raise mismatch from None
            progress.finish()
        writer.settle()  # a new cache that got no shard: its spec all the same
        report.wall_s = time.perf_counter() - began
    finally:
        progress.close()
        writer.write_failures(report.failures, todo)
        writer.finish()
