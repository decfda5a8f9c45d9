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
switches; the frames/s and worker milliseconds per decoded frame of detect + track, and of alignment.
Each set is pooled over its frames, and each video is reported on its own too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np

from jobs.bench.scores import pooled
from jobs.bench.stages import FacePass, face_pass
from jobs.bench.videos import BenchVideo
from jobs.extract.config import FaceSettings
from pipeline.faces.detect import FaceConfig

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
    done: Mapping[tuple[str, str], FacePass] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Every method of `methods` (names in `FACE_METHODS`) on every set (name -> videos).

    `done` holds passes already measured, by (method, set): they are not run again.
    """
    out: dict[str, Any] = {"methods": {}, "sets": {}, "videos": {}}
    for name, videos in sets.items():
        out["sets"][name] = {"videos": float(len(videos)), "variants": ",".join(v.variant for v in videos)}
    for method in methods:
        overrides = FACE_METHODS[method]
        chosen = method_settings(settings, overrides)
        out["methods"][method] = {"overrides": json.dumps(overrides), "sets": {}}
        out["videos"][method] = {}
        for name, videos in sets.items():
            if not videos:
                continue
            passed = (done or {}).get((method, name))
            if passed is None:
                say(f"bench: face method {method} on the {name} set ({len(videos)} videos)")
                passed = face_pass(videos, chosen, device, 0, warmup)
            out["methods"][method]["sets"][name] = pass_figures(passed)
            out["videos"][method].update(video_figures(passed, name))
    return out
