"""Face alignment: the similarity fit, crops that put the landmarks on the template, real-face crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from pipeline.faces.align import AlignConfig, _grid, align_faces, similarity_transform
from pipeline.faces.detect import detect_faces, load_detector
from pipeline.synth.faces import SOURCE_BOX, SOURCE_LANDMARKS

TEMPLATE = torch.tensor(AlignConfig().template, dtype=torch.float64)  # (5, 2) in a 224 crop


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear part (2, 2) and shift (2,) of a similarity, float64."""
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64) * scale, torch.tensor(
        shift, dtype=torch.float64
    )


def apply(m: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Affine maps (n, 2, 3) applied to points (n, k, 2)."""
    return points @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]


def dots_image(points: np.ndarray, radius: float, size=(600, 800)) -> np.ndarray:
    """(1, H, W, 3) uint8: white discs at `points` on black."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    img = np.zeros((*size, 3), np.uint8)
    for x, y in points:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = 255
    return img[None]


def centroids(crop: torch.Tensor, near: torch.Tensor, reach: float = 12.0) -> torch.Tensor:
    """Intensity centroids of crop (3, S, S) around each of `near` (k, 2)."""
    img = crop[0].double()
    yy, xx = torch.meshgrid(torch.arange(img.shape[0]), torch.arange(img.shape[1]), indexing="ij")
    out = []
    for x, y in near:
        w = img * (((xx - x) ** 2 + (yy - y) ** 2) < reach**2)
        out.append(torch.stack([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()]))
    return torch.stack(out)


def test_similarity_maps_landmarks_onto_the_template():
    rng = np.random.default_rng(0)
    src, maps = [], []
    for _ in range(8):
        linear, shift = similarity(rng.uniform(-1, 1), rng.uniform(0.2, 5), tuple(rng.uniform(0, 1500, 2)))
        src.append(TEMPLATE @ linear.T + shift)  # the template moved into a frame
    src = torch.stack(src)  # (8, 5, 2)
    maps = similarity_transform(src, TEMPLATE)
    assert maps.shape == (8, 2, 3) and maps.dtype == torch.float64
    assert (apply(maps, src) - TEMPLATE).abs().max() < 1e-4
    assert (torch.linalg.det(maps[:, :, :2]) > 0).all()  # rotation and scale, never a reflection


def test_similarity_is_the_least_squares_fit():
    rng = np.random.default_rng(1)
    src = torch.tensor(rng.uniform(0, 300, (4, 5, 2)))
    maps = similarity_transform(src, TEMPLATE)
    for points, m in zip(src.numpy(), maps.numpy(), strict=True):
        # unknowns a, b, tx, ty of [[a, -b, tx], [b, a, ty]], solved directly
        rows = [[x, -y, 1, 0] for x, y in points] + [[y, x, 0, 1] for x, y in points]
        rhs = np.concatenate([TEMPLATE.numpy()[:, 0], TEMPLATE.numpy()[:, 1]])
        a, b, tx, ty = np.linalg.lstsq(np.array(rows), rhs, rcond=None)[0]
        np.testing.assert_allclose(m, [[a, -b, tx], [b, a, ty]], atol=1e-8)
    assert similarity_transform(src.float(), TEMPLATE).dtype == torch.float32


@pytest.mark.parametrize("scale", [0.7, 1.0, 2.0, 3.5])  # 2.0 and 3.5 take the antialiased shrink path
def test_crop_puts_the_marks_on_the_template(scale):
    linear, shift = similarity(0.4, scale, (400.0, 300.0))
    points = (TEMPLATE - 112) @ linear.T + shift  # (5, 2) in the frame
    frames = dots_image(points.numpy(), radius=2.5 * scale)
    crops = align_faces(frames, points[None].numpy(), np.array([True]))
    assert crops.shape == (1, 3, 224, 224) and crops.dtype == torch.uint8
    assert (centroids(crops[0], TEMPLATE) - TEMPLATE).norm(dim=1).max() < 0.5


def test_unscaled_crop_is_the_frame_window_and_faceless_frames_are_zero():
    frames = torch.randint(0, 256, (3, 300, 400, 3), dtype=torch.uint8)
    marks = (TEMPLATE + torch.tensor([100.0, 40.0])).float().expand(3, 5, 2)
    crops = align_faces(frames, marks, np.array([True, False, True]))
    assert torch.equal(crops[0], frames[0, 40:264, 100:324].permute(2, 0, 1))
    assert torch.equal(crops[2], frames[2, 40:264, 100:324].permute(2, 0, 1))
    assert not crops[1].any()
    same = align_faces(frames.numpy(), marks.numpy(), np.array([True, False, True]))  # numpy in, same out
    assert torch.equal(same, crops)


def test_faces_at_the_frame_edge_are_padded_with_zeros():
    frames = torch.full((1, 200, 300, 3), 200, dtype=torch.uint8)
    marks = (TEMPLATE - torch.tensor([60.0, 50.0]))[None]  # the crop's top-left lies outside the frame
    crop = align_faces(frames, marks, np.array([True]))[0]
    assert not crop[:, :40, :50].any()  # outside the frame
    assert (crop[:, 60:, 70:] == 200).all()  # inside it


def test_real_face_crop_has_the_eyes_on_the_template_and_the_whole_face():
    img = astronaut()
    marks = np.array(SOURCE_LANDMARKS, np.float32)[None]
    crop = align_faces(img[None], marks, np.array([True]))  # (1, 3, 224, 224)
    # the synthetic face box, moved into the crop, lies inside it with a margin
    m = similarity_transform(torch.tensor(marks, dtype=torch.float64), TEMPLATE)
    corners = apply(m, torch.tensor([[SOURCE_BOX[:2], SOURCE_BOX[2:]]], dtype=torch.float64))[0]
    assert (corners >= 20).all() and (corners <= 224 - 20).all()
    # the fit puts the eyes near the template (a real face is no exact similarity of it) ...
    mapped = apply(m, torch.tensor(marks, dtype=torch.float64))[0]  # (5, 2) in the crop
    assert (mapped[:2] - TEMPLATE[:2]).norm(dim=1).max() < 6.0
    # ... and the pixels follow: MTCNN on the crop finds the eyes where the transform sent them
    found = detect_faces(crop.permute(0, 2, 3, 1).numpy(), load_detector())[0]
    assert len(found) >= 1
    eyes = torch.tensor(found.landmarks[0, :2], dtype=torch.float64)
    assert (eyes - mapped[:2]).norm(dim=1).max() < 3.0


def test_the_sampling_grid_is_affine_grids():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0)) * 0.4
    for size in (7, 224):
        want = torch.nn.functional.affine_grid(theta, [5, 3, size, size], align_corners=False)
        torch.testing.assert_close(_grid(theta, size), want, rtol=0, atol=1e-5)


def test_crops_hardly_depend_on_how_many_faces_share_a_call():
    # the batch sets the frame window the grid is normalised to: a crop value may move by one level
    img = astronaut()
    source = torch.tensor(SOURCE_LANDMARKS, dtype=torch.float64)  # (5, 2)
    centre = source.mean(dim=0)
    marks = []
    for i, (angle, scale) in enumerate(((0.0, 1.0), (0.3, 0.8), (-0.2, 1.2), (0.1, 0.6))):
        linear, shift = similarity(angle, scale, (10.0 * i, 5.0 * i))
        marks.append(((source - centre) @ linear.T + centre + shift).numpy())  # turned, scaled, moved
    frames, points = np.stack([img] * 4), np.stack(marks).astype(np.float32)  # (4, 5, 2)
    face = np.array([True, True, False, True])
    one = align_faces(frames, points, face, AlignConfig(batch_size=1)).int()
    many = align_faces(frames, points, face, AlignConfig(batch_size=32)).int()
    assert (one - many).abs().max() <= 1
    assert (one != many).float().mean() < 0.01
    assert not one[2].any() and one[[0, 1, 3]].float().mean() > 50  # faces cropped, the faceless one zero
