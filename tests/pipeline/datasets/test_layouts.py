"""Layout detection and the HUME-Vidmimic2 (EMI), BAH (AH) and plain-folder adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.tasks import EMI_NAMES
from pipeline.datasets import CatalogueError, detect_layout, load_catalogue
from pipeline.datasets.bah_yaml import read_frame_lists
from pipeline.datasets.summary import format_summary
from tests.helpers import touch

EMI_HEADER = "Filename," + ",".join(EMI_NAMES)
V1, V2, V3, V4 = (
    f"P{p}/Visite_1/P{p}_Question_{q}_2024_Video.mp4" for p, q in ((1, 1), (1, 2), (2, 1), (3, 4))
)


def make_emi(root: Path) -> Path:
    for clip in ("00001", "00002", "00003", "00010", "00004"):
        touch(root / "raw" / f"{clip}.mp4")
    (root / "audio").mkdir()
    (root / "train_split.csv").write_text(
        f"{EMI_HEADER}\n00001,0.1,0.2,0.3,0.4,0.5,0.6\n00002.mp4,0,0,0,0,0,1\n"
    )
    (root / "valid_split.csv").write_text(f"{EMI_HEADER}\n3,1,1,1,1,1,1\n")
    return root


def make_ah(root: Path) -> Path:
    videos = [V1, V2, V3, V4]
    for video in videos:
        touch(root / "videos" / video)
    (root / "annotation.yml").write_text(
        f"{videos[0]}:\n"
        "  frame_annotation:\n"
        f"  - [{videos[0]}/frame-0.jpg, 0]\n"
        f"  - [{videos[0]}/frame-1.jpg, 1]\n"
        f"  - [{videos[0]}/frame-3.jpg, 1]\n"
        "  video_annotation: 1\n"
        f"{videos[1]}:\n"
        "  frame_annotation:\n"
        f"  - [{videos[1]}/frame-0.jpg, 0]\n"
        f"{videos[2]}:\n"
        "  frame_annotation:\n"
        f"  - [{videos[2]}/frame-0.jpg, 1]\n"
        f"  - [{videos[2]}/frame-1.jpg, 1]\n"
    )
    split = root / "default-split"
    split.mkdir()
    (split / "train.txt").write_text(
        f"video,label,transcript\n{videos[0]},1,well, I do not know\n{videos[1]},0,yes\n"
    )
    (split / "val.txt").write_text(f"{videos[2].removesuffix('.mp4')},1,maybe\n")
    (split / "test.txt").write_text(f"{videos[3]},,\n{videos[1]},,\n")
    return root


def test_detect_layout_each(tmp_path):
    (tmp_path / "aw" / "Annotations" / "AU_Detection_Challenge" / "Train_Set").mkdir(parents=True)
    assert detect_layout(tmp_path / "aw") == "affwild2"
    assert detect_layout(make_emi(tmp_path / "emi")) == "emi"
    assert detect_layout(make_ah(tmp_path / "ah")) == "ah"
    touch(tmp_path / "plain" / "x" / "clip.mp4")
    assert detect_layout(tmp_path / "plain") == "plain"
    assert load_catalogue(tmp_path / "emi").found[0] == "layout: emi (detected)"
    cat = load_catalogue(tmp_path / "emi", layout="plain")
    assert cat.layout == "plain" and cat.found[0] == "layout: plain (given)" and len(cat.videos) == 5


def test_emi_clips_labels_and_test_split(tmp_path):
    cat = load_catalogue(make_emi(tmp_path))
    assert cat.layout == "emi"
    assert cat.splits["emi"] == {
        "train": ["00001", "00002"],
        "validation": ["00003"],
        "test": ["00004", "00010"],
    }
    labels = cat.labels["emi", "00001"]
    assert (
        labels.values.shape == (1, 6)
        and labels.values.dtype == np.float32
        and labels.valid.tolist() == [True]
    )
    np.testing.assert_allclose(labels.values[0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], rtol=1e-6)
    assert cat.labels["emi", "00003"].source == tmp_path / "valid_split.csv"
    assert all(s.position == "main" and s.video == s.name for s in cat.subjects.values())
    assert [s.name for s in cat.subjects_in("emi", "all")] == ["00001", "00002", "00003", "00004", "00010"]
    assert any("audio/" in note for note in cat.found)


@pytest.mark.parametrize(
    ("row", "line", "reason"),
    [
        ("00004,0.1,0.2,0.3,0.4,1.5,0.6", 3, "value 1.5 in column Excitement is not a number in [0, 1]"),
        ("00004,0.1,x,0.3,0.4,0.5,0.6", 3, "'x' in column Amusement is not a number"),
        ("00004,0.1,0.2", 3, "3 columns, expected 7"),
        ("99999,0.1,0.2,0.3,0.4,0.5,0.6", 3, "clip '99999' has no matching video"),
        ("00001,0.1,0.2,0.3,0.4,0.5,0.6", 3, "is also listed in"),
    ],
)
def test_emi_bad_rows(tmp_path, row, line, reason):
    make_emi(tmp_path)
    path = tmp_path / "valid_split.csv"
    path.write_text(f"{EMI_HEADER}\n3,1,1,1,1,1,1\n{row}\n")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    assert f"{path}:{line}: " in str(info.value) and reason in str(info.value)
    cat = load_catalogue(tmp_path, strict=False)
    assert cat.splits["emi"]["validation"] == ["00003"]
    if row.startswith("00004"):  # a listed clip is never a test clip, even with bad values
        assert cat.splits["emi"]["test"] == ["00010"]


def test_emi_bad_header_and_empty_file(tmp_path):
    make_emi(tmp_path)
    (tmp_path / "train_split.csv").write_text("Filename,Joy\n00001,0.5\n")
    (tmp_path / "valid_split.csv").write_text("")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert (
        f"{tmp_path / 'train_split.csv'}:1: header" in message and "lacks the column(s) Admiration" in message
    )
    assert f"{tmp_path / 'valid_split.csv'}: empty split file" in message


def test_ah_subjects_labels_and_splits(tmp_path):
    cat = load_catalogue(make_ah(tmp_path))
    v = V1
    assert cat.layout == "ah"
    assert set(cat.subjects) == {V1, V2, V3, V4}
    subject = cat.subjects[v]
    assert subject.position == "main" and cat.videos[subject.video].path == tmp_path / "videos" / v
    labels = cat.labels["ah", v]
    assert labels.first_frame == 0 and labels.values.shape == (4, 1)
    assert labels.values[:, 0].tolist() == [0, 1, 0, 1] and labels.valid.tolist() == [True, True, False, True]
    assert cat.splits["ah"]["train"] == [v, V2]
    assert cat.splits["ah"]["validation"] == [V3]
    assert cat.splits["ah"]["test"] == [V4, V2]
    assert ("ah", V4) not in cat.labels
    assert "ah annotation: annotation.yml (3 videos with frame labels)" in cat.found


def test_ah_bad_label_and_unknown_video_name_file_and_line(tmp_path):
    make_ah(tmp_path)
    ann = tmp_path / "annotation.yml"
    text = ann.read_text().replace("frame-1.jpg, 1]", "frame-1.jpg, 7]", 1)
    ann.write_text(text + "P9/Visite_1/x.mp4:\n  frame_annotation: [[a/frame-0.jpg, 0]]\n")
    (tmp_path / "default-split" / "val.txt").write_text(f"{V3},1,\nP7/none.mp4,0,\n")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert f"{ann}:4: video '{V1}': label 7 (not 0 or 1)" in message
    assert f"{ann}:14: annotation for video 'P9/Visite_1/x.mp4' has no matching video" in message
    assert (
        f"{tmp_path / 'default-split' / 'val.txt'}:2: validation video 'P7/none.mp4' has no matching"
        in message
    )
    cat = load_catalogue(tmp_path, strict=False)
    assert cat.splits["ah"]["train"] == [V2]  # the bad one left out
    assert len(cat.errors) == 3


def test_ah_invalid_yaml(tmp_path):
    make_ah(tmp_path)
    (tmp_path / "annotation.yml").write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(CatalogueError, match="not valid YAML") as info:
        load_catalogue(tmp_path)
    assert str(tmp_path / "annotation.yml") in str(info.value)


def test_plain_folder(tmp_path):
    for name in ("a/one.mp4", "a/b/two.AVI", "three.mkv", "x/one.mp4", "x/one.mov", "notes.txt"):
        touch(tmp_path / name)
    cat = load_catalogue(tmp_path)
    assert cat.layout == "plain" and cat.labels == {} and cat.splits == {}
    # repeated stems are named by their path
    assert sorted(cat.videos) == ["a/one", "three", "two", "x/one.mov", "x/one.mp4"]
    assert cat.videos["x/one.mov"].path == tmp_path / "x" / "one.mov"
    assert all(s.position == "main" for s in cat.subjects.values())
    assert sorted(s.name for s in cat.subjects_in("va", "all")) == sorted(cat.videos)
    assert cat.subjects_in("va", "test") == []
    assert "plain" in format_summary(cat) and "videos: 5" in format_summary(cat)


def test_ah_annotation_fast_scan_and_yaml_read_the_same_labels():
    scanned = read_frame_lists(
        "# BAH\nvid/a.mp4:\n  video_annotation: 1\n  frame_annotation:\n"
        "  - [vid/a.mp4/frame-0.jpg, 1]\n  - ['vid/a.mp4/frame-2.jpg', 0]\n  cues: [smile]\n"
        "vid/b.mp4:\n  frame_annotation:\n    - [vid/b.mp4/frame-1.jpg, '1']\n"
    )
    nested = read_frame_lists(
        "videos:\n  - video: vid/a.mp4\n    frame_annotation: {vid/a.mp4/frame-0.jpg: 1, vid/a.mp4/frame-2.jpg: 0}\n"
        "  - video: vid/b.mp4\n    frame_annotation: [[vid/b.mp4/frame-1.jpg, true]]\n"
    )
    assert all(f.span is not None for f in scanned) and all(f.entries is not None for f in nested)
    for fast, slow in zip(scanned, nested, strict=True):
        assert fast.key == slow.key
        np.testing.assert_array_equal(fast.frames, slow.frames)
        np.testing.assert_array_equal(fast.labels, slow.labels)
    assert scanned[0].frames.tolist() == [0, 2] and scanned[0].labels.tolist() == [1, 0]


def test_ah_bad_label_in_the_documented_shape_names_its_line(tmp_path):
    make_ah(tmp_path)
    ann = tmp_path / "annotation.yml"
    ann.write_text(ann.read_text().replace("frame-0.jpg, 1]", "frame-0.jpg, yes]"))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    assert f"{ann}:12: video '{V3}': label 'yes' (not 0 or 1) of [{V3}/frame-0.jpg, yes]" in str(info.value)
