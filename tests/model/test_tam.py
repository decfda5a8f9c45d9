"""The 3D mixer and a TAM level: tubelets, token and channel mixing, the kept time axis, padding."""

import pytest
import torch

from model.mixer import MixerBlock
from model.tam import LevelConfig, MultiScaleTAM, TAMLevel, pad_frames

SHAPE = (8, 4, 4)  # a small (C, H, W) map


def level(num_frames=8, **kw):
    torch.manual_seed(0)
    cfg = LevelConfig(source=0, patch=2, time_patch=4, dim=16, token_mlp_dim=12, channel_mlp_dim=24, **kw)
    return TAMLevel(cfg, SHAPE, num_frames).eval()


def test_mixer_block_names_and_mixing_axes():
    block = MixerBlock(num_tokens=5, dim=7, token_mlp_dim=3, channel_mlp_dim=11)
    assert block.token_mixing.fc1.in_features == 5 and block.token_mixing.fc1.out_features == 3
    assert block.channel_mixing.fc1.in_features == 7 and block.channel_mixing.fc1.out_features == 11
    x = torch.randn(2, 5, 7)
    y = block(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 4] += torch.randn(7)  # change one token (not by a constant: LayerNorm removes that)
    assert not torch.allclose(block(x2)[:, 0], y[:, 0])


def test_tubelets_cover_time_patch_by_patch_cells():
    lvl = level()
    x = torch.arange(8 * 8 * 4 * 4, dtype=torch.float32).reshape(1, 8, *SHAPE)
    tubes = lvl.tubelets(x)  # (1, N, tp * C * p * p)
    assert lvl.num_tokens == 2 * 4 and tubes.shape == (1, 8, 4 * 8 * 2 * 2)
    # token 5 = time patch 1, grid cell (0, 1): frames 4..7, rows 0..1, columns 2..3
    expected = x[0, 4:8, :, 0:2, 2:4].reshape(-1)
    torch.testing.assert_close(tubes[0, 5], expected)


def test_level_keeps_the_time_axis():
    lvl = level()
    x = torch.randn(2, 8, *SHAPE)
    with torch.no_grad():
        out = lvl(x)
    assert out.shape == (2, 8, 16)
    # frames inside one time patch get their own outputs (learned per-offset up-sampling)
    assert not torch.allclose(out[:, 0], out[:, 1])
    # token mixing carries information across time: a change in the first frame reaches the last one
    x2 = x.clone()
    x2[:, 0] += torch.randn(SHAPE)
    with torch.no_grad():
        assert not torch.allclose(lvl(x2)[:, -1], out[:, -1])


def test_short_and_uneven_sequences_are_padded():
    lvl = level(num_frames=8)
    x = torch.randn(1, 6, *SHAPE)
    with torch.no_grad():
        out = lvl(x)
        same = lvl(pad_frames(x, 8))[:, :6]
    assert out.shape == (1, 6, 16)
    torch.testing.assert_close(out, same)
    uneven = level(num_frames=7)  # rounded up to two time patches of 4
    assert uneven.padded_frames == 8 and uneven.num_tokens == 8
    with torch.no_grad():
        assert uneven(torch.randn(1, 7, *SHAPE)).shape == (1, 7, 16)


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="at most 8 frames"):
        level(num_frames=8)(torch.randn(1, 9, *SHAPE))


def test_pad_frames_repeats_the_last_frame():
    x = torch.arange(6.0).reshape(1, 3, 2)
    padded = pad_frames(x, 5)
    assert padded.shape == (1, 5, 2)
    torch.testing.assert_close(padded[0, 3:], x[0, 2:].expand(2, 2))


def test_patch_must_divide_the_map():
    with pytest.raises(ValueError, match="does not divide"):
        TAMLevel(LevelConfig(source=0, patch=3), SHAPE, 8)


def test_multiscale_concatenates_levels():
    shapes = ((4, 8, 8), (6, 4, 4), (10, 2, 2))
    levels = (LevelConfig(0, patch=4, dim=8), LevelConfig(2, patch=1, dim=12))
    tam = MultiScaleTAM(levels, shapes, num_frames=4).eval()
    maps = tuple(torch.randn(2, 4, *s) for s in shapes)
    with torch.no_grad():
        out = tam(maps)
    assert tam.out_dim == 20 and out.shape == (2, 4, 20)
    assert tam.sources == {0, 2}


def test_position_read_sees_where_a_change_is():
    torch.manual_seed(0)
    lvl = level(pool="position")
    # one narrowed vector per place, read by one linear map over all places
    assert lvl.place_read.in_features == lvl.spatial_tokens * lvl.narrow.out_features
    x = torch.randn(2, 8, *SHAPE)
    out = lvl(x)
    assert out.shape == (2, 8, 16)
    out.sum().backward()
    assert lvl.place_read.weight.grad is not None and lvl.narrow.weight.grad.abs().sum() > 0
    # the same tokens at other places give other outputs (a mean over places would not tell)
    tokens = torch.randn(1, lvl.num_tokens, 16)
    swapped = tokens.reshape(1, 2, 4, 16).flip(2).reshape(1, lvl.num_tokens, 16)
    read = lambda t: lvl.place_read(lvl.narrow(t.reshape(1, 2, 4, 16)).flatten(2))  # noqa: E731
    assert not torch.allclose(read(tokens), read(swapped))
    assert torch.allclose(tokens.reshape(1, 2, 4, 16).mean(2), swapped.reshape(1, 2, 4, 16).mean(2))


def test_unknown_pool_is_refused():
    with pytest.raises(ValueError, match="pool"):
        level(pool="max")
