"""The Aff-Wild2 adapter: discovery by pattern, subjects, splits, labels and every bad-annotation case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.tasks import AU_NAMES, EXPR_NAMES
from pipeline.datasets import CatalogueError, load_catalogue
from pipeline.datasets.summary import format_summary
from tests.helpers import touch

VA_HEADER = "valence,arousal"
AU_HEADER = ",".join(AU_NAMES)
EXPR_HEADER = ",".join(EXPR_NAMES)
FOLDERS = {
    "va": "VA_Estimation_Challenge",
    "au": "AU_Detection_Challenge",
    "expr": "EXPR_Recognition_Challenge",
}
RELEASE = {
    "va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "au": "Action_Unit_Detection_Challenge_test_set_release.txt",
    "expr": "Expression_Recognition_Challenge_test_set_release.txt",
}


def annotate(
    root: Path, task: str, split: str, subject: str, text: str, ann="8th_ABAW_Annotations", folder=None
) -> Path:
    path = root / ann / (folder or FOLDERS[task]) / split / f"{subject}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_tree(root: Path) -> Path:
    """Videos a, b (.avi), c (two subjects), d, e (test) and f (unannotated); VA, AU, EXPR labels."""
    for name in (
        "batch1/a.mp4",
        "batch2/b.avi",
        "new_vids/c.mp4",
        "videos/d.mkv",
        "videos/e.mov",
        "batch1/f.mp4",
    ):
        touch(root / name)
    annotate(root, "va", "Train_Set", "a", f"{VA_HEADER}\n0.5,-0.25\n-5,-5\n1,-1\n")
    annotate(root, "va", "Train_Set", "c_left", f"{VA_HEADER}\n0.1,0.2\n0.3,0.4\n")
    annotate(root, "va", "Train_Set", "c_right", f"{VA_HEADER}\n-0.1,-0.2\n")
    annotate(root, "va", "Validation_Set", "b", f"{VA_HEADER}\n0,0\n0,0\n0,0\n0,0\n")
    annotate(
        root,
        "au",
        "Train_Set",
        "a",
        f"{AU_HEADER}\n" + ",".join(["1"] * 12) + "\n" + ",".join(["-1"] * 12) + "\n",
    )
    annotate(root, "expr", "Validation_Set", "a", f"{EXPR_HEADER}\n0\n7\n-1\n4\n")
    (root / RELEASE["va"]).write_text("e\nd\nc_left\n")
    (root / RELEASE["expr"]).write_text("d.mp4\n\ne\n")
    (root / "CVPR_8th_ABAW_VA_test_set_example.txt").write_text("image_location,valence,arousal\n")
    touch(root / "cropped_aligned" / "a" / "00001.jpg")
    touch(root / "cropped_aligned" / "a" / "hidden.mp4")
    return root


def test_good_tree_videos_subjects_splits_labels(tmp_path):
    cat = load_catalogue(make_tree(tmp_path))
    assert cat.layout == "affwild2"
    assert sorted(cat.videos) == ["a", "b", "c", "d", "e", "f"]  # nothing from cropped_aligned/
    assert cat.videos["b"].path == tmp_path / "batch2" / "b.avi"
    positions = {name: (s.video, s.position) for name, s in cat.subjects.items()}
    assert positions == {
        "a": ("a", "main"), "b": ("b", "main"), "c_left": ("c", "left"), "c_right": ("c", "right"),
        "d": ("d", "main"), "e": ("e", "main"), "f": ("f", "main"),
    }  # fmt: skip
    assert cat.splits["va"] == {
        "train": ["a", "c_left", "c_right"],
        "validation": ["b"],
        "test": ["e", "d", "c_left"],
    }
    assert cat.splits["au"] == {"train": ["a"]}
    assert cat.splits["expr"] == {"validation": ["a"], "test": ["d", "e"]}
    assert not any("f" in names for task in cat.splits.values() for names in task.values())
    va = cat.labels["va", "a"]
    assert va.values.dtype == np.float32 and va.values.shape == (3, 2) and va.first_frame == 1
    np.testing.assert_array_equal(va.valid, [True, False, True])
    np.testing.assert_allclose(va.values, [[0.5, -0.25], [0.0, 0.0], [1.0, -1.0]])
    assert va.source == tmp_path / "8th_ABAW_Annotations" / FOLDERS["va"] / "Train_Set" / "a.txt"
    au = cat.labels["au", "a"]
    assert au.values.shape == (2, 12) and au.valid.tolist() == [True, False]
    expr = cat.labels["expr", "a"]
    assert expr.values.shape == (4, 1) and expr.values[:, 0].tolist() == [0, 7, 0, 4]
    assert expr.valid.tolist() == [True, True, False, True]
    assert cat.example_submissions == {"va": tmp_path / "CVPR_8th_ABAW_VA_test_set_example.txt"}
    assert cat.cropped_aligned == tmp_path / "cropped_aligned"
    assert cat.errors == []


def test_found_notes_say_what_was_and_was_not_found(tmp_path):
    notes = "\n".join(load_catalogue(make_tree(tmp_path)).found)
    assert "annotations: 8th_ABAW_Annotations/" in notes
    assert "va test list: Valence_Arousal_Estimation_Challenge_test_set_release.txt (3 subjects)" in notes
    assert "au test list: not found" in notes
    assert "au example submission: not found" in notes
    assert "face crops: cropped_aligned/" in notes
    assert "no annotation and in no test list: 1 (f)" in notes


def test_subjects_in_and_summary(tmp_path):
    cat = load_catalogue(make_tree(tmp_path))
    assert [s.name for s in cat.subjects_in("va", "test")] == ["e", "d", "c_left"]
    assert [s.name for s in cat.subjects_in("va", "all")] == ["a", "c_left", "c_right", "b", "e", "d"]
    assert [s.name for s in cat.subjects_in("expr", "all")] == ["a", "d", "e"]
    assert cat.subjects_in("ah", "train") == []
    with pytest.raises(ValueError, match="unknown split"):
        cat.subjects_in("va", "dev")
    text = format_summary(cat)
    va_train = next(line.split() for line in text.splitlines() if line.startswith("va    train"))
    assert va_train[2:] == ["3", "2", "6", "5"]  # subjects, videos, annotation lines, valid lines
    assert "found:" in text and "cropped_aligned" in text


@pytest.mark.parametrize(
    ("ann", "expr_folder"),
    [
        ("Annotations", "EXPR_Classification_Challenge"),
        ("6th_ABAW_Annotations", "EXPR_Recognition_Challenge"),
        ("data/ABAW5_Annotations", "EXPR_Classification_Challenge"),
    ],
)
def test_annotation_folder_found_by_other_names(tmp_path, ann, expr_folder):
    touch(tmp_path / "batch1" / "a.mp4")
    touch(tmp_path / "batch1" / "b.mp4")
    annotate(tmp_path, "expr", "Train_Set", "a", f"{EXPR_HEADER}\n3\n", ann=ann, folder=expr_folder)
    annotate(tmp_path, "va", "Validation_Set", "b", f"{VA_HEADER}\n0.2,0.2\n", ann=ann)
    cat = load_catalogue(tmp_path)
    assert cat.layout == "affwild2"
    assert cat.splits["expr"]["train"] == ["a"] and cat.labels["expr", "a"].values.tolist() == [[3.0]]
    assert cat.splits["va"]["validation"] == ["b"]
    assert f"annotations: {ann}/" in cat.found


def test_release_list_alone_means_affwild2_and_keeps_order(tmp_path):
    names = ["9-30-640x360", "10-25-1280x720_right", "2-30-640x360"]
    for name in ("9-30-640x360", "10-25-1280x720", "2-30-640x360"):
        touch(tmp_path / "videos" / f"{name}.mp4")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "Action_Unit_Detection_Challenge_test_set_release.txt").write_text(
        "\n".join(names) + "\n"
    )
    cat = load_catalogue(tmp_path)
    assert cat.layout == "affwild2"
    assert cat.splits["au"]["test"] == names
    assert cat.subjects["10-25-1280x720_right"].position == "right"


BAD_CASES = [
    # (task, annotation text, expected line or None, reason fragment)
    ("va", "valence,arousal,dominance\n0,0\n", 1, "is not the va header"),
    ("va", "arousal,valence\n0,0\n", 1, "is not the va header"),
    ("au", ",".join(AU_NAMES[:-1]) + "\n" + ",".join(["0"] * 11) + "\n", 1, "is not the au header"),
    ("va", f"{VA_HEADER}\n0.1,0.2\n0.3,abc\n", 3, "'abc' in column arousal is not a number"),
    (
        "va",
        f"{VA_HEADER}\n0.1,0.2\n0.3,0.4\n1.5,0\n",
        4,
        "value 1.5 in column valence is not a number in [-1, 1]",
    ),
    ("va", f"{VA_HEADER}\n-4,0\n", 2, "or the invalid marker -5"),
    ("va", f"{VA_HEADER}\n0.1,0.2\n0.3\n", 3, "1 columns, expected 2"),
    ("va", f"{VA_HEADER}\n0.1,0.2\n0.3,0.1,0.5\n", 3, "3 columns, expected 2"),
    ("va", f"{VA_HEADER}\n0.1,0.2\n\n0.3,0.1\n", 3, "empty line"),
    ("va", f"{VA_HEADER}\n0.1,0.2\nnan,0.1\n", 3, "value nan in column valence"),
    ("expr", f"{EXPR_HEADER}\n1\n8\n", 3, "value 8 in column expression is not a whole number in [0, 7]"),
    ("expr", f"{EXPR_HEADER}\n1\n2.5\n", 3, "value 2.5 in column expression is not a whole number"),
    ("au", f"{AU_HEADER}\n" + ",".join(["0"] * 11 + ["2"]) + "\n", 2, "value 2 in column AU26"),
    ("va", "", None, "empty annotation file"),
    ("va", f"{VA_HEADER}\n", 2, "no frame lines after the header"),
]


@pytest.mark.parametrize(("task", "text", "line", "reason"), BAD_CASES)
def test_bad_annotation_names_file_line_and_reason(tmp_path, task, text, line, reason):
    touch(tmp_path / "batch1" / "a.mp4")
    path = annotate(tmp_path, task, "Train_Set", "a", text)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert str(path) in message and reason in message
    if line is not None:
        assert f"{path}:{line}: " in message
    [problem] = info.value.errors
    assert (problem.path, problem.line, problem.task, problem.subject) == (path, line, task, "a")


def test_annotation_without_video(tmp_path):
    touch(tmp_path / "batch1" / "a.mp4")
    path = annotate(tmp_path, "va", "Train_Set", "zz_left", f"{VA_HEADER}\n0,0\n")
    with pytest.raises(CatalogueError, match="has no matching video") as info:
        load_catalogue(tmp_path)
    assert str(path) in str(info.value) and "'zz'" in str(info.value)


def test_release_list_entry_without_video_names_line(tmp_path):
    touch(tmp_path / "batch1" / "a.mp4")
    release = tmp_path / RELEASE["va"]
    release.write_text("a\nmissing\n")
    with pytest.raises(CatalogueError, match="test subject 'missing' has no matching video") as info:
        load_catalogue(tmp_path)
    assert f"{release}:2: " in str(info.value)


def test_subject_in_train_and_validation_is_an_error(tmp_path):
    touch(tmp_path / "batch1" / "a.mp4")
    annotate(tmp_path, "va", "Train_Set", "a", f"{VA_HEADER}\n0,0\n")
    second = annotate(tmp_path, "va", "Validation_Set", "a", f"{VA_HEADER}\n0,0\n")
    with pytest.raises(CatalogueError, match="also annotated in") as info:
        load_catalogue(tmp_path)
    assert str(second) in str(info.value)


def test_all_problems_listed_at_once_or_returned_when_not_strict(tmp_path):
    make_tree(tmp_path)
    bad_va = annotate(tmp_path, "va", "Validation_Set", "d", f"{VA_HEADER}\n0,0\n7,0\n")
    bad_expr = annotate(tmp_path, "expr", "Train_Set", "b", "Neutral\n0\n")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    message = str(info.value)
    assert "2 bad input file(s)" in message and f"{bad_va}:3: " in message and f"{bad_expr}:1: " in message
    cat = load_catalogue(tmp_path, strict=False)
    assert {p.path for p in cat.errors} == {bad_va, bad_expr}
    assert cat.splits["va"]["validation"] == ["b"] and ("va", "d") not in cat.labels
    assert "b" not in cat.splits["expr"].get("train", [])
    assert cat.splits["va"]["train"] == ["a", "c_left", "c_right"]  # the good files stay
    rows = cat.failures()
    assert {(r["video"], r["subject"], r["stage"]) for r in rows} == {
        ("d", "d", "catalogue"),
        ("b", "b", "catalogue"),
    }
    assert any(str(bad_va) in r["reason"] and "7" in r["reason"] for r in rows)
    assert "problems (2; left out)" in format_summary(cat)


def test_many_bad_lines_report_the_first_and_count_the_rest(tmp_path):
    touch(tmp_path / "batch1" / "a.mp4")
    path = annotate(tmp_path, "va", "Train_Set", "a", f"{VA_HEADER}\n0,0\n2,0\n0,3\n0,0\n")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    assert f"{path}:3: value 2 in column valence" in str(info.value) and "(1 more bad lines)" in str(
        info.value
    )


def test_missing_input_folder(tmp_path):
    with pytest.raises(CatalogueError, match="does not exist"):
        load_catalogue(tmp_path / "nowhere")
    with pytest.raises(CatalogueError, match="unknown layout"):
        load_catalogue(tmp_path, layout="kinetics")


def test_large_file_read_in_several_blocks_keeps_every_row(tmp_path):
    touch(tmp_path / "batch1" / "a.mp4")
    rng = np.random.default_rng(0)
    expected = rng.integers(-1000, 1001, (150_000, 2)) / 1000  # about 2 MB: several pyarrow blocks
    expected[::997] = -5
    body = "\n".join(f"{v:.3f},{a:.3f}" for v, a in expected)
    annotate(tmp_path, "va", "Train_Set", "a", f"{VA_HEADER}\r\n{body}")  # CRLF header, no final newline
    labels = load_catalogue(tmp_path).labels["va", "a"]
    valid = ~(expected == -5).any(axis=1)
    np.testing.assert_array_equal(labels.valid, valid)
    np.testing.assert_allclose(labels.values[valid], expected[valid], atol=1e-6)
    assert not labels.values[~valid].any()
