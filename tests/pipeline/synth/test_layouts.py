"""The synthetic EMI and AH layouts, the generator's settings and determinism, and `lwaffect synth`."""

from __future__ import annotations

from pathlib import Path

import decord
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from jobs.cli import app
from model.tasks import EMI_NAMES
from pipeline.synth.affwild2 import (
    plan_videos,
)
from pipeline.synth.common import (
    SynthConfig,
    ah_labels,
    emi_intensities,
)
from pipeline.synth.dataset import make_dataset
from pipeline.synth.faces import astronaut
from tests.pipeline.synth.test_affwild2_layout import manifest, truth

# ---------------------------------------------------------------------------------------- other layouts


def test_emi_layout(synth_emi):
    m = manifest(synth_emi)
    assert m["layout"] == "emi"
    rows = {}
    for file, split in (("train_split.csv", "train"), ("valid_split.csv", "validation")):
        lines = (synth_emi / file).read_text().splitlines()
        assert lines[0] == ",".join(["Filename", *EMI_NAMES])
        names = [line.split(",")[0] for line in lines[1:]]
        assert names == m["splits"]["emi"][split] and names
        rows.update({line.split(",")[0]: [float(x) for x in line.split(",")[1:]] for line in lines[1:]})
    clips = sorted(p.stem for p in (synth_emi / "raw").glob("*.mp4"))
    assert clips == sorted(v["name"] for v in m["videos"])
    assert m["splits"]["emi"]["test"] and not set(m["splits"]["emi"]["test"]) & set(rows)
    assert set(m["splits"]["emi"]["test"]) | set(rows) == set(clips)
    for name, values in rows.items():
        t = truth(synth_emi, name)
        expected = emi_intensities(t["brightness"].to_numpy(), t["contrast"].to_numpy(), t["tint"].to_numpy(), np.stack(t["marks"].to_numpy()))  # fmt: skip
        assert values == [expected[k] for k in EMI_NAMES]
    admiration = [values[0] for values in rows.values()]
    assert max(admiration) - min(admiration) > 0.1  # clips differ
    for video in m["videos"][:2]:
        assert len(decord.VideoReader(str(synth_emi / video["path"]))) == video["frames"]


def test_ah_layout(synth_ah):
    m = manifest(synth_ah)
    assert m["layout"] == "ah"
    annotations = yaml.safe_load((synth_ah / "annotation.yml").read_text())
    videos = {v["name"]: v for v in m["videos"]}
    assert set(annotations) == {s["name"] for s in m["subjects"]}
    listed = {}
    for split, file in (("train", "train.txt"), ("validation", "val.txt"), ("test", "test.txt")):
        lines = (synth_ah / "default-split" / file).read_text().splitlines()
        assert [line.split(",")[0] for line in lines] == m["splits"]["ah"][split] and lines
        listed.update({line.split(",")[0]: int(line.split(",")[1]) for line in lines})
    for subject in m["subjects"]:
        video = videos[subject["video"]]
        assert (synth_ah / "videos" / subject["name"]).is_file() and video[
            "path"
        ] == f"videos/{subject['name']}"
        frames = annotations[subject["name"]]["frame_annotation"]
        assert [f for f, _ in frames] == [f"{subject['name']}/frame-{k}.jpg" for k in range(video["frames"])]
        labels = np.array([label for _, label in frames])
        t = truth(synth_ah, video["name"]).sort_values("index")
        np.testing.assert_array_equal(labels, ah_labels(t["tint"].to_numpy()))
        assert set(labels) == {0, 1} and listed[subject["name"]] == labels.max()
    reader = decord.VideoReader(str(synth_ah / m["videos"][0]["path"]))
    assert len(reader) == m["videos"][0]["frames"]


# ------------------------------------------------------------------------------- config, determinism, CLI


