"""The hard variants of `lwaffect synth` (`pipeline.synth.hard`): each face is drawn where its truth says,
the videos decode with the truth's frame count, size and rate, and each shows its hard case (low contrast,
darkness, small and tiny faces, fast motion, occlusion, a turn to profile, two people crossing)."""

from __future__ import annotations

import json
from dataclasses import replace

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from pipeline.colour import LUMA
from pipeline.synth.common import SynthConfig
from pipeline.synth.faces import (
    NOSE_DEPTH,
    FaceState,
    face_box,
    load_sprite,
    render_face,
    sprite_cover,
    sprite_size,
    turn,
)
from pipeline.synth.hard import (
    GONE,
    HARD,
    OCCLUDER_COLOUR,
    VARIANTS,
    gap_frames,
    hard_identities,
    hard_scene,
    parse_variants,
    positions,
    write_hard,
)
from pipeline.video.decode import DecodeConfig, iter_chunks
from tests.pipeline.datasets.test_synth_layouts import _check

SEED = 5  # not the seed `lwaffect bench` uses (0)
FRAMES = 24


def _scene(variant: str, frames: int = FRAMES):
    rng = np.random.default_rng([SEED, 1])
    tints = {p: [1, 4, 7] for p in positions(variant)}
    return hard_scene(variant, frames, rng, tints, hard_identities(variant, SEED))


