"""The synthetic Aff-Wild2 layout: its files, decodable videos, labels that follow the documented functions
of what is visible, the no-face stretch, the two-subject video."""

from __future__ import annotations

import json
from pathlib import Path

import av
import decord
import numpy as np
import pyarrow.parquet as pq
import pytest

from model.tasks import AU_NAMES, EXPR_NAMES, TASKS
from pipeline.colour import LUMA
from pipeline.faces.detect import box_iou
from pipeline.synth.affwild2 import (
    ANNOTATIONS,
    EXAMPLES,
    RELEASE_LISTS,
    SET_FOLDERS,
    TASK_FOLDERS,
)
from pipeline.synth.common import (
    au_labels,
    expr_labels,
    va_labels,
)
from pipeline.synth.faces import MARK_POSITIONS


def manifest(root: Path) -> dict:
    return json.loads((root / "synth_manifest.json").read_text())


def truth(root: Path, video: str):
    return pq.read_table(root / "synth_truth" / f"{video}.parquet").to_pandas()


def annotation(root: Path, task: str, split: str, subject: str) -> list[str]:
    path = root / ANNOTATIONS / TASK_FOLDERS[task] / SET_FOLDERS[split] / f"{subject}.txt"
    return path.read_text().splitlines()


def annotated(root: Path):
    """(subject entry, video entry) of every train and validation subject."""
    m = manifest(root)
    videos = {v["name"]: v for v in m["videos"]}
    return [(s, videos[s["video"]]) for s in m["subjects"] if s["split"]["va"] != "test"]


