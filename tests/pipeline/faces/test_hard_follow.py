"""Following faces by refinement on hard synthetic video (`pipeline.synth.hard`, a seed `lwaffect bench` does
not use), through real H.264 decoding and real MTCNN: found share, IoU, identity and no box on a frame
without a face, beside today's method on the same videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou, load_detector
from pipeline.faces.track import FaceRecords, FaceTracker
from pipeline.synth.hard import positions, write_hard
from pipeline.video.decode import DecodeConfig, iter_chunks

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
SEED = 3  # neither the bench's (0) nor the synth tests' (5)
# where whole-frame detection fails most, and faces too small for the search size
VARIANTS = ("dark", "low_contrast", "small", "fast", "crossing", "tiny")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, tuple[Path, dict[str, tuple[str, np.ndarray, np.ndarray]]]]:
    """variant -> (video, subject -> (position, face (n,), true boxes (n, 4)))."""
    folder = tmp_path_factory.mktemp("hard_follow")
    out = {}
    for variant in VARIANTS:
        path = folder / f"{variant}.mp4"
        truth = write_hard(path, variant, 2.0, SEED).to_pandas()
        subjects = {}
        for name in dict.fromkeys(truth["subject"]):
            rows = truth[truth["subject"] == name]
            pos = name.rsplit("_", 1)[1] if positions(variant) != ("main",) else "main"
            subjects[name] = (
                pos,
                rows["face"].to_numpy(bool),
                rows[["x1", "y1", "x2", "y2"]].to_numpy(float),
            )
        out[variant] = (path, subjects)
    return out


DEEP_FRAMES: dict[tuple[Path, FaceConfig], int] = {}  # frames each `follow` detected at `deep_size`


def follow(path: Path, cfg: FaceConfig, pos: tuple[str, ...]) -> dict[str, FaceRecords]:
    tracker = FaceTracker(cfg, pos, load_detector(cfg=cfg))
    parts: dict[str, list[FaceRecords]] = {p: [] for p in pos}
    for chunk in iter_chunks(path, DecodeConfig(chunk_frames=16, isolate=False)):
        for p, r in tracker.push(chunk).items():
            parts[p].append(r)
    for p, r in tracker.flush().items():
        parts[p].append(r)
    DEEP_FRAMES[path, cfg] = tracker.deep_frames
    return {p: FaceRecords.concat(v) for p, v in parts.items()}


def scores(videos, cfg: FaceConfig) -> dict[str, tuple[int, int, int, list[float]]]:
    """Per subject: true face frames, frames found (IoU >= 0.5 with its own true box), boxes on frames
    without its face, IoUs of the boxes given on its face frames."""
    out = {}
    for path, subjects in videos.values():
        recs = follow(path, cfg, tuple(p for p, _, _ in subjects.values()))
        for name, (pos, face, boxes) in subjects.items():
            r = recs[pos]
            iou = box_iou(r.box.astype(np.float64), np.nan_to_num(boxes))
            given = face & r.face
            out[name] = (int(face.sum()), int((given & (iou >= 0.5)).sum()), int((~face & r.face).sum()),
                         iou[given].tolist())  # fmt: skip
    return out


def test_refinement_finds_the_hard_faces_with_their_identity_and_no_box_without_a_face(videos):
    new = scores(videos, FaceConfig(follow="refine"))
    today = scores(videos, FaceConfig(follow="detect"))
    true, found, wrong = (sum(s[k] for s in new.values()) for k in range(3))
    assert found / true >= 0.95, new
    for name, (t, f, _, _) in new.items():
        assert f / t >= 0.85, (name, f, t)  # every subject, the crossing's two included (their own boxes)
    # no box in a faceless stretch (dark, low_contrast); where a face is mostly hidden behind the other
    # person (crossing) MTCNN may still see its edge: no more boxes there than whole-frame detection gives
    assert all(new[n][2] == 0 for n in new if "crossing" not in n)
    assert wrong <= max(sum(today[n][2] for n in today if "crossing" in n), 2)
    assert np.median(np.concatenate([s[3] for s in new.values()])) >= 0.8
    assert found > sum(s[1] for s in today.values())  # more than whole-frame detection finds


def test_faces_too_small_for_the_search_size_are_found_by_the_deep_view(videos):
    tiny = {"tiny": videos["tiny"]}
    ((true, found, wrong, ious),) = scores(tiny, FaceConfig()).values()
    ((_, found_without, _, _),) = scores(tiny, FaceConfig(deep_size=0)).values()
    assert found / true >= 0.9 and wrong == 0 and np.median(ious) >= 0.8, (found, true, wrong)
    assert found_without / true <= 0.1  # at `search_size` alone the faces stay unseen
    assert DEEP_FRAMES[videos["tiny"][0], FaceConfig()] >= 1
    # a face that leaves for a moment (the faceless stretches of dark and low_contrast) or one hidden
    # beside another (crossing) costs no look at `deep_size`
    scores({v: videos[v] for v in ("dark", "low_contrast", "crossing")}, FaceConfig())
    assert all(DEEP_FRAMES[videos[v][0], FaceConfig()] == 0 for v in ("dark", "low_contrast", "crossing"))


# (variant, seed) of 3 s videos whose face a change of the tracker once lost for a third of its frames:
# - seed 19's occluded face comes back from its faceless stretch with the occluder on its cheek, and the
#   detector finds a third of it (an eye and a cheek): followed from that box, the track stayed on a third
#   of the face for 25 frames (39 of 67 found; without the look again at 0.8 of its side, 35);
# - seed 11's face turns to 70 degrees: O-Net, barely accepting it, regressed its box a little larger
#   frame after frame (each box the next one's expectation), 226 -> 302 px tall, onto hair and neck,
#   and the face was carried on in that box (78 of 90 found where a weak box grows all the way)
# Each must now find at least the share for every video, 85 %: a tracker that follows its own boxes
# is chaotic at the margins, and the same code finds 64 or more of seed 19's 67 face frames on a Xeon but
# 60 on an AMD EPYC (frames 51 to 57: O-Net's box narrows onto what the occluder leaves of the face, each
# box the next one's expectation, until the sample at 58 restores it), both far from the regression's 39
REGRESSIONS = [("occluded", 19), ("profile", 11)]
LEAST_FOUND = 0.85  # share of the true face frames of every video (issue 15's bound per video)


@pytest.mark.parametrize(("variant", "seed"), REGRESSIONS)
def test_a_partly_hidden_or_turned_face_is_followed_at_its_size(tmp_path, variant, seed):
    path = tmp_path / f"{variant}.mp4"
    truth = write_hard(path, variant, 3.0, seed).to_pandas()
    subjects = {
        "main": ("main", truth["face"].to_numpy(bool), truth[["x1", "y1", "x2", "y2"]].to_numpy(float))
    }
    ((true, found, wrong, ious),) = scores({variant: (path, subjects)}, FaceConfig()).values()
    assert found / true >= LEAST_FOUND and wrong == 0, (found, true, wrong)
    # a turned face's true box narrows, O-Net's does not: its IoU stays lower than a frontal face's
    assert np.median(ious) >= (0.8 if variant != "profile" else 0.7)
