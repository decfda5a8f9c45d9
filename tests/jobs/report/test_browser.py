"""The report of real `lwaffect run`s, opened in headless chromium and read back from the page itself.

One run (VA, AU and EXPR with randomly initialised checkpoints on every subject of the synthetic Aff-Wild2
set, on the session's shared cache) is checked against its predictions Parquet, labels and face records;
a second run, whose test video is broken, must list the failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from pipeline.cache.read import open_cache
from pipeline.datasets import load_catalogue
from tests.jobs.report.conftest import open_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TASKS = ("va", "au", "expr")


def run_cli(root: Path, cache: str, output: Path, weights: list[Path], tasks: str, split: str):
    args = [
        "run",
        "--input",
        str(root),
        "--task",
        tasks,
        "--split",
        split,
        "--output",
        str(output),
        "--cache",
        cache,
    ]
    return CliRunner().invoke(app, args + [a for w in weights for a in ("--weights", str(w))])


@pytest.fixture(scope="module")
def report(synth_affwild2, affwild2_cache, random_checkpoint, tmp_path_factory, browser):
    output = tmp_path_factory.mktemp("report_run")
    result = run_cli(
        synth_affwild2, affwild2_cache, output, [random_checkpoint(t) for t in TASKS], ",".join(TASKS), "all"
    )
    assert result.exit_code == 0, result.output
    record = json.loads((output / "run.json").read_text())
    assert (
        record["report"] == str(output / "report.html")
        and f"report       {output / 'report.html'}" in result.output
    )
    opened = open_report(browser, Path(record["report"]))
    manifest = json.loads((synth_affwild2 / "synth_manifest.json").read_text())
    return SimpleNamespace(record=record, page=opened, root=synth_affwild2, manifest=manifest, cache=affwild2_cache,
                           tables={t: pl.read_parquet(record["predictions"][t]) for t in TASKS})  # fmt: skip


def plot_of(report, subject: str) -> dict:
    return next(p for p in report.page.plots if p["subject"] == subject and p["kind"] == "timeline")


def trace(plot: dict, name: str) -> dict:
    return next(t for t in plot["traces"] if t["name"] == name)


def test_the_page_made_no_network_request_and_has_no_error(report):
    assert report.page.requests == [Path(report.record["report"]).resolve().as_uri()]
    assert report.page.page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert report.page.errors == []


def test_every_subject_has_a_drawn_timeline_and_decoded_thumbnails(report):
    subjects = set(report.tables["va"]["subject"].unique())
    assert len(subjects) == 9
    timelines = {p["subject"]: p for p in report.page.plots if p["kind"] == "timeline"}
    assert set(timelines) == subjects
    for subject, plot in timelines.items():
        assert plot["state"] == "rendered", subject
        names = {t["name"] for t in plot["traces"]}
        assert {"valence", "arousal", "AU predicted", "expr class", "face detected"} <= names, subject
        assert trace(plot, "valence")["drawn"] >= 2  # the lines are in the SVG
    thumbs = [t for moment in report.page.thumbs for t in moment]
    for subject in subjects:
        mine = [t for t in thumbs if t["subject"] == subject]
        assert len(mine) == 8 and all(t["decoded"] for t in mine), subject


def test_one_subjects_plotted_series_are_the_predictions_file(report):
    video = next(v for v in report.manifest["videos"] if v["no_face_frames"])
    subject, fps = video["name"], video["fps"]
    rows = report.tables["va"].filter(pl.col("subject") == subject).sort("frame")
    plot = plot_of(report, subject)
    assert plot["meta"]["frames_per_point"] == 1 and plot["meta"]["frames"] == len(rows)
    for column in ("valence", "arousal"):
        drawn = trace(plot, column)
        np.testing.assert_allclose(drawn["y"], rows[column].to_numpy(), atol=6e-5)
        np.testing.assert_allclose(drawn["xs"], (rows["frame"].to_numpy() - 1) / fps, atol=1e-5)
    au = trace(plot, "AU predicted")
    au_rows = report.tables["au"].filter(pl.col("subject") == subject).sort("frame")
    np.testing.assert_array_equal(
        np.array(au["z"]),
        au_rows.select([f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)]).to_numpy().T,
    )
    expr = trace(plot, "expr class")
    expr_rows = report.tables["expr"].filter(pl.col("subject") == subject).sort("frame")
    np.testing.assert_array_equal(np.array(expr["z"][-1]), expr_rows["expression"].to_numpy())
    shard = open_cache(report.cache).read(subject, maps=False)
    np.testing.assert_array_equal(trace(plot, "face none")["z"][0], (shard.source == "none").astype(float))


def test_filled_frames_are_shaded(report):
    for video in report.manifest["videos"]:
        subject = video["name"] if video["subjects"] == [video["name"]] else None
        if subject is None:
            continue
        rows = report.tables["va"].filter(pl.col("subject") == subject).sort("frame")
        times = (rows["frame"].to_numpy() - 1) / video["fps"]
        plot = plot_of(report, subject)
        inside = np.zeros(len(times), bool)
        for x0, x1 in plot["filled"]:
            inside |= (times > x0) & (times < x1)
        np.testing.assert_array_equal(inside, rows["filled"].to_numpy(), err_msg=subject)
        assert plot["shaded"] == len(plot["filled"])
        if video["no_face_frames"]:
            assert plot["filled"], subject  # the stretch without a face is shaded


def test_labels_are_drawn_beside_the_predictions(report):
    catalogue = load_catalogue(report.root)
    subject = catalogue.subjects_in("va", "validation")[0].name
    labels = catalogue.labels[("va", subject)]
    drawn = np.array(trace(plot_of(report, subject), "valence (label)")["y"], dtype=float)
    expected = np.where(labels.valid, labels.values[:, 0], np.nan)
    np.testing.assert_allclose(drawn[: len(expected)], expected, atol=6e-5)
    assert "valence (label)" not in {
        t["name"] for t in plot_of(report, catalogue.subjects_in("va", "test")[0].name)["traces"]
    }


def test_two_subjects_of_one_video_side_by_side_and_subjects_worst_first(report):
    two = next(v for v in report.manifest["videos"] if len(v["subjects"]) == 2)
    pairs = [
        [t["subject"] for t in m]
        for m in report.page.thumbs
        if any(t["subject"] in two["subjects"] for t in m)
    ]
    assert len(pairs) == 8 and all(p == [f"{two['name']}_left", f"{two['name']}_right"] for p in pairs)
    rows = report.page.page.evaluate(
        """() => Array.from(document.querySelectorAll('.ranking[data-task="va"] tbody tr')).map(
             (r) => Array.from(r.cells).map((c) => c.textContent))"""
    )
    metrics = [float(r[4]) for r in rows if r[4] != "-"]
    assert len(rows) == 9 and len(metrics) >= 5 and metrics == sorted(metrics)
    assert all(r[4] == "-" for r in rows[len(metrics) :])  # unlabelled (test) subjects last


def test_a_run_with_a_failed_video_lists_the_failure(
    synth_affwild2, affwild2_cache, random_checkpoint, tmp_path, browser
):
    from pipeline.cache.layout import encode_subject

    root, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(synth_affwild2, root)
    shutil.copytree(affwild2_cache, cache)
    catalogue = load_catalogue(root)
    broken = catalogue.subjects_in("va", "test")[0]
    catalogue.videos[broken.video].path.write_bytes(b"not a video" * 100)
    (cache / "shards" / f"{encode_subject(broken.name)}.parquet").unlink()
    result = run_cli(root, str(cache), tmp_path / "out", [random_checkpoint("va")], "va", "test")
    assert result.exit_code == 2, result.output
    opened = open_report(browser, tmp_path / "out" / "report.html")
    failures = opened.page.evaluate("() => document.querySelector('#failures + p + table').innerText")
    assert broken.video in failures and broken.name in failures
    section = opened.page.evaluate(
        f"() => document.querySelector('[data-subject=\"{broken.name}\"].subject').innerText"
    )
    assert "Its video failed" in section and "no complete cache shard" in section
    plot = plot_of(SimpleNamespace(page=opened), broken.name)
    assert plot["state"] == "rendered" and len(plot["filled"]) == 1  # every frame shaded
    notes = {t["note"] for m in opened.thumbs for t in m if t["subject"] == broken.name}
    assert notes and all("cannot be decoded" in n for n in notes)
    assert opened.requests == [(tmp_path / "out" / "report.html").resolve().as_uri()]
