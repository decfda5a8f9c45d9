"""The submission checker: every fault of a hand-broken file found on its own."""

import pytest

from pipeline.submission.check import check_submission
from pipeline.submission.write import write_submission
from tests.helpers import FRAMES, submission_catalogue, submission_predictions


@pytest.fixture
def valid_file(tmp_path):
    cat = submission_catalogue(tmp_path, "va")
    path = tmp_path / "predictions.txt"
    write_submission("va", submission_predictions("va"), cat, path)
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
        cat = submission_catalogue(tmp_path, task)
        path = tmp_path / "p.txt"
        write_submission(task, submission_predictions(task), cat, path)
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
