"""Submission writers and the checker: round trips, the organiser example's order, and every fault of a
hand-broken file found on its own."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from model.tasks import AU_NAMES, EMI_NAMES, EXPR_NAMES
from pipeline.datasets.catalogue import Catalogue, Subject, Video
from pipeline.submission.check import check_submission
from pipeline.submission.format import format_value, parse_location, prediction_columns
from pipeline.submission.write import SubmissionError, write_submission

FRAMES = {"1-30-640x360": 4, "2-25-854x480_left": 3, "2-25-854x480_right": 3}


def _catalogue(root: Path, task: str = "va", subjects=FRAMES) -> Catalogue:
    cat = Catalogue(root=root, layout="affwild2")
    cat.splits[task] = {"test": list(subjects)}
    return cat


def _predictions(task: str, counts=FRAMES, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    subjects = [s for s, n in counts.items() for _ in range(n)]
    frames = [f for n in counts.values() for f in range(1, n + 1)]
    n = len(frames)
    data = {"video": [s.removesuffix("_left").removesuffix("_right") for s in subjects],
            "subject": subjects, "frame": pl.Series(frames, dtype=pl.Int32)}  # fmt: skip
    if task == "va":
        data |= {"valence": rng.uniform(-1.2, 1.2, n), "arousal": rng.uniform(-1, 1, n)}
    elif task == "au":
        data |= {c: rng.integers(0, 2, n).astype(np.int8) for c in AU_NAMES}
    elif task == "expr":
        data["expression"] = rng.integers(0, 8, n).astype(np.int8)
    elif task == "ah":
        data["ah"] = rng.integers(0, 2, n).astype(np.int8)
    return pl.DataFrame(data)


@pytest.mark.parametrize("task", ["va", "au", "expr"])
def test_round_trip_has_no_problems(tmp_path, task):
    cat, table = _catalogue(tmp_path, task), _predictions(task)
    path = tmp_path / "sub" / "predictions.txt"
    report = write_submission(task, table, cat, path)
    lines = path.read_text().splitlines()
    assert report.lines == 10 and len(lines) == 11
    header = {"va": "valence,arousal", "au": ",".join(AU_NAMES), "expr": ",".join(EXPR_NAMES)}[task]
    assert lines[0] == f"image_location,{header}"
    assert lines[1].startswith("1-30-640x360/00001.jpg,")
    assert lines[5].startswith("2-25-854x480_left/00001.jpg,")
    assert check_submission(task, path, cat, FRAMES) == []
    assert check_submission(task, path, cat) == []
    assert [p.name for p in path.parent.iterdir()] == ["predictions.txt"]  # no temporary file left


def test_values_written_match_predictions(tmp_path):
    cat, table = _catalogue(tmp_path, "expr"), _predictions("expr")
    path = tmp_path / "p.txt"
    write_submission("expr", table, cat, path)
    written = [int(line.split(",")[1]) for line in path.read_text().splitlines()[1:]]
    assert written == table["expression"].to_list()
    write_submission("va", _predictions("va"), _catalogue(tmp_path, "va"), path)
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in path.read_text().splitlines()[1:]])
    expected = np.clip(_predictions("va").select("valence", "arousal").to_numpy(), -1, 1)
    np.testing.assert_allclose(values, expected, atol=5e-5)


def test_format_value_is_compact():
    assert format_value(0.5) == "0.5"
    assert format_value(-0.00001) == "0"
    assert format_value(1.0) == "1"
    assert format_value(-0.123456) == "-0.1235"
    assert format_value(1e-7, 4) == "0"


def test_example_file_order_is_followed(tmp_path):
    example = tmp_path / "example.txt"
    # right before left, and one frame (00004) more than predicted for the right subject
    lines = ["image_location,valence,arousal"]
    lines += [f"2-25-854x480_right/{f:05d}.jpg,0,0" for f in range(1, 5)]
    lines += [f"2-25-854x480_left/{f:05d}.jpg,0,0" for f in range(1, 4)]
    lines += [f"1-30-640x360/{f:05d}.jpg,0,0" for f in range(1, 5)]
    example.write_text("\n".join(lines) + "\n")
    cat = _catalogue(tmp_path, "va")
    cat.example_submissions["va"] = example
    table = _predictions("va")
    path = tmp_path / "predictions.txt"
    report = write_submission("va", table, cat, path)
    written = path.read_text().splitlines()
    assert [line.split(",")[0] for line in written] == [line.split(",")[0] for line in lines]
    assert report.held == {"2-25-854x480_right": [4]}
    assert any("not predicted" in note for note in report.notes())
    assert written[4].split(",")[1:] == written[3].split(",")[1:]  # held from the nearest frame (00003)
    assert check_submission("va", path, cat) == []
    with pytest.raises(SubmissionError, match=r"854x480_right: frames listed by the example"):
        write_submission("va", table, cat, path, strict=True)


def test_missing_subject_and_gap_are_errors_listing_them(tmp_path):
    cat = _catalogue(tmp_path, "va")
    table = _predictions("va").filter(
        (pl.col("subject") != "2-25-854x480_left")
        & ~((pl.col("subject") == "1-30-640x360") & (pl.col("frame") == 2))
    )
    with pytest.raises(SubmissionError) as info:
        write_submission("va", table, cat, tmp_path / "p.txt")
    assert "2-25-854x480_left: no predictions" in str(info.value)
    assert "1-30-640x360: frames missing from predictions: 2" in str(info.value)
    assert len(info.value.problems) == 2
    assert not (tmp_path / "p.txt").exists()


def test_nan_and_duplicates_are_errors(tmp_path):
    cat = _catalogue(tmp_path, "va")
    table = _predictions("va").with_columns(
        pl.when(pl.col("frame") == 2).then(float("nan")).otherwise(pl.col("valence")).alias("valence")
    )
    with pytest.raises(SubmissionError, match="NaN"):
        write_submission("va", table, cat, tmp_path / "p.txt")
    doubled = pl.concat([_predictions("va"), _predictions("va").head(1)])
    with pytest.raises(SubmissionError, match="more than once"):
        write_submission("va", doubled, cat, tmp_path / "p.txt")


def test_ah_lines_have_no_header_and_frames_from_zero(tmp_path):
    root = tmp_path / "bah"
    subject = "p01_Question_1_Video"
    cat = Catalogue(root=root, layout="ah")
    cat.videos["v"] = Video("v", root / "videos" / "p01" / "Visite_1" / "p01_Question_1_Video.mp4")
    cat.subjects[subject] = Subject(subject, "v", "main")
    cat.splits["ah"] = {"test": [subject]}
    table = _predictions("ah", {subject: 3})
    path = tmp_path / "ah.txt"
    write_submission("ah", table, cat, path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("p01/Visite_1/p01_Question_1_Video.mp4/frame-0.jpg,")
    assert [int(line.split(",")[1]) for line in lines] == table["ah"].to_list()
    assert check_submission("ah", path, cat, {subject: 3}) == []
    problems = check_submission("ah", path, cat, {subject: 4})
    assert len(problems) == 1 and "frame-3.jpg" in problems[0].message


def test_emi_csv_clipped(tmp_path):
    cat = Catalogue(root=tmp_path, layout="emi")
    cat.splits["emi"] = {"test": ["00002", "00001"]}
    values = np.array([[1.3, 0.5, -0.2, 0.25, 0.0, 1.0], [0.1] * 6])
    table = pl.DataFrame({"video": ["00001", "00002"], "subject": ["00001", "00002"]}).with_columns(
        *[pl.Series(name, values[:, k], dtype=pl.Float32) for k, name in enumerate(EMI_NAMES)]
    )
    path = tmp_path / "emi.csv"
    write_submission("emi", table, cat, path)
    lines = path.read_text().splitlines()
    assert lines == [
        "Filename," + ",".join(EMI_NAMES),
        "00002,0.1,0.1,0.1,0.1,0.1,0.1",
        "00001,1,0.5,0,0.25,0,1",
    ]
    assert check_submission("emi", path, cat) == []


def test_prediction_columns_and_locations():
    assert prediction_columns("expr") == ["expression"]
    assert parse_location("va", "2-25-854x480_left/00012.jpg") == ("2-25-854x480_left", 12)
    assert parse_location("ah", "p/V/x.mp4/frame-0.jpg") == ("p/V/x.mp4", 1)
    with pytest.raises(ValueError):
        parse_location("va", "00012.jpg")


# ------------------------------------------------------------------------------ checker: one fault each


@pytest.fixture
def valid_file(tmp_path):
    cat = _catalogue(tmp_path, "va")
    path = tmp_path / "predictions.txt"
    write_submission("va", _predictions("va"), cat, path)
    return cat, path, path.read_text().splitlines()


def _check(cat, path, lines, counts=FRAMES):
    path.write_text("\n".join(lines) + "\n")
    return check_submission("va", path, cat, counts)


def test_checker_missing_line(valid_file):
    cat, path, lines = valid_file
    problems = _check(cat, path, lines[:3] + lines[4:])  # 1-30-640x360/00003.jpg
    assert len(problems) == 1
    assert "missing 1 line(s) 1-30-640x360/00003.jpg" in problems[0].message
    assert "after line 3" in problems[0].message


def test_checker_missing_last_frames_needs_frame_counts(valid_file):
    cat, path, lines = valid_file
    cut = lines[:4] + lines[5:]  # drop 1-30-640x360/00004.jpg, the subject's last frame
    assert len(_check(cat, path, cut)) == 1
    assert _check(cat, path, cut, counts=None) == []  # contiguous from 1: cannot be seen without counts


def test_checker_gap_without_frame_counts(valid_file):
    cat, path, lines = valid_file
    problems = _check(cat, path, lines[:2] + lines[3:], counts=None)
    assert len(problems) == 1 and "1-30-640x360/00002.jpg" in problems[0].message


def test_checker_missing_subject_without_frame_counts(valid_file):
    cat, path, lines = valid_file
    problems = _check(cat, path, lines[:5] + lines[8:], counts=None)
    assert [p.message for p in problems] == ["no lines for test subject 2-25-854x480_left"]


def test_checker_duplicate_line(valid_file):
    cat, path, lines = valid_file
    problems = _check(cat, path, lines[:3] + [lines[2]] + lines[3:])
    assert len(problems) == 1
    assert problems[0].line == 4 and "duplicate of line 3" in problems[0].message


def test_checker_wrong_order(valid_file):
    cat, path, lines = valid_file
    swapped = lines[:2] + [lines[3], lines[2]] + lines[4:]
    problems = _check(cat, path, swapped)
    assert len(problems) == 1
    assert problems[0].line in (3, 4) and "out of order" in problems[0].message


def test_checker_subject_moved_to_the_end_is_one_problem_per_line(valid_file):
    cat, path, lines = valid_file
    moved = [lines[0]] + lines[5:] + lines[1:5]  # first subject's 4 lines at the end
    problems = _check(cat, path, moved)
    assert len(problems) == 4 and all("out of order" in p.message for p in problems)


def test_checker_bad_header(valid_file):
    cat, path, lines = valid_file
    problems = _check(cat, path, ["image_location,arousal,valence"] + lines[1:])
    assert len(problems) == 1 and problems[0].line == 1 and "header" in problems[0].message


def test_checker_value_out_of_range(valid_file):
    cat, path, lines = valid_file
    broken = list(lines)
    broken[6] = broken[6].split(",")[0] + ",1.5,0.2"
    problems = _check(cat, path, broken)
    assert len(problems) == 1 and problems[0].line == 7 and "outside [-1, 1]" in problems[0].message


def test_checker_nan(valid_file):
    cat, path, lines = valid_file
    broken = list(lines)
    broken[2] = broken[2].split(",")[0] + ",0.1,NaN"
    problems = _check(cat, path, broken)
    assert len(problems) == 1 and problems[0].line == 3 and "arousal is NaN" in problems[0].message


def test_checker_wrong_field_count_and_unexpected_line(valid_file):
    cat, path, lines = valid_file
    broken = lines[:2] + [lines[2] + ",0.3"] + lines[3:] + ["9-9-9x9/00001.jpg,0,0"]
    problems = _check(cat, path, broken)
    assert [(p.line, "fields" in p.message or "unexpected" in p.message) for p in problems] == [
        (3, True),
        (len(broken), True),
    ]


def test_checker_class_values(tmp_path):
    for task, bad, expect in (("au", "2", "AU4 '2'"), ("expr", "8", "class '8'"), ("expr", "1.0", "'1.0'")):
        cat = _catalogue(tmp_path, task)
        path = tmp_path / "p.txt"
        write_submission(task, _predictions(task), cat, path)
        lines = path.read_text().splitlines()
        fields = lines[1].split(",")
        fields[3 if task == "au" else 1] = bad
        lines[1] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n")
        problems = check_submission(task, path, cat, FRAMES)
        assert len(problems) == 1 and problems[0].line == 2 and expect in problems[0].message, problems


def test_checker_follows_example_lines(valid_file, tmp_path):
    cat, path, lines = valid_file
    example = tmp_path / "example.txt"
    example.write_text("\n".join(lines[:4]) + "\n")  # the example lists only the first 3 frames
    cat.example_submissions["va"] = example
    problems = check_submission("va", path, cat, FRAMES)
    assert len(problems) == 7 and all("unexpected" in p.message for p in problems)
