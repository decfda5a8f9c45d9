"""The bench's face scores on small arrays: a face is found only by its own subject's box at IoU >= 0.5,
boxes on frames without a face are counted, identity switches are changes of which true face a record
follows, pooled figures are over frames."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.bench.scores import FaceScore, assignments, count_switches, pooled, subject_score, video_score

BOX = np.array([100.0, 100.0, 200.0, 200.0])


def shifted(dx: float) -> np.ndarray:
    return BOX + [dx, 0, dx, 0]


def test_found_needs_the_subjects_own_box_at_iou_half():
    true_face = np.array([True, True, True, True, False])
    true_box = np.tile(BOX, (5, 1))
    # exact; shifted by 45 (IoU 55/145 = 0.38); no box; shifted by 25 (IoU 75/125 = 0.6); a box without a face
    face = np.array([True, True, False, True, True])
    box = np.stack([BOX, shifted(45), np.zeros(4), shifted(25), BOX])
    s = subject_score(true_face, true_box, face, box)
    assert (s.frames, s.face_frames, s.found, s.no_face_frames, s.wrong_boxes) == (5, 4, 2, 1, 1)
    assert s.found_pct == pytest.approx(50.0)
    assert s.median_iou == pytest.approx(0.6)  # of the face frames with a box: 1, 0.38, 0.6
    assert s.ious == pytest.approx([1.0, 55 / 145, 0.6])


def test_a_record_on_the_other_persons_face_is_not_found_and_counts_as_switches():
    n = 6
    left = (np.ones(n, bool), np.tile(BOX, (n, 1)))
    right = (np.ones(n, bool), np.tile(shifted(300), (n, 1)))
    truth = {"v_left": left, "v_right": right}
    # the tracker swaps the two faces from frame 3 on
    boxes_left = np.stack([BOX] * 3 + [shifted(300)] * 3)
    boxes_right = np.stack([shifted(300)] * 3 + [BOX] * 3)
    records = {
        "v_left": (np.arange(n), np.ones(n, bool), boxes_left),
        "v_right": (np.arange(n), np.ones(n, bool), boxes_right),
    }
    scores = video_score(truth, records)
    assert scores["v_left"].found == 3 and scores["v_right"].found == 3  # the swapped frames are not found
    assert scores["v_left"].switches == 1 and scores["v_right"].switches == 1  # one swap: 2 in all
    assert pooled(scores.values()).switches == 2
    # kept apart: no switch, every frame found
    kept = {
        "v_left": (np.arange(n), np.ones(n, bool), left[1]),
        "v_right": (np.arange(n), np.ones(n, bool), right[1]),
    }
    scores = video_score(truth, kept)
    assert sum(s.switches for s in scores.values()) == 0 and all(s.found == n for s in scores.values())


def test_switches_count_changes_of_assignment_from_the_own_subject():
    assert count_switches(np.array([0, 0, -1, 1, 1, 0]), own=0) == 2  # away and back
    assert count_switches(np.array([1, 1, 1]), own=0) == 1  # on the other face from the start
    assert count_switches(np.array([-1, -1]), own=1) == 0  # never on any face
    assert count_switches(np.array([1, -1, 1]), own=1) == 0  # a gap is no switch


def test_assignment_takes_the_best_overlap_above_the_match_threshold():
    truths = [(np.ones(3, bool), np.tile(BOX, (3, 1))), (np.ones(3, bool), np.tile(shifted(60), (3, 1)))]
    box = np.stack([shifted(10), shifted(50), shifted(500)])  # near the first, near the second, near none
    face = np.array([True, True, True])
    np.testing.assert_array_equal(assignments(face, box, truths), [0, 1, -1])
    np.testing.assert_array_equal(assignments(np.zeros(3, bool), box, truths), [-1, -1, -1])  # no box
    hidden = [(np.array([True, False, True]), truths[0][1]), truths[1]]  # the first face not shown in frame 1
    box = np.stack([shifted(20)] * 3)  # nearer the first face, but it is not shown in frame 1
    np.testing.assert_array_equal(assignments(face, box, hidden), [0, 1, 0])


def test_records_are_matched_to_the_truth_by_decode_index_and_a_missing_subject_misses_all():
    true_face = np.array([True, True, False, True])
    truth = {"a": (true_face, np.tile(BOX, (4, 1)))}
    records = {"a": (np.array([3, 1]), np.array([True, False]), np.stack([BOX, BOX]))}  # frames 3 and 1 only
    s = video_score(truth, records)["a"]
    assert (s.frames, s.face_frames, s.found) == (2, 2, 1)
    missing = video_score(truth, {})["a"]
    assert (missing.frames, missing.found, missing.wrong_boxes) == (4, 0, 0) and missing.face_frames == 3


def test_pooled_scores_are_over_frames_not_means_of_videos():
    one = FaceScore(frames=1, face_frames=1, found=1, ious=np.array([0.9]))
    three = FaceScore(
        frames=3, face_frames=3, found=0, no_face_frames=2, wrong_boxes=1, ious=np.array([0.4] * 3)
    )
    total = pooled([one, three])
    assert total.found_pct == pytest.approx(25.0)  # 1 of 4 frames, not the mean of 100 % and 0 %
    assert total.median_iou == pytest.approx(0.4)  # the median of the four frames, not of the two medians
    assert total.figures()["wrong_boxes"] == 1 and total.figures()["no_face_frames"] == 2
    assert np.isnan(FaceScore().found_pct) and FaceScore(face_frames=2).median_iou == 0.0
