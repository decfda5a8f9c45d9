"""The synthetic data set in the EMI (HUME-Vidmimic2) and AH (BAH) layouts; see `pipeline.synth.common`.

EMI: clips `raw/00001.mp4`, ... (one face each, brightness and contrast around a level of the clip's own),
shuffled into train, validation and test (about a quarter
each for validation and test); `train_split.csv` / `valid_split.csv` list the train / validation clips
(`Filename` without extension, ascending) with the six intensities of `synth.emi_intensities`; test clips
are only in `raw/`.

AH: participants `P001`, `P002`, ... answer two questions each:
`videos/<pid>/Visite_1/<pid>_Question_<q>_<date>_Video.mp4`. The last participant is the test split, the
one before it validation, the rest train. `annotation.yml` holds, for every video (keyed by its path below
`videos/`), a `frame_annotation` list of `[<video path>/frame-<k>.jpg, label]` with frames from 0 and label
1 while the face is grey; `default-split/{train,val,test}.txt` hold lines `<video path>,<label>,<transcript>`
with label 1 when any frame is labelled 1. Grey and coloured stretches alternate in every AH video.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from model.tasks import EMI_NAMES, SPLIT_PARTS
from pipeline.io import write_table, write_text
from pipeline.synth.common import (
    TRUTH_DIR,
    SynthConfig,
    ah_labels,
    emi_intensities,
    rng_for,
    tint_plan,
)
from pipeline.synth.video import Track, make_track, overlap_cues, segment_count, write_video

EMI_SPECS: tuple[tuple[int, int, int], ...] = ((25, 640, 360), (30, 854, 480), (25, 640, 480))
AH_SPEC = (30, 640, 360)  # fps, width, height of every AH video
AH_SPLIT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}


def _write(cfg: SynthConfig, name: str, path: str, fps: int, size: tuple[int, int], subject: str,
           track: Track, key: int) -> dict:  # fmt: skip
    """Render, encode and record one one-face video; its manifest entry."""
    truth = write_video(cfg.output / path, fps, size, {subject: track}, rng_for(cfg, key, 99),
                        textured=key % 3 != 1, crf=cfg.crf, preset=cfg.preset,
                        rotation=cfg.rotation)  # fmt: skip
    write_table(cfg.output / TRUTH_DIR / f"{name}.parquet", truth)
    return {"name": name, "path": path, "fps": fps, "width": size[0], "height": size[1],
            "frames": track.frames, "subjects": [subject], "no_face_frames": []}  # fmt: skip


def write_emi(cfg: SynthConfig, say: Callable[[str], None]) -> dict:
    """Write the EMI layout under `cfg.output`; the manifest fields (without layout and seed)."""
    n = cfg.num_videos
    n_test = max(1, round(n / 4)) if n >= 3 else 0
    n_val = max(1, round(n / 4)) if n >= 2 else 0
    order = rng_for(cfg, 2000).permutation(n)
    split_of = {}
    for rank, i in enumerate(order):
        split_of[i + 1] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    specs = {i: EMI_SPECS[(i - 1) % len(EMI_SPECS)] for i in range(1, n + 1)}
    frames = {i: max(8, round(cfg.duration * specs[i][0])) for i in specs}
    tints: dict[int, list[int]] = {}
    for s, split in enumerate(SPLIT_PARTS):
        group = [i for i in specs if split_of[i] == split]
        counts = [segment_count(frames[i], specs[i][0]) for i in group]
        tints.update(zip(group, tint_plan(counts, rng_for(cfg, 1000 + s)), strict=True))
    videos: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    rows: dict[str, list[str]] = {"train": [], "validation": []}
    for i, (fps, width, height) in specs.items():
        name = f"{i:05d}"
        rng = rng_for(cfg, i, 0)
        person = cfg.identity_of(i - 1, split_of[i])
        track = make_track(frames[i], fps, (width, height), (0, width), tints[i], rng, identity=person)
        if cfg.overlap > 0:
            track.strength, track.hue_shift = overlap_cues(track.tint, cfg.overlap, rng_for(cfg, 5000, i))
        # a level of its own for each clip, so that clip means differ: (n,) -> (n,)
        track.brightness = 0.4 * track.brightness + 0.6 * rng.uniform()
        track.contrast = 0.4 * track.contrast + 0.6 * rng.uniform()
        videos.append(_write(cfg, name, f"raw/{name}.mp4", fps, (width, height), name, track, i))
        subjects.append({"name": name, "video": name, "position": "main", "split": {"emi": split_of[i]}})
        if split_of[i] != "test":
            values = emi_intensities(track.brightness, track.contrast, track.tint, track.marks)
            rows[split_of[i]].append(",".join([name, *(f"{values[k]:.4f}" for k in EMI_NAMES)]))
        say(f"raw/{name}.mp4: {width}x{height} at {fps} fps, {frames[i]} frames, {split_of[i]}")
    header = ",".join(["Filename", *EMI_NAMES])
    for split, file in (("train", "train_split.csv"), ("validation", "valid_split.csv")):
        write_text(cfg.output / file, "\n".join([header, *rows[split]]) + "\n")
    splits = {
        "emi": {split: [s["name"] for s in subjects if s["split"]["emi"] == split] for split in SPLIT_PARTS}
    }
    labelled = {"emi": {split: len(rows[split]) for split in rows}}
    return {"videos": videos, "subjects": subjects, "splits": splits, "labelled": labelled,
            "invalid": {"emi": {split: 0 for split in rows}}}  # fmt: skip


def ah_tints(frames: int, fps: int, rng: np.random.Generator) -> list[int]:
    """Tints of the segments of one AH video: grey and a random colour (or none) in alternation."""
    count = segment_count(frames, fps)
    first = int(rng.integers(2))
    return [7 if (k + first) % 2 == 0 else int(rng.integers(7)) for k in range(count)]


def write_ah(cfg: SynthConfig, say: Callable[[str], None]) -> dict:
    """Write the AH layout under `cfg.output`; the manifest fields (without layout and seed)."""
    n = cfg.num_videos
    participants = math.ceil(n / 2)
    fps, width, height = AH_SPEC
    frames = max(8, round(cfg.duration * fps))
    videos: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    yml: list[str] = []
    lines: dict[str, list[str]] = {split: [] for split in AH_SPLIT_FILES}
    labelled = {"ah": {split: 0 for split in AH_SPLIT_FILES}}
    for i in range(1, n + 1):
        p, q = (i + 1) // 2, 2 - i % 2
        split = (
            "test"
            if p == participants and p >= 2
            else "validation"
            if p == participants - 1 >= 2
            else "train"
        )
        pid, date = f"P{p:03d}", f"2024{1 + p % 12:02d}{1 + (7 * p) % 28:02d}"
        name = f"{pid}_Question_{q}_{date}_Video"
        subject = f"{pid}/Visite_1/{name}.mp4"
        rng = rng_for(cfg, i, 0)
        track = make_track(frames, fps, (width, height), (0, width), ah_tints(frames, fps, rng), rng,
                           identity=cfg.identity_of(p - 1, split))  # fmt: skip
        if cfg.overlap > 0:
            track.strength, track.hue_shift = overlap_cues(track.tint, cfg.overlap, rng_for(cfg, 5000, i))
        videos.append(_write(cfg, name, f"videos/{subject}", fps, (width, height), subject, track, i))
        subjects.append({"name": subject, "video": name, "position": "main", "split": {"ah": split}})
        labels = ah_labels(track.tint)
        yml += [f"{subject}:", "  frame_annotation:"]
        yml += [f"  - [{subject}/frame-{k}.jpg, {label}]" for k, label in enumerate(labels)]
        lines[split].append(f"{subject},{int(labels.max())},synthetic answer to question {q}")
        labelled["ah"][split] += frames
        say(f"videos/{subject}: {width}x{height} at {fps} fps, {frames} frames, {split}")
    write_text(cfg.output / "annotation.yml", "\n".join(yml) + "\n")
    for split, file in AH_SPLIT_FILES.items():
        write_text(cfg.output / "default-split" / file, "".join(f"{line}\n" for line in lines[split]))
    splits = {"ah": {split: [s["name"] for s in subjects if s["split"]["ah"] == split] for split in lines}}
    return {"videos": videos, "subjects": subjects, "splits": splits, "labelled": labelled,
            "invalid": {"ah": {split: 0 for split in lines}}}  # fmt: skip