def _inner(box: np.ndarray, keep: float = 0.6) -> tuple[slice, slice]:
    """Rows and columns of the middle `keep` of a box."""
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
    return (
        slice(int(cy - keep * h / 2), int(cy + keep * h / 2)),
        slice(int(cx - keep * w / 2), int(cx + keep * w / 2)),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_face_is_drawn_where_its_truth_box_says(variant):
    # the same frame drawn over a black and over a white picture: where a face (or the occluder in front of
    # it) is opaque, both agree; everywhere else the picture shows through
    v = HARD[variant]
    subjects, draw = _scene(variant)
    gap = gap_frames(FRAMES, v.gap)
    last = FRAMES // 4 if v.yaw else FRAMES - 1  # a turned face: `turn` is tested below
    shown = [all(t.face[i] for t in subjects.values()) for i in range(FRAMES)]  # edge: gone at the end
    last = max(i for i in range(last + 1) if shown[i])
    shown_frames = [i for i in (0, FRAMES // 4, last) if not any(a <= i < b for a, b in gap) and shown[i]]
    assert len(shown_frames) >= 2
    for i in shown_frames:
        black, white = (
            np.zeros((v.height, v.width, 3), np.uint8),
            np.full((v.height, v.width, 3), 255, np.uint8),
        )
        drawn, again = draw(black, i), draw(white, i)
        assert set(drawn) == set(subjects) and drawn.keys() == again.keys()
        same = np.abs(black.astype(int) - white.astype(int)).max(axis=-1) <= 4  # (H, W)
        background = np.ones_like(same)
        for name, (box, landmarks) in drawn.items():
            np.testing.assert_allclose(box, again[name][0])
            assert (0 <= box[0] or variant == "edge") and box[0] < box[2] <= v.width  # edge: cut by it
            assert 0 <= box[1] < box[3] <= v.height
            assert ((landmarks >= box[:2] - 1) & (landmarks <= box[2:] + 1)).all()
            rows, cols = _inner(np.maximum(box, 0))  # the part inside the frame
            assert same[rows, cols].mean() > 0.95, (name, i)
            left, top, right, bottom = sprite_size(box[3] - box[1], subjects[name].identity)
            cx, cy, margin = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 20 + 0.1 * (box[3] - box[1])
            background[max(int(cy - top - margin), 0) : int(cy + bottom + margin),
                       max(int(cx - left - margin), 0) : int(cx + right + margin)] = False  # fmt: skip
        assert same[background].mean() < 0.01, i


def test_a_turned_face_narrows_towards_its_side_and_its_box_follows():
    sprite = load_sprite(0)
    face = sprite.rgb.astype(np.float32) / 255
    alpha = sprite.alpha[..., None].astype(np.float32) / 255
    f0, a0, b0, l0 = turn(face, alpha, sprite.box, sprite.landmarks, 0.5)
    assert np.abs(a0 - alpha).mean() < 0.01 and np.abs(f0 * a0 - face * alpha).mean() < 0.03  # hardly turned
    np.testing.assert_allclose(b0, sprite.box, atol=1.0)
    width = sprite.box[2] - sprite.box[0]
    eyes = l0[1, 0] - l0[0, 0]
    for yaw in (60.0, -60.0):
        f, a, box, marks = turn(face, alpha, sprite.box, sprite.landmarks, yaw)
        assert f.shape == face.shape and a.shape == alpha.shape
        assert box[2] - box[0] < width and box[1] == sprite.box[1] and box[3] == sprite.box[3]
        assert 0 < marks[1, 0] - marks[0, 0] < eyes  # the eyes closer together, still in order
        moved = np.sign(((box[0] + box[2]) - (sprite.box[0] + sprite.box[2])) / 2)
        assert moved == np.sign(yaw)  # the face moves towards the side it turns to
    far = turn(face, alpha, sprite.box, sprite.landmarks, 70.0)
    near = turn(face, alpha, sprite.box, sprite.landmarks, 30.0)
    assert far[2][2] - far[2][0] < near[2][2] - near[2][0]
    # the box is the turned face up to the silhouette, then the nose the flat sprite lacks
    _, a, box, _ = far
    nose = NOSE_DEPTH * width * np.sin(np.radians(70.0))
    rows = slice(int(box[1] + 0.2 * (box[3] - box[1])), int(box[3] - 0.2 * (box[3] - box[1])))
    edge = box[2] - nose
    assert a[rows, int(box[0]) + 1 : int(edge) - 2].min() > 0.9  # opaque face
    assert a[:, int(edge) + 2 :].max() == 0.0  # nothing beyond the silhouette


def test_a_face_box_and_what_hides_it_follow_the_drawing():
    state = FaceState(300, 200, 150, 0.5, 0.5, 0, (False,) * 12, identity=2)
    frame = np.zeros((400, 600, 3), np.uint8)
    box, _ = render_face(frame, state)
    np.testing.assert_allclose(face_box(state), box)
    assert sprite_cover(state, box) > 0.95  # the face hides its own box
    assert sprite_cover(state, np.array([0.0, 0.0, 40.0, 40.0])) == 0.0  # far from it: nothing


def test_a_face_past_the_frame_edge_is_drawn_cut_there_with_its_whole_box():
    inside = FaceState(300, 200, 150, 0.5, 0.5, 0, (False,) * 12, identity=2)
    whole = np.zeros((400, 600, 3), np.uint8)
    box, marks = render_face(whole, inside)
    cut = replace(inside, cx=300 - box[0] - 0.3 * (box[2] - box[0]))  # 30 % of the box past the left edge
    frame = np.zeros((400, 600, 3), np.uint8)
    box_cut, marks_cut = render_face(frame, cut)
    shift = cut.cx - inside.cx
    np.testing.assert_allclose(box_cut, box + [shift, 0, shift, 0], atol=1.0)  # the whole face's box
    assert box_cut[0] < 0 < box_cut[2] and (marks_cut[:, 0] < 0).sum() < 5
    # the part inside the frame is the drawing of the whole face moved left, pixel for pixel
    k = int(round(-shift))
    np.testing.assert_array_equal(frame[:, : 600 - k], whole[:, k:])
    with pytest.raises(ValueError, match="outside a 600x400 frame"):
        render_face(frame, replace(inside, cx=-400.0))


def test_variants_parse_and_bad_names_are_refused():
    assert parse_variants("all") == VARIANTS and parse_variants("") == () and parse_variants("none") == ()
    assert parse_variants("crossing, dark") == ("dark", "crossing")  # in VARIANTS order
    with pytest.raises(ValueError, match="unknown hard variant 'bright'"):
        parse_variants("dark,bright")
    with pytest.raises(ValueError, match="affwild2 layout only"):
        SynthConfig(output=None, layout="emi", variants=("dark",)).check()  # type: ignore[arg-type]
    people = hard_identities("crossing", 0)
    assert len(set(people.values())) == 2 and 0 not in people.values()  # two people, neither the photo


@pytest.fixture(scope="module")
def hard_videos(tmp_path_factory):
    """Every variant, 1 s long, seed SEED: variant -> (path, truth as a pandas frame)."""
    folder = tmp_path_factory.mktemp("hard")
    return {
        v: (folder / f"{v}.mp4", write_hard(folder / f"{v}.mp4", v, 1.0, SEED).to_pandas()) for v in VARIANTS
    }


def _decode(path) -> np.ndarray:
    chunks = iter_chunks(path, DecodeConfig(backend="auto", isolate=False))
    return np.concatenate([c.frames for c in chunks])  # (n, H, W, 3) uint8


def _subject(truth, name):
    rows = truth[truth["subject"] == name]
    return rows["face"].to_numpy(bool), rows[["x1", "y1", "x2", "y2"]].to_numpy(float)


@pytest.mark.slow
def test_hard_videos_decode_with_their_truth_and_show_their_case(hard_videos):
    for variant, (path, truth) in hard_videos.items():
        v = HARD[variant]
        frames = _decode(path)
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
        n = max(8, round(v.fps))
        assert frames.shape == (n, v.height, v.width, 3) and rate == v.fps, variant
        names = {path.stem: "main"} if positions(variant) == ("main",) else {f"{path.stem}_left": "left",
                                                                               f"{path.stem}_right": "right"}  # fmt: skip
        assert list(dict.fromkeys(truth["subject"])) == list(names)
        absent = np.zeros(n, bool)
        for a, b in gap_frames(n, v.gap):
            absent[a:b] = True
        hidden = {}  # crossing: frames where a face is hidden behind the other person
        for name in names:
            face, boxes = _subject(truth, name)
            assert not (face & absent).any()
            hidden[name] = ~face & ~absent
            assert np.isnan(boxes[~face]).all() and (boxes[face, 1] >= 0).all()
            assert (boxes[face, 0] >= 0).all() or variant == "edge"  # the edge case: past the left edge
            assert (boxes[face, 2] <= v.width).all() and (boxes[face, 3] <= v.height).all()
        if variant not in ("crossing", "edge"):
            assert not any(h.any() for h in hidden.values()), variant
        face, boxes = _subject(truth, next(iter(names)))
        luma = frames.astype(np.float32) @ LUMA  # (n, H, W)
        inner = [luma[i][_inner(boxes[i])] for i in np.flatnonzero(face)]
        heights = boxes[face, 3] - boxes[face, 1]
        if variant == "small":
            assert (heights >= 0.07 * 1080).all() and (heights <= 0.16 * 1080).all()
        elif variant == "tiny":
            assert (heights >= 0.03 * 1080).all() and (heights <= 0.06 * 1080).all()
            # a person in a wide shot: the face keeps to a part of the picture, at most a fraction of its
            # width per frame
            centre = (boxes[face, :2] + boxes[face, 2:]) / 2  # (k, 2)
            assert np.hypot(*np.diff(centre, axis=0).T).max() < 0.5 * heights.min()
            assert np.ptp(centre[:, 0]) < 0.3 * 1920
        elif variant == "dark":
            assert max(float(x.mean()) for x in inner) < 60 and float(luma.mean()) < 60
        elif variant == "low_contrast":
            assert max(float(x.std()) for x in inner) < 15
            assert np.percentile(luma, 99.5) - np.percentile(luma, 0.5) < 110
        elif variant == "fast":
            centre = (boxes[face, 0] + boxes[face, 2]) / 2
            assert np.abs(np.diff(centre)).max() > 0.15 * (boxes[face, 2] - boxes[face, 0]).mean()
        elif variant == "occluded":
            rgb = frames.astype(np.float32) / 255
            covered = [
                np.abs(rgb[i][_inner(boxes[i], 1.0)] - OCCLUDER_COLOUR).max(-1) < 0.12
                for i in np.flatnonzero(face)
            ]
            assert min(float(c.mean()) for c in covered) > 0.03  # the object hides part of every face
        elif variant == "profile":
            width = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
            assert width[-1] < 0.75 * width[0]  # narrower, relative to its height, once turned
            marks = np.stack(truth["landmarks"].to_numpy())  # (n, 10): eyes first
            assert abs(marks[-1, 2] - marks[-1, 0]) < 0.6 * abs(marks[0, 2] - marks[0, 0])
        elif variant == "edge":
            past = -boxes[face, 0] / (boxes[face, 2] - boxes[face, 0])  # share of each box past the left edge
            assert 0.3 < past.max() <= GONE and past.min() < 0  # cut by the edge, and wholly inside
            gone = hidden[path.stem]  # more than GONE past the edge, drawn as far as it shows: not a face
            assert (
                gone[-1]
                and not gone[0]
                and gone.sum() >= 0.2 * n
                and (np.diff(np.flatnonzero(gone)) == 1).all()
            )
            assert (
                luma[-1][:, :4].std() < luma[np.flatnonzero(face)[past.argmax()]][:, :4].std()
            )  # nothing left
        elif variant == "crossing":
            (_, left), (_, right) = (_subject(truth, name) for name in names)
            cx_left, cx_right = (left[:, 0] + left[:, 2]) / 2, (right[:, 0] + right[:, 2]) / 2
            assert cx_left[0] < cx_right[0] and cx_left[-1] > cx_right[-1]  # `_left` started on the left
            assert abs(cx_left[-1] - cx_right[-1]) > 0.3 * v.width
            # one passes behind the other: its face is not shown for a few frames in the middle
            behind = [h for h in hidden.values() if h.any()]
            assert len(behind) == 1 and 1 <= behind[0].sum() <= 0.2 * n
            at = np.flatnonzero(behind[0])
            assert (np.diff(at) == 1).all() and 0.3 * n < at.mean() < 0.7 * n


@pytest.mark.slow
def test_cli_adds_hard_validation_videos_that_the_catalogue_reads(tmp_path):
    args = [
        "synth",
        "--output",
        str(tmp_path),
        "--videos",
        "0",
        "--variants",
        "crossing,small",
        "--seconds",
        "0.6",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "synth_manifest.json").read_text())
    assert [v["variant"] for v in m["videos"]] == ["small", "crossing"]
    assert [v["name"] for v in m["videos"]] == ["1-30-1920x1080-small", "2-30-1280x720-crossing"]
    assert m["splits"]["va"]["validation"] == ["1-30-1920x1080-small", "2-30-1280x720-crossing_left",
                                                "2-30-1280x720-crossing_right"]  # fmt: skip
    _check(tmp_path, "affwild2")  # the catalogue reads what the manifest says, labels included
    bad = CliRunner().invoke(app, ["synth", "--output", str(tmp_path / "x"), "--variants", "blurry"])
    assert bad.exit_code == 1 and "unknown hard variant 'blurry'" in bad.output
