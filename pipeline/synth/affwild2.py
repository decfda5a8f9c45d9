"""The synthetic data set in the Aff-Wild2 layout (see `pipeline.synth.common` for the labels and the manifest).

Video i (from 1) takes frame rate and size from `SPECS` in turn and is named `<i>-<fps>-<W>x<H>`; the
first half goes to `batch1/`, the rest to `batch2/`. About a quarter of the videos (at least one from
three videos on) are test videos, as many validation videos, the rest train videos, in that order. The
hard variants asked for (`SynthConfig.variants`, `pipeline.synth.hard`) follow as validation videos in
`batch2/`, named `<i>-<fps>-<W>x<H>-<variant>`; their tints are planned apart, so that the other videos
are the same with or without them. Video 3
shows two people side by side (subjects `<name>_left`, `<name>_right`, each confined to its half); video 2
has no face over the middle fifth of its frames. Annotation files exist for train and validation
subjects only; test subjects are listed, in order, in the three release lists and the example submissions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model.tasks import AFFWILD2_TASKS, AU_NAMES, SPLIT_PARTS, TASKS
from pipeline.io import write_table, write_text
from pipeline.synth.common import (
    TRUTH_DIR,
    SynthConfig,
    au_labels,
    expr_labels,
    rng_for,
    tint_plan,
    va_labels,
)
from pipeline.synth.hard import HARD, gap_frames, hard_identities, hard_scene
from pipeline.synth.hard import positions as hard_positions
from pipeline.synth.video import Draw, Track, make_track, overlap_cues, segment_count, write_video

# (fps, width, height) of videos 1, 2, 3, ... in turn
SPECS: tuple[tuple[int, int, int], ...] = (
    (25, 640, 360), (30, 1280, 720), (25, 854, 480), (24, 640, 360),
    (30, 854, 480), (25, 640, 360), (24, 1920, 1080), (30, 1280, 720),
)  # fmt: skip
NO_FACE_VIDEO = 2  # index of the video with a stretch without a face
TWO_SUBJECT_VIDEO = 3  # index of the video with two people
ANNOTATIONS = "8th_ABAW_Annotations"
TASK_FOLDERS = {
    "va": "VA_Estimation_Challenge",
    "au": "AU_Detection_Challenge",
    "expr": "EXPR_Recognition_Challenge",
}
SET_FOLDERS = {"train": "Train_Set", "validation": "Validation_Set"}
RELEASE_LISTS = {
    "va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "au": "Action_Unit_Detection_Challenge_test_set_release.txt",
    "expr": "Expression_Recognition_Challenge_test_set_release.txt",
}
EXAMPLES = {task: f"CVPR_8th_ABAW_{task.upper()}_test_set_example.txt" for task in TASK_FOLDERS}
PLACEHOLDER = {"va": "0.0,0.0", "au": ",".join("0" * len(AU_NAMES)), "expr": "0"}
HEADERS = {task: ",".join(TASKS[task].header) for task in AFFWILD2_TASKS}  # annotation file headers


@dataclass(frozen=True)
class VideoPlan:
    """One video of the data set."""

    index: int  # 1-based position, the first field of the name
    fps: int  # frame rate
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    frames: int  # frames written
    split: str  # train, validation or test (of all three tasks)
    positions: tuple[str, ...]  # ("main",) or ("left", "right")
    no_face: tuple[tuple[int, int], ...]  # [start, stop) decode indices without a face
    batch: str  # batch1 or batch2
    variant: str = ""  # the hard variant (pipeline.synth.hard), "" for an ordinary video

    @property
    def name(self) -> str:
        name = f"{self.index}-{self.fps}-{self.width}x{self.height}"
        return f"{name}-{self.variant}" if self.variant else name

    @property
    def path(self) -> str:
        return f"{self.batch}/{self.name}.mp4"

    def subject(self, position: str) -> str:
        return self.name if position == "main" else f"{self.name}_{position}"


def plan_videos(cfg: SynthConfig) -> list[VideoPlan]:
    """The videos of the data set, in index order (train, validation, test, then the hard variants)."""
    n = cfg.num_videos
    n_test = max(1, round(n / 4)) if n >= 3 else 0
    n_val = max(1, round(n / 4)) if n >= 2 else 0
    n_train = n - n_test - n_val
    plans = []
    for index in range(1, n + 1):
        fps, width, height = SPECS[(index - 1) % len(SPECS)]
        seconds = cfg.duration * (2 / 3 if height >= 1080 else 1)  # the largest videos are kept short
        frames = max(8, round(seconds * fps))
        split = "train" if index <= n_train else "validation" if index <= n_train + n_val else "test"
        no_face: tuple[tuple[int, int], ...] = ()
        if index == min(NO_FACE_VIDEO, n):
            no_face = ((round(0.4 * frames), round(0.6 * frames)),)
        if cfg.no_face_share > 0 and not no_face:
            no_face = extra_stretch(frames, fps, cfg.no_face_share, rng_for(cfg, 4000, index))
        positions = ("left", "right") if index == TWO_SUBJECT_VIDEO else ("main",)
        batch = "batch1" if index <= math.ceil(n / 2) else "batch2"
        plans.append(VideoPlan(index, fps, width, height, frames, split, positions, no_face, batch))
    for index, variant in enumerate(cfg.variants, start=n + 1):
        v = HARD[variant]
        frames = max(8, round(cfg.duration * v.fps))
        gap = tuple(gap_frames(frames, v.gap))
        plans.append(VideoPlan(index, v.fps, v.width, v.height, frames, "validation", hard_positions(variant),
                               gap, "batch2", variant))  # fmt: skip
    return plans


def extra_stretch(
    frames: int, fps: int, share: float, rng: np.random.Generator
) -> tuple[tuple[int, int], ...]:
    """With probability `share`, one faceless [start, stop) stretch of 0.3-0.8 s (at most 30 % of the video)
    inside 15-85 % of the video."""
    if rng.random() >= share:
        return ()
    length = max(2, min(round(rng.uniform(0.3, 0.8) * fps), round(0.3 * frames)))
    lo, hi = round(0.15 * frames), round(0.85 * frames) - length
    if hi <= lo:
        return ()
    start = int(rng.integers(lo, hi))
    return ((start, start + length),)


def invalid_mask(frames: int, no_face: tuple[tuple[int, int], ...], rng: np.random.Generator) -> np.ndarray:
    """(frames,) bool valid: False over the no-face ranges and 1-2 random runs of 1-4 frames."""
    valid = np.ones(frames, dtype=bool)
    for start, stop in no_face:
        valid[start:stop] = False
    for _ in range(rng.integers(1, 3)):
        start = int(rng.integers(0, frames - 4))
        valid[start : start + int(rng.integers(1, 5))] = False
    return valid


def annotation_lines(task: str, track: Track, valid: np.ndarray) -> str:
    """The annotation file of one subject and task: header, then one line per frame."""
    invalid = TASKS[task].invalid
    if task == "va":
        values = va_labels(track.brightness, track.contrast) + 0.0  # + 0.0 turns -0.0 into 0.0
        rows = [f"{v:.3f},{a:.3f}" for v, a in values]
        bad = f"{invalid:g},{invalid:g}"
    elif task == "au":
        rows = [",".join(map(str, row)) for row in au_labels(track.marks)]
        bad = ",".join([f"{invalid:g}"] * len(AU_NAMES))
    else:
        rows = [str(c) for c in expr_labels(track.tint)]
        bad = f"{invalid:g}"
    lines = [row if ok else bad for row, ok in zip(rows, valid, strict=True)]
    return "\n".join([HEADERS[task], *lines]) + "\n"


def plan_tracks(
    cfg: SynthConfig, plan: VideoPlan, tints: dict[str, list[int]]
) -> tuple[dict[str, Track], Draw | None]:
    """The faces of a planned video (subject name -> track) and how its frames are drawn (None: the
    faces as they are); `tints` per position."""
    if plan.variant:
        names = {pos: plan.subject(pos) for pos in plan.positions}
        return hard_scene(plan.variant, plan.frames, rng_for(cfg, plan.index, 0), tints,
                          hard_identities(plan.variant, cfg.seed), names)  # fmt: skip
    tracks: dict[str, Track] = {}
    for k, pos in enumerate(plan.positions):
        half = plan.width // 2
        region = {"main": (0, plan.width), "left": (0, half), "right": (half, plan.width)}[pos]
        track = make_track(
            plan.frames, plan.fps, (plan.width, plan.height), region, tints[pos],
            rng_for(cfg, plan.index, k), absent=plan.no_face,
            identity=cfg.identity_of(plan.index - 1 + k, plan.split),
        )  # fmt: skip
        if cfg.overlap > 0:
            track.strength, track.hue_shift = overlap_cues(track.tint, cfg.overlap,
                                                           rng_for(cfg, 5000, plan.index, k))  # fmt: skip
        tracks[plan.subject(pos)] = track
    return tracks, None


def write_affwild2(cfg: SynthConfig, say: Callable[[str], None]) -> dict:
    """Write the Aff-Wild2 layout under `cfg.output`; the manifest fields (without layout and seed)."""
    root = cfg.output
    plans = plan_videos(cfg)
    # tints: every class once per split before any repeats, spread over that split's subjects
    keys = [(plan, pos) for plan in plans for pos in plan.positions]
    tints: dict[tuple[int, str], list[int]] = {}
    for s, split in enumerate(SPLIT_PARTS):
        group = [(p, pos) for p, pos in keys if p.split == split and not p.variant]
        counts = [segment_count(p.frames, p.fps) for p, _ in group]
        for (p, pos), plan_tints in zip(group, tint_plan(counts, rng_for(cfg, 1000 + s)), strict=True):
            tints[p.index, pos] = plan_tints
    hard = [(p, pos) for p, pos in keys if p.variant]  # planned apart: the other videos stay the same
    counts = [segment_count(p.frames, p.fps) for p, _ in hard]
    for (p, pos), plan_tints in zip(hard, tint_plan(counts, rng_for(cfg, 6000)), strict=True):
        tints[p.index, pos] = plan_tints
    videos, subjects = [], []
    splits: dict[str, dict[str, list[str]]] = {t: {s: [] for s in SPLIT_PARTS} for t in TASK_FOLDERS}
    labelled = {t: {s: 0 for s in SPLIT_PARTS[:2]} for t in TASK_FOLDERS}
    invalid = {t: {s: 0 for s in SPLIT_PARTS[:2]} for t in TASK_FOLDERS}
    examples: dict[str, list[str]] = {t: [] for t in TASK_FOLDERS}
    for plan in plans:
        tracks, draw = plan_tracks(cfg, plan, {pos: tints[plan.index, pos] for pos in plan.positions})
        truth = write_video(
            root / plan.path, plan.fps, (plan.width, plan.height), tracks, rng_for(cfg, plan.index, 99),
            textured=plan.index % 3 != 1, crf=cfg.crf, preset=cfg.preset, draw=draw, rotation=cfg.rotation,
        )  # fmt: skip
        write_table(root / TRUTH_DIR / f"{plan.name}.parquet", truth)
        for k, (name, track) in enumerate(tracks.items()):
            position = plan.positions[k]
            subjects.append({"name": name, "video": plan.name, "position": position,
                             "split": {task: plan.split for task in TASK_FOLDERS}})  # fmt: skip
            for t, task in enumerate(TASK_FOLDERS):
                splits[task][plan.split].append(name)
                if plan.split == "test":
                    lines = [f"{name}/{i + 1:05d}.jpg,{PLACEHOLDER[task]}" for i in range(plan.frames)]
                    examples[task] += lines
                    continue
                valid = invalid_mask(plan.frames, plan.no_face, rng_for(cfg, plan.index, k, 10 + t))
                valid &= track.face  # a face hidden behind another (hard crossing) is not labelled either
                folder = root / ANNOTATIONS / TASK_FOLDERS[task] / SET_FOLDERS[plan.split]
                write_text(folder / f"{name}.txt", annotation_lines(task, track, valid))
                labelled[task][plan.split] += int(valid.sum())
                invalid[task][plan.split] += int((~valid).sum())
        videos.append({"name": plan.name, "path": plan.path, "fps": plan.fps, "width": plan.width,
                       "height": plan.height, "frames": plan.frames, "subjects": list(tracks),
                       "no_face_frames": [list(r) for r in plan.no_face],
                       **({"variant": plan.variant} if plan.variant else {})})  # fmt: skip
        say(f"{plan.path}: {plan.width}x{plan.height} at {plan.fps} fps, {plan.frames} frames, "
            f"{plan.split}, {' + '.join(tracks)}{f' (hard: {plan.variant})' if plan.variant else ''}")  # fmt: skip
    for task in TASK_FOLDERS:
        write_text(root / RELEASE_LISTS[task], "".join(f"{n}\n" for n in splits[task]["test"]))
        header = ",".join(["image_location", *TASKS[task].header])
        write_text(root / EXAMPLES[task], "\n".join([header, *examples[task]]) + "\n")
    return {"videos": videos, "subjects": subjects, "splits": splits, "labelled": labelled,
            "invalid": invalid}  # fmt: skip
