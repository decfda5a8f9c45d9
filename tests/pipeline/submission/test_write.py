"""The submission writer: round trips through the checker, the organiser example's order, and the
faults that stop a submission (missing subjects and frames, NaN, duplicates)."""

import numpy as np
import polars as pl
import pytest

from model.tasks import AU_NAMES, EMI_NAMES, EXPR_NAMES
from pipeline.datasets.catalogue import Catalogue, Subject, Video
from pipeline.submission.check import check_submission
from pipeline.submission.write import SubmissionError, write_submission
from tests.helpers import FRAMES, submission_catalogue, submission_predictions


@pytest.mark.parametrize("task", ["va", "au", "expr"])
def test_round_trip_has_no_problems(tmp_path, task):
    cat, table = submission_catalogue(tmp_path, task), submission_predictions(task)
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
    cat, table = submission_catalogue(tmp_path, "expr"), submission_predictions("expr")
    path = tmp_path / "p.txt"
    write_submission("expr", table, cat, path)
    written = [int(line.split(",")[1]) for line in path.read_text().splitlines()[1:]]
    assert written == table["expression"].to_list()
    write_submission("va", submission_predictions("va"), submission_catalogue(tmp_path, "va"), path)
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in path.read_text().splitlines()[1:]])
    expected = np.clip(submission_predictions("va").select("valence", "arousal").to_numpy(), -1, 1)
    np.testing.assert_allclose(values, expected, atol=5e-5)


def test_example_file_order_is_followed(tmp_path):
    example = tmp_path / "example.txt"
    # right before left, and one frame (00004) more than predicted for the right subject
    lines = ["image_location,valence,arousal"]
    lines += [f"2-25-854x480_right/{f:05d}.jpg,0,0" for f in range(1, 5)]
    lines += [f"2-25-854x480_left/{f:05d}.jpg,0,0" for f in range(1, 4)]
    lines += [f"1-30-640x360/{f:05d}.jpg,0,0" for f in range(1, 5)]
    example.write_text("\n".join(lines) + "\n")
    cat = submission_catalogue(tmp_path, "va")
    cat.example_submissions["va"] = example
    table = submission_predictions("va")
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
    cat = submission_catalogue(tmp_path, "va")
    table = submission_predictions("va").filter(
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
    cat = submission_catalogue(tmp_path, "va")
    table = submission_predictions("va").with_columns(
        pl.when(pl.col("frame") == 2).then(float("nan")).otherwise(pl.col("valence")).alias("valence")
    )
    with pytest.raises(SubmissionError, match="NaN"):
        write_submission("va", table, cat, tmp_path / "p.txt")
    doubled = pl.concat([submission_predictions("va"), submission_predictions("va").head(1)])
    with pytest.raises(SubmissionError, match="more than once"):
        write_submission("va", doubled, cat, tmp_path / "p.txt")


def test_ah_lines_have_no_header_and_frames_from_zero(tmp_path):
    root = tmp_path / "bah"
    subject = "p01_Question_1_Video"
    cat = Catalogue(root=root, layout="ah")
    cat.videos["v"] = Video("v", root / "videos" / "p01" / "Visite_1" / "p01_Question_1_Video.mp4")
    cat.subjects[subject] = Subject(subject, "v", "main")
    cat.splits["ah"] = {"test": [subject]}
    table = submission_predictions("ah", {subject: 3})
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
