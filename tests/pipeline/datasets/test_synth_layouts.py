"""The catalogue of each synthetic data set equals what the generator's `synth_manifest.json` says it wrote:
every video, every subject with its video and position, every split in order, and the labelled-frame
counts per task and split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.datasets import load_catalogue


def _root(fixture) -> Path:
    """The data set folder: the fixture itself, or its `output` / `path` attribute."""
    if isinstance(fixture, (str, Path)):
        return Path(fixture)
    return Path(next(getattr(fixture, a) for a in ("output", "path", "folder") if hasattr(fixture, a)))


def _manifest(root: Path) -> dict:
    return json.loads((root / "synth_manifest.json").read_text())


def _check(root: Path, layout: str) -> None:
    manifest = _manifest(root)
    cat = load_catalogue(root)
    assert cat.layout == layout == manifest["layout"]
    assert cat.errors == []
    # videos: names and files
    expected_videos = {v["name"]: v for v in manifest["videos"]}
    assert set(cat.videos) == set(expected_videos)
    for name, video in expected_videos.items():
        path = Path(video["path"])
        assert cat.videos[name].path.resolve() == (path if path.is_absolute() else root / path).resolve()
    # subjects: video and position
    expected_subjects = {s["name"]: (s["video"], s["position"]) for s in manifest["subjects"]}
    assert {n: (s.video, s.position) for n, s in cat.subjects.items()} == expected_subjects
    # splits, in order (train / validation as written, test in release-list order)
    for task, splits in manifest["splits"].items():
        for split, names in splits.items():
            assert [s.name for s in cat.subjects_in(task, split)] == names, (task, split)
        for split, names in cat.splits.get(task, {}).items():
            assert names == splits.get(split, []), (task, split)
    assert set(cat.tasks()) == set(manifest["splits"])
    # labelled (valid) frames per task and split
    for task, splits in manifest["labelled"].items():
        for split, count in splits.items():
            labels = [
                cat.labels[task, s.name] for s in cat.subjects_in(task, split) if (task, s.name) in cat.labels
            ]
            assert sum(lab.num_valid for lab in labels) == count, (task, split)


def test_synth_affwild2_catalogue_matches_manifest(synth_affwild2):
    root = _root(synth_affwild2)
    _check(root, "affwild2")
    cat = load_catalogue(root)
    manifest = _manifest(root)
    for task in ("va", "au", "expr"):
        assert task in cat.example_submissions
        assert cat.splits[task]["test"] == manifest["splits"][task]["test"]
    # annotation line counts equal the frames the generator wrote for each annotated subject
    frames = {v["name"]: v["frames"] for v in manifest["videos"]}
    for (_, subject), labels in cat.labels.items():
        assert labels.num_frames == frames[cat.subjects[subject].video], subject


@pytest.mark.parametrize(("fixture", "layout"), [("synth_emi", "emi"), ("synth_ah", "ah")])
def test_synth_other_layouts_match_manifest(request, fixture, layout):
    _check(_root(request.getfixturevalue(fixture)), layout)
