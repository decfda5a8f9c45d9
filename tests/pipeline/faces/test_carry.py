"""Carrying a face on by its appearance (`pipeline.faces.carry`), on frames with the synthetic data set's
real face turned past 60 degrees or cut by the frame's edge: the face is carried to where it moved, with
its landmarks, and a frame where it is gone gives no box."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from pipeline.faces.carry import COARSE, FINE, SHOWN, SIDE, _grid, _similarity, carry_faces, past_edge
from pipeline.faces.config import FaceConfig
from pipeline.faces.detect import box_iou
from pipeline.synth.faces import FaceState, make_background, render_face

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = FaceConfig(follow="refine")


def turned(
    background: np.ndarray, cx: float, cy: float, yaw: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The synthetic face (identity 2) turned by `yaw` degrees at (cx, cy) on a copy of `background`:
    frame (H, W, 3) uint8, true box (4,) and landmarks (5, 2)."""
    state = FaceState(cx=cx, cy=cy, height=220.0, brightness=0.5, contrast=0.5, tint=3,
                      marks=(False,) * 12, identity=2, yaw=yaw)  # fmt: skip
    frame = background.copy()
    box, marks = render_face(frame, state)
    return frame, np.asarray(box, np.float32), np.asarray(marks, np.float32)


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return make_background(720, 1280, np.random.default_rng(4), textured=True)


@pytest.mark.parametrize(("yaw", "step"), [(62.0, (7.0, -3.0)), (68.0, (-5.0, 4.0))])
def test_a_turned_face_is_carried_to_where_it_moved(background, yaw, step):
    before, box0, marks0 = turned(background, 600, 360, yaw - 2)
    now, box1, _ = turned(background, 600 + step[0], 360 + step[1], yaw)
    (carried,) = carry_faces([now], box0[None], [(before, box0, marks0)], CFG)
    assert carried is not None and carried.similarity >= CFG.carry_similarity
    assert float(box_iou(carried.box, box1)) > 0.75
    moved = (carried.box[:2] + carried.box[2:]) / 2 - (box0[:2] + box0[2:]) / 2
    np.testing.assert_allclose(moved, step, atol=4.0)  # the box followed the face's step
    np.testing.assert_allclose(carried.landmarks - marks0, np.broadcast_to(moved, (5, 2)), atol=4.0)


def test_a_face_that_is_gone_is_not_carried(background):
    before, box0, marks0 = turned(background, 600, 360, 60.0)
    (carried,) = carry_faces([background], box0[None], [(before, box0, marks0)], CFG)
    assert carried is None


def test_the_similarity_setting_gates_the_carried_face(background):
    before, box0, marks0 = turned(background, 600, 360, 60.0)
    now, _, _ = turned(background, 604, 360, 62.0)
    (found,) = carry_faces([now], box0[None], [(before, box0, marks0)], CFG)
    assert found is not None
    strict = replace(CFG, carry_similarity=min(found.similarity + 0.01, 1.0))
    assert carry_faces([now], box0[None], [(before, box0, marks0)], strict) == [None]


@pytest.mark.parametrize("grid", [COARSE, FINE, ((0.0,), (1.0,))], ids=["coarse", "fine", "one"])
@pytest.mark.parametrize("corner", [(20.0, 16.0), (-9.0, 50.0), (60.0, -4.5)], ids=["inside", "left", "top"])
def test_the_grid_templates_are_what_roi_align_cuts(grid, corner):
    """The separable cut of a grid's templates equals roi_align's (aligned, two samples per bin) on every
    trial box, boxes reaching out of the window included (zeros more than a pixel out, clamped within)."""
    rng = np.random.default_rng(3)
    luma = (rng.random((88, 101)) * 255).astype(np.float32)  # (h, w)
    box = np.array([corner[0], corner[1], corner[0] + 41.0, corner[1] + 44.5], np.float32)
    trials, cuts = _grid(luma, box, grid)
    assert trials.shape == (len(grid[0]) ** 2 * len(grid[1]), 4)
    assert np.isclose(
        trials[:, 2] - trials[:, 0], 41.0 * np.repeat(grid[1], len(grid[0]) ** 2), rtol=1e-5
    ).all()
    rois = torch.cat([torch.zeros(len(trials), 1), torch.from_numpy(trials)], dim=1)
    ref = roi_align(torch.from_numpy(luma)[None, None], rois, (SIDE, SIDE), 1.0, 2, True).flatten(1)
    assert np.abs(cuts - ref.numpy()).max() < 1e-3  # luminance 0-255, float32 sums


@pytest.mark.parametrize(("cx", "step"), [(25.0, (4.0, 8.0)), (1255.0, (-6.0, -5.0))], ids=["left", "right"])
def test_a_face_cut_by_the_frame_edge_is_carried_to_where_it_moved(background, cx, step):
    # about 35 % of the face box lies past the edge: the window's black padding there is not compared
    before, box0, marks0 = turned(background, cx, 360, 0.0)
    now, box1, _ = turned(background, cx + step[0], 360 + step[1], 0.0)
    assert box0[0] < 0 or box0[2] > background.shape[1]
    (carried,) = carry_faces([now], box0[None], [(before, box0, marks0)], CFG)
    assert carried is not None
    assert float(box_iou(carried.box, box1)) > 0.8
    moved = (carried.box[:2] + carried.box[2:]) / 2 - (box0[:2] + box0[2:]) / 2
    np.testing.assert_allclose(moved, step, atol=4.0)


def test_a_face_that_left_the_frame_is_not_carried_on_its_edge(background):
    # the face cut by the edge is gone: the frame's edge and the padding beyond it are still where they
    # were, and match themselves if compared
    before, box0, marks0 = turned(background, 25.0, 360, 0.0)
    (carried,) = carry_faces([background], box0[None], [(before, box0, marks0)], CFG)
    assert carried is None


def test_the_similarity_compares_only_the_pixels_inside_the_frame():
    rng = np.random.default_rng(5)
    cuts, template = rng.random((6, SIDE * SIDE)) * 255, rng.random(SIDE * SIDE) * 255
    everywhere = np.ones_like(cuts)
    plain = [np.corrcoef(c, template)[0, 1] for c in cuts]
    np.testing.assert_allclose(
        _similarity(cuts, everywhere, template, np.ones_like(template)), plain, atol=1e-6
    )
    inside = (rng.random(cuts.shape) > 0.2).astype(np.float64)  # trial pixels inside the frame
    shown = (rng.random(template.shape) > 0.3).astype(np.float64)  # template pixels inside it
    both = (inside * shown).astype(bool)
    ref = [np.corrcoef(c[m], template[m])[0, 1] for c, m in zip(cuts, both, strict=True)]
    np.testing.assert_allclose(_similarity(cuts, inside, template, shown), ref, atol=1e-6)
    few = np.zeros_like(shown)
    few[: int(SHOWN * len(shown)) - 1] = 1  # fewer than SHOWN of the template's pixels: no similarity
    assert (_similarity(cuts, everywhere, template, few) == -1).all()


@pytest.mark.parametrize(
    ("box", "share"),
    [
        ((10.0, 10.0, 50.0, 30.0), 0.0),  # inside
        ((-20.0, 10.0, 20.0, 30.0), 0.5),  # half past the left edge
        ((90.0, -5.0, 110.0, 15.0), 0.625),  # past the right edge by half, the top by a quarter
        ((-50.0, 10.0, -10.0, 30.0), 1.0),  # wholly outside
    ],
)
def test_past_edge_is_the_share_of_a_box_outside_the_frame(box, share):
    assert past_edge(np.array(box, np.float32), (60, 100)) == pytest.approx(share)
