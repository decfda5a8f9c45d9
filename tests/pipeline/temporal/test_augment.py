"""Window augmentation of a crop cache's training windows: shapes kept, one draw per window (every frame of a
window moved and coloured alike, windows drawn apart), the identity where every factor is neutral."""

from __future__ import annotations

import pytest
import torch

from pipeline.temporal.augment import (
    AugmentConfig,
    apply_params,
    augment_config,
    augment_windows,
    draw_params,
)

NEUTRAL = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]])  # no flip, angle, zoom, shift, colour


def windows(b=3, t=4, size=24, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (b, 1, 3, size, size), generator=g, dtype=torch.uint8)
    return frame.expand(b, t, 3, size, size).contiguous()  # every frame of a window the same image


def test_shapes_are_kept_and_values_stay_pixel_values():
    crops = windows()
    out = augment_windows(crops, AugmentConfig(), torch.Generator().manual_seed(1))
    assert out.shape == crops.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255


def test_every_frame_of_a_window_gets_the_same_draw_and_windows_differ():
    crops = windows()
    out = augment_windows(crops, AugmentConfig(), torch.Generator().manual_seed(1))
    for k in range(1, crops.shape[1]):  # same input frames -> identical outputs within a window
        torch.testing.assert_close(out[:, k], out[:, 0])
    assert not torch.allclose(out[:, 0].float(), crops[:, 0].float(), atol=1.0)  # something was done
    params = draw_params(64, AugmentConfig(), torch.Generator().manual_seed(2))
    assert params.shape == (64, 8) and params[:, 0].abs().eq(1).all()
    assert 0.2 < (params[:, 0] < 0).float().mean() < 0.8  # flips about half the windows
    assert params[:, 1].abs().max() <= torch.deg2rad(torch.tensor(10.0)) + 1e-6
    assert ((params[:, 2:3] - 1).abs() <= 0.1 + 1e-6).all() and (
        (params[:, 5:] - 1).abs() <= 0.2 + 1e-6
    ).all()


def test_neutral_parameters_leave_the_image_and_a_flip_mirrors_it():
    image = windows(b=1, t=1)[0]  # (1, 3, S, S)
    torch.testing.assert_close(apply_params(image, NEUTRAL), image.float(), atol=0.05, rtol=0)
    flip = NEUTRAL.clone()
    flip[0, 0] = -1
    torch.testing.assert_close(apply_params(image, flip), image.float().flip(-1), atol=0.05, rtol=0)


def test_the_setting_names():
    assert augment_config("none") is None and augment_config("standard") == AugmentConfig()
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_config("heavy")
