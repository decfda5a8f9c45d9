"""The figure of a subject for every task (`jobs.report.figures`), on arrays: panels, labels, shading, bins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.report.build import packed
from jobs.report.figures import clip_figure, subject_figure
from jobs.report.gather import FaceRecord, SubjectData, task_track
from jobs.report.series import runs
from model.tasks import TASKS, get_task
from pipeline.faces.track import SOURCES
from tests.jobs.test_predict import expected_schema


def subject(task: str, frames: int, labelled: bool, seed: int = 0) -> SubjectData:
    """A subject with random predictions of `task` (frames 30..39 filled) and, optionally, labels."""
    import polars as pl

    from jobs.predict import empty_table, subject_table

    rng = np.random.default_rng(seed)
    spec = get_task(task)
    n = 1 if spec.unit == "clip" else frames
    preds = rng.random((n, spec.outputs)).astype(np.float32)
    table = subject_table(
        task, "v", "s", np.arange(1, n + 1), np.ones(n, bool), preds, np.full(spec.outputs, 0.5)
    )
    if spec.unit == "frame":
        filled = (table["frame"] > 30) & (table["frame"] <= 40)
        table = table.with_columns(
            filled=filled, reason=pl.when(filled).then(pl.lit("no face")).otherwise(pl.lit(""))
        )
    assert dict(table.schema) == dict(empty_table(task).schema) == expected_schema(task)
    labels = None
    if labelled:
        values = rng.integers(0, 2, (n, len(spec.label_columns))).astype(np.float32)
        labels = type("Labels", (), {"values": values, "valid": np.arange(n) % 7 != 0})()
    item = SubjectData("s", "v", "main", frames)
    item.tasks[task] = task_track(task, table, frames, labels)
    source = np.array([SOURCES[i % 3] for i in range(frames)], dtype=object)
    source[30:40] = "none"
    item.faces = FaceRecord(source, np.zeros((frames, 4), np.float32))
    return item


@pytest.mark.parametrize("labelled", [False, True])
@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_has_its_panel_labels_strip_and_shading(task, labelled):
    item = subject(task, 90, labelled)
    figure = subject_figure(item, fps=30.0, most=1200)
    json.loads(json.dumps(figure, allow_nan=False))  # plain JSON for plotly.js
    assert packed(figure)
    names = [t["name"] for t in figure["data"]]
    assert [n for n in names if n.startswith("face ")] == [f"face {s}" for s in SOURCES]
    axes = [k for k in figure["layout"] if k.startswith("yaxis")]
    assert len(axes) == len({t["yaxis"] for t in figure["data"]})
    for t in figure["data"]:  # every trace on the shared time axis, point j at x0 + j dx seconds
        assert t["xaxis"] == "x" and t["x0"] == 0 and t["dx"] == pytest.approx(1 / 30, abs=1e-6)
    spec = get_task(task)
    if spec.unit == "clip":
        bars = clip_figure(item)
        assert [t["name"] for t in bars["data"]] == ["predicted", "label"][: 1 + labelled]
        np.testing.assert_allclose(bars["data"][0]["y"], item.tasks[task].values[0], atol=1e-4)
        assert len(axes) == 1  # only the face-record strip on the time axis
        return
    shapes = figure["layout"]["shapes"]
    assert [(s["x0"], s["x1"]) for s in shapes] == [
        (pytest.approx(29.5 / 30, abs=1e-5), pytest.approx(39.5 / 30, abs=1e-5))
    ]
    label_names = {"va": "valence (label)", "au": "AU label", "expr": "expr class", "ah": "ah decision"}
    if task == "va":
        assert ("valence (label)" in names) == labelled and ("arousal (label)" in names) == labelled
    elif task == "au":
        assert ("AU label" in names) == labelled
    else:
        band = next(t for t in figure["data"] if t["name"] == label_names[task])
        assert band["y"] == (["label", "predicted"] if labelled else ["predicted"])


def test_a_long_subject_is_binned_and_says_so():
    item = subject("va", 5000, labelled=True)
    figure = subject_figure(item, fps=25.0, most=1000)
    assert figure["layout"]["meta"]["frames_per_point"] == 5
    valence = next(t for t in figure["data"] if t["name"] == "valence")
    assert len(valence["y"]) == 1000
    np.testing.assert_allclose(valence["y"][3], item.tasks["va"].values[15:20, 0].mean(), atol=1e-4)
    assert valence["x0"] == pytest.approx(2 / 25) and valence["dx"] == pytest.approx(5 / 25)
    strip = next(t for t in figure["data"] if t["name"] == "face none")
    assert strip["z"][0][6] == 1.0 and strip["z"][0][5] == 0.0  # frames 30..39 are bins 6 and 7


def test_many_filled_runs_are_joined_into_at_most_300_shapes():
    item = subject("ah", 3000, labelled=False)
    track = item.tasks["ah"]
    track.filled[:] = np.arange(3000) % 4 == 0  # 750 runs of one frame
    shapes = subject_figure(item, fps=30.0, most=1200)["layout"]["shapes"]
    assert len(runs(track.filled)) == 750 and len(shapes) <= 300
    covered = np.zeros(3000, bool)
    for s in shapes:
        covered[int(round(s["x0"] * 30 + 0.5)) : int(round(s["x1"] * 30 + 0.5))] = True
    assert covered[track.filled].all()
