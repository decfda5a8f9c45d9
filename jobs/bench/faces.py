"""The face stage's methods side by side on the benchmark's default and hard sets.

`FACE_METHODS` names each method by what it changes in the face stage's settings
(`pipeline.faces.detect.FaceConfig`, field -> value). "today" is the face stage before refinement
(`follow` "detect", pinned since the default became "refine"), "refine" the pipeline's default. A new
method is one more entry, such as `"name": {"<field>": <value>}`, measured beside today's with
`lwaffect bench --face-methods today,name`. Should the default of a field that picks the method change,
pin "today" to the old value here, so that it stays today's method.

`bench_faces` runs the face stage of every method over every set (`jobs.bench.stages.face_pass`: decode,
detect + track, align, in this process) and scores every subject against the truth (`jobs.bench.scores`):
the found share of the true face frames, the median IoU, boxes on frames without a face, identity
switches; the frames/s and worker milliseconds per decoded frame of detect + track, and of alignment,
timed as the pipeline's face worker runs (one torch thread) in that thread's CPU seconds, the methods
taking turns, each video's least time of the turns kept. Each set is pooled over its frames, and each
video is reported on its own too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from jobs.bench.scores import pooled
from jobs.bench.stages import FacePass, face_pass
from jobs.bench.videos import BenchVideo
from jobs.extract.config import FaceSettings
from pipeline.faces.config import FaceConfig

FACE_METHODS: dict[str, dict[str, Any]] = {
    # the face stage before refinement: whole downscaled frames detected at every sample, and every frame
    # between two samples where a face changed
    "today": {"follow": "detect"},
    # faces followed between whole-frame detections by MTCNN's R-Net and O-Net on full-resolution crops
    # around each face (pipeline.faces.follow, pipeline.faces.refine): the pipeline's default
    "refine": {"follow": "refine"},
    # MTCNN on every frame at full resolution, through the same tracker: the reference of what detection
    # alone finds (slow: about 1 s per 1080p frame on one CPU core)
    "full_every_frame": {"every": 1, "work_size": 4096, "follow": "detect"},
}


def check_methods(names: Sequence[str]) -> None:
    """ValueError naming the known methods unless `names` are one or more keys of `FACE_METHODS`."""
    unknown = [n for n in names if n not in FACE_METHODS]
    if unknown or not names:
        raise ValueError(
            f"unknown face method {', '.join(unknown) or '(none)'}; known: {', '.join(FACE_METHODS)}"
        )


def parse_methods(text: str) -> tuple[str, ...]:
    """Comma-separated method names, each a key of `FACE_METHODS`, in the order given."""
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    check_methods(names)
    return names


def method_settings(settings: FaceSettings, overrides: Mapping[str, Any]) -> FaceSettings:
    """`settings` with the face stage's `FaceConfig` changed by `overrides` (lists become tuples)."""
    known = {f.name for f in fields(FaceConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"FaceConfig has no field {', '.join(unknown)}; its fields: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return replace(settings, face=replace(settings.face, **values))


def pass_figures(passed: FacePass) -> dict[str, Any]:
    """Pooled scores, speed and the worst video's found share of one method on one set."""
    found = {v.name: pooled(v.scores.values()).found_pct for v in passed.videos}
    worst = min((n for n in found if np.isfinite(found[n])), key=found.__getitem__, default=None)
    return {
        **passed.score.figures(),
        "videos": float(len(passed.videos)),
        "decoded_frames": passed.frames,
        "fps": passed.frames / passed.face_seconds,
        "ms_per_frame": 1000 * passed.face_seconds / passed.frames,
        "align_ms_per_frame": 1000 * passed.align_seconds / passed.frames,
        "worst_video_found_pct": found[worst] if worst else float("nan"),
        "worst_video": worst or "-",
    }


def video_figures(passed: FacePass, set_name: str) -> dict[str, dict[str, Any]]:
    """Per video of one method's pass: its variant, set, scores (subjects pooled) and speed."""
    out = {}
    for v in passed.videos:
        score = pooled(v.scores.values())
        out[v.name] = {
            "variant": v.variant,
            "set": set_name,
            "subjects": float(len(v.scores)),
            **score.figures(),
            "ms_per_frame": 1000 * v.detect_s / v.frames,
        }
    return out


def bench_faces(
    sets: Mapping[str, Sequence[BenchVideo]],
    methods: Sequence[str],
    settings: FaceSettings,
    device: str,
    warmup: BenchVideo,
    repeats: int = 1,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Every method of `methods` (names in `FACE_METHODS`) on every set (name -> videos).

    Timed as a face worker runs on the CPU: one torch thread, in CPU seconds of that thread (the other
    jobs of a shared machine barely move it, where they double wall-clock time). The methods take turns
    `repeats` times (in turn forwards and backwards, so that neither always runs first); each video keeps
    its least time. On a GPU, wall-clock time with the process's threads.
    """
    cpu = torch.device(device).type == "cpu"
    threads, clock = (1, time.thread_time) if cpu else (None, time.perf_counter)
    passes: dict[tuple[str, str], FacePass] = {}
    for turn in range(max(repeats, 1)):
        order = list(methods) if turn % 2 == 0 else list(reversed(methods))
        for method in order:
            chosen = method_settings(settings, FACE_METHODS[method])
            for name, videos in sets.items():
                if not videos:
                    continue
                say(f"bench: face method {method} on the {name} set ({len(videos)} videos, turn {turn + 1})")
                passed = face_pass(videos, chosen, device, 0, warmup, threads, clock)
                passes[(method, name)] = least(passes.get((method, name)), passed)
    clock_name = (
        "thread CPU time, one torch thread as in a face worker"
        if cpu
        else "wall clock, the process's threads"
    )
    out: dict[str, Any] = {"methods": {}, "sets": {}, "videos": {}, "timing": {
        "clock": clock_name, "turns": float(max(repeats, 1))}}  # fmt: skip
    for name, videos in sets.items():
        out["sets"][name] = {"videos": float(len(videos)), "variants": ",".join(v.variant for v in videos)}
    for method in methods:
        out["methods"][method] = {"overrides": json.dumps(FACE_METHODS[method]), "sets": {}}
        out["videos"][method] = {}
        for name in sets:
            if (method, name) in passes:
                out["methods"][method]["sets"][name] = pass_figures(passes[(method, name)])
                out["videos"][method].update(video_figures(passes[(method, name)], name))
    return out


def least(kept: FacePass | None, new: FacePass) -> FacePass:
    """`new` where nothing is kept, else `kept` with each video's times the lesser of the two passes' (the
    records, and so the scores, are the same: the face stage is deterministic)."""
    if kept is None:
        return new
    for video, other in zip(kept.videos, new.videos, strict=True):
        video.detect_s = min(video.detect_s, other.detect_s)
        video.align_s = min(video.align_s, other.align_s)
    kept.face_seconds = sum(v.detect_s for v in kept.videos)
    kept.align_seconds = sum(v.align_s for v in kept.videos)
    return kept
