"""Following faces by refinement (`FaceConfig.follow` "refine"), with scripted stand-ins for MTCNN and for
refinement: which frames are detected whole, which are refined, and what each record's source says."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from pipeline.faces import look
from pipeline.faces.carry import LEAVING, SIZE_DRIFT, past_edge
from pipeline.faces.records import SOURCES
from tests.pipeline.faces.scripted import (
    FOLLOW_CFG,
    SCRIPT_CFG,
    H,
    ScriptedCarrier,
    ScriptedRefiner,
    SizedDetector,
    W,
    track,
)

pytestmark = pytest.mark.usefixtures("one_thread")
N = 100


def moving_box(i: int) -> np.ndarray:
    return np.array([10 + 1.0 * i, 20 + 0.3 * i, 40 + 1.0 * i, 60 + 0.3 * i])


def visible(i: int) -> bool:
    """The face leaves the picture on frames 41 to 52 (longer than max_gap) and comes back on 53."""
    return not 41 <= i <= 52


def plain(i: int) -> list:
    return [(moving_box(i), 0.99)]


def scene(i: int) -> list:
    return plain(i) if visible(i) else []


@pytest.fixture
def refiner(monkeypatch):
    """A scripted refinement that finds the face wherever it is visible."""
    fake = ScriptedRefiner(scene)
    monkeypatch.setattr(look, "refine_faces", fake)
    return fake


def test_a_lost_then_refound_face_is_followed_without_detecting_the_frames_between(refiner):
    recs, calls, _ = track(scene, N, cfg=FOLLOW_CFG)
    r = recs["main"]
    truth = np.array([visible(i) for i in range(N)])
    np.testing.assert_array_equal(r.face, truth)  # lost and found again to the frame
    np.testing.assert_allclose(
        r.box[truth], np.stack([moving_box(i) for i in np.flatnonzero(truth)]), atol=1e-3
    )
    samples = set(range(0, N, FOLLOW_CFG.every)) | {N - 1}
    assert set(calls) <= samples  # whole frames only at samples: never the frames between
    assert 41 - 1 in refiner.calls and 53 in refiner.calls  # the frames around the gap were refined
    assert r.source[40] == "refined" and r.source[53] == "refined"
    assert (r.source[41:53] == "none").all() and set(r.source) <= set(SOURCES)
    assert {"detected", "refined", "tracked"} <= set(r.source)
    # today's method detects every frame between the samples around the loss and the return
    _, today, _ = track(scene, N, cfg=SCRIPT_CFG)
    assert {41, 53} <= set(today) - samples
    assert len(calls) < len(today) / 2


def test_whole_frames_are_detected_every_detect_every_frames_while_each_face_is_followed(monkeypatch):
    # followed throughout: whole frames at the first sample and every `detect_every` frames after it
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(plain))
    detector = SizedDetector(plain, FOLLOW_CFG.min_face_size)
    track(plain, N, cfg=FOLLOW_CFG, detector=detector)
    assert sorted({i for i, _ in detector.views}) == list(range(0, N, FOLLOW_CFG.detect_every))
    # lost from 41 to 52: also at the first sample `search_every` or more after the last whole frame, from
    # which the next `detect_every` frames count (refinement finds the face back at 55)
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(scene))
    detector = SizedDetector(scene, FOLLOW_CFG.min_face_size)
    track(scene, N, cfg=replace(FOLLOW_CFG, detect_every=60), detector=detector)
    assert sorted({i for i, _ in detector.views}) == [0, 45]


def test_a_face_whole_frame_detection_misses_is_followed_by_refinement(monkeypatch):
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(scene))

    def dim(i: int) -> list:  # whole-frame detection stops seeing the face from frame 20 on
        return scene(i) if i < 20 else []

    recs, calls, _ = track(dim, 40, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert r.face.all()
    assert set(r.source[20:]) == {"refined", "tracked"}  # never detected whole, never without a face
    assert set(calls) <= set(range(0, 40, FOLLOW_CFG.every)) | {39}


def test_a_face_found_late_is_followed_back_to_where_it_appeared(monkeypatch):
    def late(i: int) -> list:  # whole-frame detection finds the face only from frame 25 on
        return plain(i) if i >= 25 else []

    appear = 13  # refinement sees it from frame 13
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: plain(i) if i >= appear else []))
    recs, _, _ = track(late, 50, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert not r.face[:appear].any() and r.face[appear:].all()
    assert (r.source[appear:25] == "refined").all()


def test_refinement_boxes_only_frames_where_it_finds_the_face(monkeypatch):
    # the face is visible on 0-59; refinement (the O-Net gate) finds it only there
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: scene(i) if i < 60 else []))
    recs, _, _ = track(lambda i: scene(i) if i < 60 else [], 90, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert r.face[:41].all() and r.face[53:60].all() and not r.face[60:].any()


def test_two_faces_crossing_keep_their_identity(monkeypatch):
    def crossing(i: int) -> list:
        left = np.array([10.0 + 2 * i, 20, 40 + 2 * i, 60])  # starts on the left, moves right
        right = np.array([120.0 - 2 * i, 25, 150 - 2 * i, 65])  # starts on the right, moves left
        hidden = 24 <= i <= 31  # the right face passes in front of the left one
        return [(right, 0.99)] if hidden else [(left, 0.99), (right, 0.995)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(crossing))
    recs, _, _ = track(crossing, 60, positions=("left", "right"), cfg=FOLLOW_CFG)
    left, right = recs["left"], recs["right"]
    assert right.face.all()
    np.testing.assert_allclose(right.box[:, 0], 120.0 - 2 * np.arange(60), atol=1e-3)
    seen = left.face
    assert seen[:24].all() and seen[32:].all()
    np.testing.assert_allclose(left.box[seen, 0], 10.0 + 2 * np.flatnonzero(seen), atol=1e-3)


# whole frames at a quarter, half and full size; MTCNN's minimum 12 px: faces of 48, 24 and 12 px are seen
VIEWS_CFG = replace(FOLLOW_CFG, work_size=W // 4, min_face_size=12, search_size=W // 2, deep_size=W)


@pytest.mark.parametrize(("side", "deep_look"), [(16, True), (30, False)])
def test_a_lost_face_too_small_for_the_search_view_is_looked_for_at_the_deep_size(
    monkeypatch, side, deep_look
):
    def jumps(i: int) -> list:  # a face that moves slowly, then jumps across the frame at 34
        x, y = (20.0 + 0.5 * i, 30.0) if i < 34 else (110.0 + 0.5 * (i - 34), 40.0)
        return [(np.array([x, y, x + side, y + side]), 0.99)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(jumps))
    detector = SizedDetector(jumps, VIEWS_CFG.min_face_size)
    recs, _, _ = track(jumps, 90, cfg=VIEWS_CFG, detector=detector)
    r = recs["main"]
    deep = [i for i, w in detector.views if w == W and i > 0]  # looks at the deep size after the first
    if deep_look:  # only the deep view sees a 16 px face: looked for there at the next whole detection
        assert deep and deep[0] < 34 + VIEWS_CFG.search_every
        assert r.face.all()  # and followed back from there to where it jumped
    else:  # the search view finds a 30 px face: no look at the deep size
        assert not deep and r.face.all()
    assert (r.source[34:] != "none").all()


@pytest.mark.parametrize("at", [40, 46, 58])
def test_a_face_that_jumped_is_followed_back_from_where_it_was_found(monkeypatch, at):
    # a 16 px face (seen whole only at the deep size) jumps across the frame at `at` and is found there
    # again a few frames later: followed back to the jump from where it was found, not from halfway
    # between its old and new place (the speed of the jump)
    def jumps(i: int) -> list:
        x, y = (20.0 + 0.5 * i, 30.0) if i < at else (110.0 + 0.5 * (i - at), 40.0)
        return [(np.array([x, y, x + 16, y + 16]), 0.99)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(jumps))
    detector = SizedDetector(jumps, VIEWS_CFG.min_face_size)
    recs, _, _ = track(jumps, 90, cfg=VIEWS_CFG, detector=detector)
    r = recs["main"]
    assert r.face.all()
    np.testing.assert_allclose(r.box[at:, 0], 110.0 + 0.5 * np.arange(90 - at), atol=1e-3)


@pytest.mark.parametrize(("gap", "deep_look"), [(40.0, True), (4.0, False)])
def test_a_lost_small_face_beside_a_larger_one_is_looked_for_at_the_deep_size_only_where_it_was_apart(
    monkeypatch, gap, deep_look
):
    # two subjects: the right one's 16 px face is seen only at the deep size; the left one's 40 px face,
    # there from frame 10, at the work size. At 34 the small face is gone from where it was
    def scene(i: int) -> list:
        x = 80.0 + gap + 0.5 * i  # the small face, `gap` px right of the large one's right side
        small = np.array([x, 40.0, x + 16, 56.0]) if i < 34 else np.array([x - 20, 64.0, x - 4, 80.0])
        large = np.array([40.0 + 0.5 * i, 30.0, 80.0 + 0.5 * i, 70.0])
        hidden = gap < 16 and i >= 34  # right beside the large face: gone behind it
        return ([(large, 0.99)] if i >= 10 else []) + ([] if hidden else [(small, 0.98)])

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(scene))
    detector = SizedDetector(scene, VIEWS_CFG.min_face_size)
    recs, _, _ = track(scene, 90, positions=("left", "right"), cfg=VIEWS_CFG, detector=detector)
    left, right = recs["left"], recs["right"]
    assert left.face[10:].all() and right.face[:34].all()  # the small face first found at the deep size
    deep = [i for i, w in detector.views if w == W and i >= 34]  # looks at the deep size after it went
    if deep_look:  # last seen away from the large face: it may be too small to be found, not hidden
        assert deep and deep[0] < 34 + VIEWS_CFG.search_every
        assert right.face.all()  # and followed back from there to where it moved
    else:  # last seen next to the large face: taken to be behind it, no look at the deep size
        assert not deep and not right.face[34:].any()


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunk_size_does_not_change_the_followed_records(refiner, chunk):
    reference, _, _ = track(scene, N, chunk=16, cfg=FOLLOW_CFG)
    recs, _, pushes = track(scene, N, chunk=chunk, cfg=FOLLOW_CFG)
    for field in ("index", "face", "box", "landmarks", "score", "source"):
        np.testing.assert_array_equal(getattr(recs["main"], field), getattr(reference["main"], field))
    emitted = 0
    lag = FOLLOW_CFG.every + FOLLOW_CFG.max_gap + FOLLOW_CFG.look_back + 1
    for c, out in pushes:
        r = out["main"]
        assert r.index.tolist() == list(range(emitted, emitted + len(r)))
        emitted += len(r)
        assert emitted >= c.stop - lag


def test_a_face_back_after_a_long_absence_on_the_other_side_takes_its_own_position(monkeypatch):
    def scene2(i: int) -> list:
        left = np.array([10.0 + i, 20, 40 + i, 60])  # on the left at first, ends on the right
        right = np.array([110.0 - i, 25, 140 - i, 65])  # the other way, hidden on 10-59 (passing behind)
        return [(left, 0.99)] + ([(right, 0.995)] if i < 10 or i >= 60 else [])

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(scene2))
    recs, _, _ = track(scene2, 80, positions=("left", "right"), cfg=FOLLOW_CFG)
    left, right = recs["left"], recs["right"]
    assert left.face.all()
    np.testing.assert_allclose(left.box[:, 0], 10.0 + np.arange(80), atol=1e-3)  # never the other face
    back = np.flatnonzero(right.face[60:]) + 60
    assert len(back) >= 10 and not right.face[10:60].any()
    np.testing.assert_allclose(right.box[back, 0], 110.0 - back, atol=1e-3)


def test_a_face_o_net_stops_accepting_is_carried_on_until_it_is_gone(monkeypatch):
    # the face is shown on 0-69; refinement (O-Net) accepts it only until frame 29, as a head turning away
    shown = lambda i: plain(i) if i < 70 else []  # noqa: E731
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: plain(i) if i < 30 else []))
    carrier = ScriptedCarrier(shown)
    monkeypatch.setattr(look, "carry_faces", carrier)
    recs, _, _ = track(lambda i: plain(i) if i < 30 else [], 90, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert r.face[:70].all() and not r.face[70:].any()  # carried to the last frame it is shown, no further
    np.testing.assert_allclose(r.box[:70], np.stack([moving_box(i) for i in range(70)]), atol=1e-3)
    assert (r.source[30:70] == "tracked").all() and (r.score[30:70] == 0).all()  # no detector accepted them
    assert 70 in carrier.calls  # looked for where it was gone

    # at most carry_frames frames from the last face O-Net accepted
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(shown))
    short, _, _ = track(lambda i: plain(i) if i < 30 else [], 90, cfg=replace(FOLLOW_CFG, carry_frames=12))
    assert short["main"].face[:42].all() and not short["main"].face[42 + FOLLOW_CFG.max_gap + 1 :].any()

    # and never without the setting
    off, _, _ = track(lambda i: plain(i) if i < 30 else [], 90, cfg=replace(FOLLOW_CFG, carry_frames=0))
    assert not off["main"].face[30 + FOLLOW_CFG.max_gap + 1 :].any()


def test_a_refined_face_past_the_frame_edge_keeps_its_whole_box(monkeypatch):
    # the face drifts out over the left edge (up to 15 px of its 30 past it): each refined box is the
    # whole face's, not the part inside the frame, so that the next frame's look starts from the face
    def cut(i: int) -> list:
        return [(moving_box(i) - 2 * np.array([min(i, 25), 0, min(i, 25), 0]), 0.99)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(cut))
    recs, _, _ = track(lambda i: cut(i) if i == 0 else [], 40, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert r.face.all() and (r.source[1:] == "refined").any()
    np.testing.assert_allclose(r.box, np.stack([cut(i)[0][0] for i in range(40)]), atol=1e-3)
    assert r.box[:, 0].min() < -10


def test_a_whole_frame_detection_does_not_renew_a_carried_face(monkeypatch):
    # O-Net accepts the face only until frame 29; it stays in sight and could be carried to the end. The
    # whole-frame detections on the way find nothing new: the carried face they keep is no more accepted
    # than before, so carrying still ends carry_frames after frame 29 (it was renewed at each one)
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: plain(i) if i < 30 else []))
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(plain))
    cfg = replace(FOLLOW_CFG, carry_frames=40)
    recs, calls, _ = track(lambda i: plain(i) if i < 30 else [], 120, cfg=cfg)
    r = recs["main"]
    assert any(35 < c < 70 for c in calls)  # a whole frame detected while the face was carried
    assert r.face[:70].all() and (r.source[30:70] == "tracked").all()
    assert not r.face[70 + cfg.max_gap + 1 :].any()


def test_a_carried_box_that_shrinks_away_from_the_accepted_face_is_dropped(monkeypatch):
    # O-Net accepts the face until frame 29; from there what is carried shrinks 3 % a frame about its
    # centre (what shows of a face leaving the frame): carried while its side is within SIZE_DRIFT of
    # the accepted face's (7 frames: 0.97^7 = 0.81), then no face
    def shrinking(i: int) -> list:
        box = moving_box(i)
        centre, k = (box[:2] + box[2:]) / 2, 0.97 ** max(i - 29, 0)
        return [
            (
                np.concatenate([centre - (box[2:] - box[:2]) * k / 2, centre + (box[2:] - box[:2]) * k / 2]),
                0.99,
            )
        ]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: plain(i) if i < 30 else []))
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(shrinking))
    recs, _, _ = track(lambda i: plain(i) if i < 30 else [], 60, cfg=FOLLOW_CFG)
    r = recs["main"]
    assert 0.97**7 * SIZE_DRIFT > 1 > 0.97**8 * SIZE_DRIFT
    assert r.face[:37].all() and (r.source[30:37] == "tracked").all()
    assert not r.face[37:].any()


@pytest.mark.parametrize("step", [1.0, 6.0], ids=["leaning-out", "leaving"])
def test_a_carried_face_leaving_the_frame_quickly_is_dropped_at_the_edge(monkeypatch, step):
    # O-Net accepts the 30 px face until frame 29 (its box at x 10 - 40); from there it moves left by
    # `step` px a frame, out across the frame's edge. Appearance follows it (as it follows what is left
    # of a face in the frame). Leaning out slowly, a thirtieth of its box a frame, it stays carried; leaving
    # a fifth of its box a frame, it is carried only while its box does not cross the edge faster than
    # LEAVING a frame
    def face(i: int) -> list:
        x = 10.0 - step * max(i - 29, 0)
        return [(np.array([x, 20.0, x + 30.0, 50.0]), 0.99)] if x > -30 else []

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: face(i) if i < 30 else []))
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(face, reach=0.05))
    recs, _, _ = track(lambda i: face(i) if i < 30 else [], 50, cfg=FOLLOW_CFG)
    r = recs["main"]
    boxes = [face(i)[0][0] for i in range(29, 50) if face(i)]
    moves = [past_edge(b, (H, W)) - past_edge(a, (H, W)) for a, b in itertools.pairwise(boxes)]
    if step == 1.0:
        assert max(moves) <= LEAVING  # never faster than the setting
        assert r.face[:50].all() and (r.source[30:50] == "tracked").all()
    else:
        first = 30 + next(k for k, m in enumerate(moves) if m > LEAVING)  # 10 - 6 * 3 = -8: 27 % out
        assert first == 32
        assert r.face[:first].all() and not r.face[first:].any()


def test_a_face_is_never_carried_onto_another_positions_face(monkeypatch):
    def crossing(i: int) -> list:
        left = np.array([10.0 + 2 * i, 20, 40 + 2 * i, 60])  # starts on the left, moves right
        right = np.array([120.0 - 2 * i, 25, 150 - 2 * i, 65])  # starts on the right, moves left
        return [(right, 0.99)] if 24 <= i <= 31 else [(left, 0.99), (right, 0.995)]

    def refused(i: int) -> list:  # O-Net stops accepting the left face at frame 20
        return [f for f in crossing(i) if i < 20 or f[0][0] > 60 - 2 * i]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(refused))
    # "appearance" finds whichever face overlaps the expected box most: the right one while it hides the left
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(crossing))
    recs, _, _ = track(refused, 60, positions=("left", "right"), cfg=FOLLOW_CFG)
    left, right = recs["left"], recs["right"]
    np.testing.assert_allclose(right.box[:, 0], 120.0 - 2 * np.arange(60), atol=1e-3)
    seen = np.flatnonzero(left.face)
    assert not left.face[24:32].any()  # hidden: not carried onto the face in front
    np.testing.assert_allclose(left.box[seen, 0], 10.0 + 2 * seen, atol=1e-3)  # only ever its own face


def test_a_whole_frame_detection_of_a_carried_face_takes_the_detectors_box(monkeypatch):
    # O-Net accepts the face only until frame 29; appearance carries on a box a fifth too large (a box
    # that had grown off the face); the whole-frame detections on the way find the face itself, and
    # there the record is the detector's box, not the carried one
    def grown(i: int) -> list:
        box = moving_box(i)
        centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * 1.2 / 2
        return [(np.concatenate([centre - half, centre + half]), 0.99)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(lambda i: plain(i) if i < 30 else []))
    monkeypatch.setattr(look, "carry_faces", ScriptedCarrier(grown))
    recs, calls, _ = track(plain, 90, cfg=FOLLOW_CFG)
    r = recs["main"]
    whole = sorted({c for c in calls if c >= 30})
    assert whole and r.face.all()
    for i in whole:
        assert r.source[i] == "detected", (i, r.source[i])
        np.testing.assert_allclose(r.box[i], moving_box(i), atol=1e-3)
    carried = [i for i in range(30, 90) if i not in whole and r.source[i] == "tracked"]
    assert carried  # between them the face is still carried (O-Net refuses it)


@pytest.mark.parametrize("whole", [True, False])
def test_a_face_found_small_after_a_gap_is_looked_for_again_at_its_last_size(monkeypatch, whole):
    # a 40 px face leaves at 30 and is back at 42 across the frame. Where part of it is hidden, the
    # detector finds only what shows (a 14 px box on one cheek): refinement at the face's last size
    # about that box finds the whole face, and the track follows it. A face that did shrink (moved away:
    # only the 14 px face there) keeps its box
    part = np.array([122.0, 40.0, 136.0, 54.0])
    face = np.array([100.0, 25.0, 140.0, 65.0])

    def shown(i: int) -> list:
        if i < 30:
            return [(np.array([10.0, 20.0, 50.0, 60.0]), 0.99)]
        if i < 42:
            return []
        return ([(face, 0.99)] if whole else []) + [(part, 0.97)]

    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(shown))
    detector = SizedDetector(lambda i: shown(i)[-1:], 0)  # the whole frame shows the detector the part
    recs, _, _ = track(shown, 90, cfg=FOLLOW_CFG, detector=detector)
    r = recs["main"]
    back = np.flatnonzero(r.face[42:]) + 42
    assert len(back) >= 40  # found again within a search's cadence, and followed
    expected = face if whole else part
    np.testing.assert_allclose(r.box[back], np.broadcast_to(expected, (len(back), 4)), atol=1e-3)


def test_a_weak_face_box_larger_than_expected_grows_only_halfway():
    expected = np.array([100.0, 100.0, 140.0, 150.0], np.float32)  # 40 x 50
    larger = np.array([90.0, 95.0, 154.0, 167.0], np.float32)  # 64 x 72 about (122, 131)
    steady = look._steady(larger, expected)
    np.testing.assert_allclose(steady[2:] - steady[:2], np.sqrt([64 * 40, 72 * 50]), rtol=1e-5)
    np.testing.assert_allclose((steady[:2] + steady[2:]) / 2, [122.0, 131.0], rtol=1e-5)
    smaller = np.array([105.0, 110.0, 135.0, 140.0], np.float32)
    np.testing.assert_array_equal(look._steady(smaller, expected), smaller)  # shrinking is believed


@pytest.mark.parametrize(("fine_size", "found"), [(W, True), (0, False)])
def test_every_other_deep_look_is_finer_and_finds_a_face_just_under_the_deep_views_reach(
    monkeypatch, fine_size, found
):
    # views at a quarter, half and three quarters of the frame, and the frame's own size every other deep
    # look: a 14 px face is seen only at the full size (12 px there, 10.5 px at three quarters)
    def tiny(i: int) -> list:
        x = 60.0 + 0.2 * i
        return [(np.array([x, 30.0, x + 14, 44.0]), 0.99)]

    cfg = replace(VIEWS_CFG, deep_size=3 * W // 4, fine_size=fine_size)
    monkeypatch.setattr(look, "refine_faces", ScriptedRefiner(tiny))
    detector = SizedDetector(tiny, cfg.min_face_size)
    recs, _, _ = track(tiny, 60, cfg=cfg, detector=detector)
    r = recs["main"]
    deep = [(i, w) for i, w in detector.views if w > cfg.search_size]
    assert deep[0] == (0, 3 * W // 4)  # the first deep look at `deep_size` misses it
    if found:  # the second, at the full size, finds it, and it is followed back to the first frame
        assert deep[1] == (cfg.deep_every, W)
        assert r.face.all()
    else:
        assert {w for _, w in deep} == {3 * W // 4} and not r.face.any()