def test_same_seed_same_data_set_other_seed_other_data_set(tmp_path):
    def make(folder: str, seed: int) -> Path:
        root = tmp_path / folder
        make_dataset(SynthConfig(output=root, videos=2, seconds=0.6, seed=seed))
        return root

    a, b, c = make("a", 0), make("b", 0), make("c", 1)
    assert manifest(a) == manifest(b)
    for video in manifest(a)["videos"]:
        assert truth(a, video["name"]).equals(truth(b, video["name"]))
        assert not truth(a, video["name"]).equals(truth(c, video["name"]))
    texts = lambda root: {p.relative_to(root): p.read_text() for p in sorted(root.rglob("*.txt"))}  # noqa: E731
    assert texts(a) == texts(b) and texts(a) != texts(c)


def test_videos_and_seconds_scale_the_plan():
    small, large = (
        plan_videos(SynthConfig(output=Path("x"))),
        plan_videos(SynthConfig(output=Path("x"), videos=16, seconds=5)),
    )
    assert len(small) == 8 and len(large) == 16
    assert sum(p.frames for p in large) > 2 * sum(p.frames for p in small)
    for plans in (small, large):
        assert sum(len(p.positions) == 2 for p in plans) == 1 and sum(bool(p.no_face) for p in plans) == 1
        assert len({p.name for p in plans}) == len(plans)
        splits = [p.split for p in plans]
        assert splits == sorted(splits, key=["train", "validation", "test"].index)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layout": "nope"},
        {"videos": 0},
        {"seconds": 0.1},
        {"rotation": 45},
        {"layout": "affectnet", "rotation": 90},
    ],
    ids=["layout", "videos", "seconds", "rotation", "affectnet-rotation"],
)
def test_bad_settings_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_dataset(SynthConfig(output=tmp_path / "out", **kwargs))
    assert not (tmp_path / "out").exists()


def test_a_rotated_data_set_is_stored_turned_and_shows_its_truth_upright(tmp_path):
    from pipeline.faces.detect import box_iou, detect_faces, load_detector
    from pipeline.video.decode import DecodeConfig, iter_chunks
    from pipeline.video.probe import probe_video

    made = CliRunner().invoke(app, ["synth", "-o", str(tmp_path / "ah"), "--layout", "ah", "--videos", "1",
                                    "--seconds", "0.5", "--rotation", "-90"])  # fmt: skip
    assert made.exit_code == 0, made.output
    listed = manifest(tmp_path / "ah")
    assert listed["rotation"] == -90
    video = listed["videos"][0]
    path = tmp_path / "ah" / video["path"]
    stored = probe_video(path)
    assert (stored.width, stored.height) == (video["height"], video["width"])  # lying on its side
    frames = np.concatenate([c.frames for c in iter_chunks(path, DecodeConfig())])
    assert frames.shape[1:3] == (video["height"], video["width"])  # upright, as the truth is
    want = truth(tmp_path / "ah", video["name"])
    first = int(want["index"][want["face"]].iloc[0])
    found = detect_faces(frames[first : first + 1], load_detector("cpu"))[0]
    true_box = want.loc[want["index"] == first, ["x1", "y1", "x2", "y2"]].to_numpy()[0]
    assert len(found) == 1 and box_iou(found.boxes[0], true_box) > 0.7


def test_the_face_is_scikit_image_astronaut():
    from skimage.data import astronaut as reference

    np.testing.assert_array_equal(astronaut(), reference())


def test_cli_makes_a_data_set_and_reports_it(tmp_path):
    result = CliRunner().invoke(
        app, ["synth", "--output", str(tmp_path), "--layout", "ah", "--videos", "2", "--seconds", "0.6"]
    )
    assert result.exit_code == 0, result.output
    m = manifest(tmp_path)
    frames = sum(v["frames"] for v in m["videos"])
    assert f"wrote 2 videos, {frames} frames" in result.output and str(tmp_path) in result.output
    assert m["videos"][0]["path"] in result.output
    bad = CliRunner().invoke(
        app, ["synth", "--output", str(tmp_path / "x"), "--layout", "nope"], env={"COLUMNS": "200"}
    )
    assert bad.exit_code == 1 and "'nope' is not one of 'affwild2', 'emi', 'ah'" in bad.output