def decode_all(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()  # (N, H, W, 3) uint8


# --------------------------------------------------------------------------------------- Aff-Wild2 layout


def test_affwild2_layout_files(synth_affwild2):
    root, m = synth_affwild2, manifest(synth_affwild2)
    assert m["layout"] == "affwild2"
    for video in m["videos"]:
        assert (root / video["path"]).is_file()
        assert video["path"].split("/")[0] in ("batch1", "batch2")
        fps, size = video["name"].split("-")[1:]
        assert (int(fps), size) == (video["fps"], f"{video['width']}x{video['height']}")
        assert (root / "synth_truth" / f"{video['name']}.parquet").is_file()
    for subject in m["subjects"]:
        for task in TASK_FOLDERS:
            split = subject["split"][task]
            path = (
                root
                / ANNOTATIONS
                / TASK_FOLDERS[task]
                / SET_FOLDERS.get(split, "none")
                / f"{subject['name']}.txt"
            )
            assert path.is_file() == (split != "test"), (task, subject["name"])
    for task in TASK_FOLDERS:
        assert (root / RELEASE_LISTS[task]).is_file() and (root / EXAMPLES[task]).is_file()
    assert {s for v in m["splits"].values() for s in v} == {"train", "validation", "test"}
    assert all(len(m["splits"]["va"][split]) >= 2 for split in ("train", "validation", "test"))
    assert {v["fps"] for v in m["videos"]} == {24, 25, 30}
    assert {v["height"] for v in m["videos"]} >= {360, 480, 720, 1080}


def test_videos_decode_to_the_manifest_frame_count_size_and_rate(synth_affwild2):
    for video in manifest(synth_affwild2)["videos"]:
        path = synth_affwild2 / video["path"]
        reader = decord.VideoReader(str(path))
        assert len(reader) == video["frames"], video["name"]
        assert reader.get_avg_fps() == pytest.approx(video["fps"])
        assert reader[len(reader) - 1].shape == (video["height"], video["width"], 3)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == video["fps"] and stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert sum(1 for _ in container.decode(stream)) == video["frames"], video["name"]


def test_annotation_headers_and_line_counts(synth_affwild2):
    headers = {"va": "valence,arousal", "au": ",".join(AU_NAMES), "expr": ",".join(EXPR_NAMES)}
    for subject, video in annotated(synth_affwild2):
        for task in TASK_FOLDERS:
            lines = annotation(synth_affwild2, task, subject["split"][task], subject["name"])
            assert lines[0] == headers[task]
            assert len(lines) == video["frames"] + 1, (task, subject["name"])


def test_labels_follow_the_documented_functions_of_the_truth(synth_affwild2):
    m = manifest(synth_affwild2)
    labelled = {t: {s: 0 for s in ("train", "validation")} for t in TASK_FOLDERS}
    for subject, video in annotated(synth_affwild2):
        rows = truth(synth_affwild2, video["name"])
        rows = rows[rows["subject"] == subject["name"]].sort_values("index")
        split = subject["split"]["va"]
        parsed = {
            task: np.array([[float(x) for x in line.split(",")] for line in annotation(synth_affwild2, task, split, subject["name"])[1:]])
            for task in TASK_FOLDERS
        }  # fmt: skip
        for task, values in parsed.items():
            invalid = (values == TASKS[task].invalid).all(axis=1)
            assert not (values[~invalid] == TASKS[task].invalid).any()  # a row is all invalid or all valid
            assert invalid[~rows["face"].to_numpy()].all()  # frames without a face are never labelled
            assert 0 < invalid.sum() < len(invalid) / 3
            labelled[task][split] += int((~invalid).sum())
            valid = ~invalid
            face = rows[valid]
            if task == "va":
                np.testing.assert_allclose(values[valid], va_labels(face["brightness"].to_numpy(), face["contrast"].to_numpy()), atol=1.001e-3)  # fmt: skip
                np.testing.assert_allclose(values[valid, 0], 2 * face["brightness"] - 1, atol=6e-4)
                order = np.argsort(face["brightness"].to_numpy())
                assert (np.diff(values[valid, 0][order]) >= 0).all()  # valence rises with brightness
                order = np.argsort(face["contrast"].to_numpy())
                assert (np.diff(values[valid, 1][order]) >= 0).all()  # arousal rises with contrast
            elif task == "au":
                marks = np.stack(face["marks"].to_numpy())
                np.testing.assert_array_equal(values[valid], au_labels(marks))
            else:
                np.testing.assert_array_equal(values[valid, 0], expr_labels(face["tint"].to_numpy()))
    assert labelled == m["labelled"]


def test_every_au_on_and_off_and_every_class_in_train_and_validation(synth_affwild2):
    seen_au = {split: [] for split in ("train", "validation")}
    seen_expr = {split: set() for split in ("train", "validation")}
    for subject, _ in annotated(synth_affwild2):
        split = subject["split"]["au"]
        for line in annotation(synth_affwild2, "au", split, subject["name"])[1:]:
            if not line.startswith("-1"):
                seen_au[split].append([int(x) for x in line.split(",")])
        lines = annotation(synth_affwild2, "expr", split, subject["name"])[1:]
        seen_expr[split] |= {int(x) for x in lines} - {-1}
    train = np.array(seen_au["train"])
    assert train.min(axis=0).tolist() == [0] * 12 and train.max(axis=0).tolist() == [1] * 12
    assert seen_expr["train"] == seen_expr["validation"] == set(range(8))


def mark_colour(image: np.ndarray, box, k: int) -> float:
    """Yellowness (R + G) / 2 - B of the pixel at mark k of the face box."""
    x1, y1, x2, y2 = box
    u, v = MARK_POSITIONS[k]
    r, g, b = image[round(y1 + v * (y2 - y1)), round(x1 + u * (x2 - x1))].astype(float)
    return (r + g) / 2 - b


def test_attributes_are_visible_in_the_decoded_frames(synth_affwild2):
    """Brightness and contrast show in the eye region's luminance, marks as yellow dots, tints as chroma."""
    m = manifest(synth_affwild2)
    video = next(
        v for v in m["videos"] if v["width"] == 640 and v["subjects"][0] in m["splits"]["va"]["train"]
    )
    frames = decode_all(synth_affwild2 / video["path"])
    rows = truth(synth_affwild2, video["name"])
    rows = rows[rows["face"]]
    means, spreads, on, off, chroma = [], [], [], [], {}
    for row in rows.itertuples():
        image, (x1, y1, x2, y2) = frames[row.index], (row.x1, row.y1, row.x2, row.y2)
        w, h = x2 - x1, y2 - y1
        eye = image[int(y1 + 0.28 * h) : int(y1 + 0.46 * h), int(x1 + 0.15 * w) : int(x1 + 0.42 * w)]
        luma = eye.astype(np.float32) @ LUMA
        means.append(luma.mean())
        spreads.append(luma.std())
        for k, shown in enumerate(row.marks):
            (on if shown else off).append(mark_colour(image, (x1, y1, x2, y2), k))
        rgb = eye.reshape(-1, 3).mean(axis=0)
        chroma.setdefault(row.tint, []).append(rgb / rgb.sum())
    assert np.corrcoef(means, rows["brightness"])[0, 1] > 0.9
    assert np.corrcoef(spreads, rows["contrast"])[0, 1] > 0.8
    assert min(on) > max(off)
    centres = {t: np.mean(c, axis=0) for t, c in chroma.items()}
    assert len(centres) >= 4
    for t, points in chroma.items():  # every frame is nearest to its own tint's mean chroma
        for p in points:
            assert min(centres, key=lambda c: np.abs(centres[c] - p).sum()) == t


def test_no_face_stretch_has_no_face_in_truth_or_pixels(synth_affwild2):
    video = next(v for v in manifest(synth_affwild2)["videos"] if v["no_face_frames"])
    (start, stop), reader = (
        video["no_face_frames"][0],
        decord.VideoReader(str(synth_affwild2 / video["path"])),
    )
    rows = truth(synth_affwild2, video["name"]).sort_values("index")
    face = rows["face"].to_numpy()
    assert not face[start:stop].any() and face[:start].all() and face[stop:].all()
    assert rows.iloc[start:stop][["x1", "y1", "x2", "y2"]].isna().all().all()
    frames = reader.get_batch(list(range(start - 1, stop + 1))).asnumpy().astype(np.float32)
    gap = frames[1:-1]  # (stop - start, H, W, 3)
    assert np.abs(gap - gap[0]).mean(axis=(1, 2, 3)).max() < 2.0  # only the static background
    for image, row in ((frames[0], rows.iloc[start - 1]), (frames[-1], rows.iloc[stop])):
        box = (slice(int(row.y1), int(row.y2)), slice(int(row.x1), int(row.x2)))
        assert np.abs(image[box] - gap[0][box]).mean() > 10  # the face left, and came back


def test_two_subject_video_has_its_faces_on_their_halves(synth_affwild2):
    video = next(v for v in manifest(synth_affwild2)["videos"] if len(v["subjects"]) == 2)
    name = video["name"]
    assert video["subjects"] == [f"{name}_left", f"{name}_right"]
    rows = truth(synth_affwild2, name)
    left, right = (
        rows[rows["subject"] == f"{name}_{side}"].sort_values("index") for side in ("left", "right")
    )
    assert len(left) == len(right) == video["frames"]
    assert (left["x2"] <= video["width"] / 2).all() and (right["x1"] >= video["width"] / 2).all()
    assert not np.allclose(left["brightness"], right["brightness"], atol=0.05)  # labelled independently
    split = next(s for s in manifest(synth_affwild2)["subjects"] if s["name"] == f"{name}_left")["split"][
        "va"
    ]
    if split != "test":
        assert annotation(synth_affwild2, "va", split, f"{name}_left") != annotation(
            synth_affwild2, "va", split, f"{name}_right"
        )


def test_release_lists_and_example_submissions(synth_affwild2):
    m = manifest(synth_affwild2)
    frames = {s: v["frames"] for v in m["videos"] for s in v["subjects"]}
    for task in TASK_FOLDERS:
        test = m["splits"][task]["test"]
        assert (synth_affwild2 / RELEASE_LISTS[task]).read_text().split() == test
        lines = (synth_affwild2 / EXAMPLES[task]).read_text().splitlines()
        assert lines[0] == ",".join(["image_location", *TASKS[task].header])
        expected = [f"{s}/{i:05d}.jpg" for s in test for i in range(1, frames[s] + 1)]
        assert [line.split(",")[0] for line in lines[1:]] == expected


def test_truth_landmarks_lie_inside_the_box(synth_affwild2):
    for video in manifest(synth_affwild2)["videos"]:
        rows = truth(synth_affwild2, video["name"])
        rows = rows[rows["face"]]
        points = np.stack(rows["landmarks"].to_numpy()).reshape(-1, 5, 2)
        assert (points[..., 0] > rows[["x1"]].to_numpy()).all() and (
            points[..., 0] < rows[["x2"]].to_numpy()
        ).all()
        assert (points[..., 1] > rows[["y1"]].to_numpy()).all() and (
            points[..., 1] < rows[["y2"]].to_numpy()
        ).all()
        assert (points[:, 0, 0] < points[:, 1, 0]).all()  # left eye left of the right eye
        assert (points[:, 2, 1] > points[:, 0, 1]).all() and (points[:, 3, 1] > points[:, 2, 1]).all()


@pytest.mark.slow
def test_mtcnn_finds_the_true_box(synth_affwild2, one_thread):
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, device="cpu")
    video = next(v for v in manifest(synth_affwild2)["videos"] if v["width"] == 640)
    reader = decord.VideoReader(str(synth_affwild2 / video["path"]))
    rows = truth(synth_affwild2, video["name"]).set_index("index")
    ious = []
    for index in range(0, video["frames"], video["frames"] // 4):
        boxes, _, _ = detector.detect(reader[index].asnumpy(), landmarks=True)
        assert boxes is not None, index
        boxes = np.asarray(boxes, dtype=np.float32)  # object arrays under numpy 2
        t = rows.loc[index, ["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        ious.append(box_iou(boxes, t).max())
    assert np.median(ious) >= 0.85
