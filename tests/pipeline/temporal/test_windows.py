"""Windows over the feature cache: coverage, shapes, masks, padding, no subject mixing, balanced draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.temporal.windows import (
    ShardReader,
    WindowConfig,
    WindowDataset,
    capped_weights,
    class_frequencies,
    clip_rows,
    hold_faces,
    nearest_face,
    plan_windows,
    systematic_draw,
    window_loader,
)
from tests.helpers import SHAPES, FakeCache, labels_for


def va_labels(n: int, subject_id: int = 0):
    rows = np.arange(n, dtype=np.float32)
    return labels_for(np.stack([rows / 1000 + subject_id, -rows / 1000], axis=1))


@pytest.mark.parametrize(
    "n,seq_len,stride", [(100, 32, 32), (100, 32, 16), (20, 32, 16), (32, 32, 8), (1, 4, 4)]
)
def test_plan_windows_covers_every_row_once_per_start(n, seq_len, stride):
    spans = plan_windows(n, seq_len, stride)
    covered = np.zeros(n, int)
    for start, stop in spans:
        assert 0 < stop - start <= seq_len
        covered[start:stop] += 1
    assert (covered > 0).all()
    starts = [s for s, _ in spans]
    assert starts == list(range(0, stride * len(spans), stride))
    assert spans[-1][1] == n
    if len(spans) > 1:  # the last window adds rows the one before did not reach
        assert spans[-2][1] < n


def test_plan_windows_of_empty_subject_and_bad_settings():
    assert plan_windows(0, 32, 16) == []
    with pytest.raises(ValueError):
        plan_windows(10, 0, 1)


def test_items_have_window_shapes_labels_and_padding():
    cache = FakeCache({"a": 40})
    cfg = WindowConfig(seq_len=16, stride=16, shuffle=False)
    ds = WindowDataset(cache, {"a": va_labels(40)}, "va", cfg)
    items = list(ds)
    assert len(items) == len(ds) == 3
    maps, target, mask = items[-1]  # rows 32..39, then padding
    assert [m.shape for m in maps] == [(16, *s) for s in SHAPES]
    assert all(m.dtype == torch.float32 for m in maps)
    assert target.shape == (16, 2) and mask.shape == (16,) and mask.dtype == torch.bool
    assert mask[:8].all() and not mask[8:].any()
    np.testing.assert_allclose(maps[0][:8, 0, 0, 0].numpy(), np.arange(32, 40))
    np.testing.assert_allclose(target[:8, 0].numpy(), np.arange(32, 40) / 1000, rtol=1e-6)


def test_mask_drops_invalid_labels_and_no_face_frames_unless_included():
    face = np.ones(20, bool)
    face[3] = False
    valid = np.ones(20, bool)
    valid[5] = False
    cache = FakeCache({"a": 20}, faces={"a": face})
    labels = {"a": labels_for(np.zeros((20, 2)), valid)}
    mask = next(iter(WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=8, shuffle=False))))[2]
    assert mask.tolist() == [True] * 3 + [False, True, False, True, True]
    cfg = WindowConfig(seq_len=8, stride=8, shuffle=False, include_no_face=True)
    mask = next(iter(WindowDataset(cache, labels, "va", cfg)))[2]
    assert mask.tolist() == [True] * 5 + [False, True, True]


def test_frames_past_the_annotation_are_invalid_and_unlabelled_windows_skipped():
    cache = FakeCache({"a": 30})
    valid = np.ones(20, bool)
    valid[:10] = False  # first window has no valid label at all
    ds = WindowDataset(
        cache, {"a": labels_for(np.zeros((20, 2)), valid)}, "va", WindowConfig(10, 10, shuffle=False)
    )
    starts = [w.start for w in ds.windows]
    assert starts == [10]  # rows 20..29 lie past the 20 annotation lines


def test_windows_never_mix_subjects_and_every_window_comes_once_per_epoch():
    frames = {"a": 50, "b_left": 37, "b_right": 37}
    cache = FakeCache(frames)
    labels = {s: va_labels(n, i) for i, (s, n) in enumerate(frames.items())}
    ds = WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=4, seed=3, block_rows=16))
    seen = []
    for maps, target, mask in ds:
        code = maps[0][:, 0, 0, 0].numpy()
        assert len(set((code // 1000).astype(int))) == 1  # one subject per window, padding included
        subject = int(code[0] // 1000)
        np.testing.assert_allclose(target[mask][:, 0].numpy() // 1, subject)
        seen.append((subject, int(code[0] % 1000)))
    expected = sorted((i, s) for i, (_, n) in enumerate(frames.items()) for s, _ in plan_windows(n, 8, 4))
    assert sorted(seen) == expected


def test_shuffled_order_depends_on_seed_and_epoch_only():
    cache = FakeCache({"a": 300, "b": 300})
    labels = {"a": va_labels(300), "b": va_labels(300, 1)}
    ds = WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=8, seed=1))
    first = ds.order()
    assert first == WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=8, seed=1)).order()
    assert sorted(first) == list(range(len(ds))) and first != sorted(first)
    ds.set_epoch(1)
    assert ds.order() != first


def test_reads_go_by_row_blocks_through_the_lru():
    cache = FakeCache({"a": 256})
    cfg = WindowConfig(seq_len=16, stride=4, shuffle=False, block_rows=64, cached_blocks=2)
    ds = WindowDataset(cache, {"a": va_labels(256)}, "va", cfg)
    assert len(list(ds)) == len(ds)
    assert cache.read_rows == 256  # overlapping windows read each row once
    reader = ShardReader(cache, block_rows=64, cached_blocks=1)
    index, face, maps = reader.rows("a", np.array([70, 3, 71]))
    assert index.tolist() == [70, 3, 71] and reader.reads == 2
    assert maps[1][:, 0, 0, 0].tolist() == [70, 3, 71]


def test_loader_batches_windows():
    cache = FakeCache({"a": 64, "b": 20})
    labels = {"a": va_labels(64), "b": va_labels(20, 1)}
    ds = WindowDataset(cache, labels, "va", WindowConfig(seq_len=16, stride=16))
    batches = list(window_loader(ds, batch_size=3))
    maps, target, mask = batches[0]
    assert isinstance(maps, tuple) and [m.shape for m in maps] == [(3, 16, *s) for s in SHAPES]
    assert target.shape == (3, 16, 2) and mask.shape == (3, 16)
    assert sum(len(b[1]) for b in batches) == len(ds) == 6


def test_balanced_draw_favours_windows_with_the_rarest_class():
    n = 400
    values = np.zeros((n, 12), np.float32)
    values[:, 0] = 1  # AU1 everywhere
    values[300:310, 5] = 1  # AU10 in one stretch only
    cache = FakeCache({"a": n})
    labels = {"a": labels_for(values)}
    freq = class_frequencies("au", values, np.ones(n, bool))
    assert freq[5] == pytest.approx(10 / n) and freq[0] == 1.0
    cfg = WindowConfig(seq_len=10, stride=10, balanced=True, seed=0)
    ds = WindowDataset(cache, labels, "au", cfg)
    rare = [i for i, w in enumerate(ds.windows) if w.start == 300]
    counts = np.bincount(ds.order(), minlength=len(ds))
    assert counts[rare[0]] > 5 * counts.mean()  # drawn far more often than once per epoch
    plain = WindowDataset(cache, labels, "au", WindowConfig(seq_len=10, stride=10))
    assert np.bincount(plain.order(), minlength=len(plain)).max() == 1


def test_expr_targets_are_class_indices():
    values = np.repeat(np.arange(8), 4)[:, None].astype(np.float32)
    ds = WindowDataset(
        FakeCache({"a": 32}), {"a": labels_for(values)}, "expr", WindowConfig(32, 32, shuffle=False)
    )
    _, target, _ = next(iter(ds))
    assert target.shape == (32, 1) and target[:, 0].tolist() == values[:, 0].tolist()


def test_clip_task_gives_one_window_per_clip():
    assert clip_rows(5, 8).tolist() == list(range(5))
    rows = clip_rows(100, 8)
    assert len(rows) == 8 and rows[0] == 0 and rows[-1] == 99 and (np.diff(rows) > 0).all()
    cache = FakeCache({"c1": 100, "c2": 5})
    labels = {"c1": labels_for(np.full((1, 6), 0.2)), "c2": labels_for(np.full((1, 6), 0.7))}
    ds = WindowDataset(cache, labels, "emi", WindowConfig(seq_len=8, stride=8, shuffle=False))
    maps, target, mask = next(iter(window_loader(ds, batch_size=2)))
    assert [m.shape for m in maps] == [(2, 8, *s) for s in SHAPES]
    assert target.shape == (2, 6) and mask.shape == (2, 8)
    np.testing.assert_allclose(target[:, 0].numpy(), [0.2, 0.7], rtol=1e-6)
    np.testing.assert_allclose(maps[0][0, :, 0, 0, 0].numpy(), rows)  # sampled across the whole clip
    assert mask[0].all() and mask[1].tolist() == [True] * 5 + [False] * 3


def test_nearest_face_holds_the_closest_face_frame_the_earlier_on_a_tie():
    face = np.array([0, 1, 0, 0, 0, 1, 1, 0, 0], bool)
    assert nearest_face(face).tolist() == [1, 1, 1, 1, 5, 5, 6, 6, 6]
    maps = (np.arange(9, dtype=np.float32)[:, None, None, None],)
    assert hold_faces(maps, face)[0][:, 0, 0, 0].tolist() == [1, 1, 1, 1, 5, 5, 6, 6, 6]
    assert hold_faces(maps, np.zeros(9, bool))[0] is maps[0]  # no face at all: nothing to hold


class ZeroFaceless(FakeCache):
    """Like the extraction writes them: frames without a face have all-zero maps (row values are >= 1)."""

    def read(self, subject, start=0, stop=None, maps=True):
        out = super().read(subject, start, stop, maps)
        out.maps = tuple(np.where(out.face[:, None, None, None], m + 1, 0).astype(m.dtype) for m in out.maps)
        return out


def test_training_windows_hold_face_maps_over_faceless_frames_and_skip_windows_without_a_face():
    face = np.ones(48, bool)
    face[10:30] = False  # a faceless stretch longer than a window
    cache = ZeroFaceless({"a": 48}, faces={"a": face})
    labels = {"a": va_labels(48)}
    held = WindowDataset(cache, labels, "va", WindowConfig(seq_len=8, stride=4, shuffle=False))
    assert [w.start for w in held.windows] == [0, 4, 8, 24, 28, 32, 36, 40]  # 12..23: no face, left out
    for (maps, _, mask), w in zip(held, held.windows, strict=True):
        per_frame = maps[0].flatten(1).abs().sum(1)  # (T,)
        assert (per_frame > 0).all()  # no all-zero frame reaches the tail's BatchNorm
        assert not mask[~torch.from_numpy(face[w.start : w.stop])].any()  # nor the loss
    window = held.window(held.windows[2])[0][0][:, 0, 0, 0]  # rows 8..15: 8, 9 with a face
    assert window.tolist() == [9, 10, 10, 10, 10, 10, 10, 10]  # row 9's maps (stored as 9 + 1) held
    zeros = WindowDataset(
        cache, labels, "va", WindowConfig(seq_len=8, stride=4, shuffle=False, no_face="zeros")
    )
    assert zeros.window(zeros.windows[2])[0][0][2:, 0, 0, 0].abs().sum() == 0


def test_balanced_draws_cover_every_window_in_proportion_and_cap_the_rarest():
    rng = np.random.default_rng(0)
    equal = systematic_draw(np.ones(50), rng)
    assert sorted(equal.tolist()) == list(range(50))  # equal weights: every window once, none left out
    weights = np.array([1.0, 1.0, 4.0, 2.0])
    counts = np.bincount(systematic_draw(weights, rng), minlength=4)
    expected = 4 * weights / weights.sum()
    assert (np.abs(counts - expected) < 1).all()  # floor or ceil of the expected count
    capped = capped_weights(np.array([1.0, 1.0, 1.0, 1000.0]), 10.0)
    assert capped.tolist() == [1.0, 1.0, 1.0, 10.0]  # a class seen in a few frames: at most 10x the median
