"""The Predictor: per-frame outputs with overlapping windows averaged, activation, checkpoint settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.temporal.predictor import Predictor, activate_array, thresholds_of, window_starts
from tests.helpers import FakeCache


class PositionEcho(nn.Module):
    """Outputs the map value of each frame plus its position in the window: tells windows apart."""

    def forward(self, maps):
        value = maps[0][:, :, 0, 0, 0]  # (B, T)
        return (value + torch.arange(value.shape[1], dtype=value.dtype))[..., None]  # (B, T, 1)


@pytest.mark.parametrize("n,seq_len,stride", [(50, 8, 4), (8, 8, 4), (5, 8, 2), (33, 16, 16)])
def test_raw_outputs_average_every_window_that_holds_a_frame(n, seq_len, stride):
    cache = FakeCache({"a": n})
    predictor = Predictor(PositionEcho(), "va", seq_len=seq_len, stride=stride, batch_size=3)
    out = predictor.raw(predictor.reader(cache), "a").values
    assert out.shape == (n, 1)
    expected = np.zeros(n)
    counts = np.zeros(n)
    starts = window_starts(n, seq_len, stride)
    assert starts[-1] + seq_len >= n and (n < seq_len or starts[-1] + seq_len == n)  # full windows
    for s in starts:
        rows = np.arange(s, min(s + seq_len, n))
        expected[rows] += rows + np.arange(len(rows))
        counts[rows] += 1
    np.testing.assert_allclose(out[:, 0], expected / counts, rtol=1e-6)
    assert (counts >= 1).all()


def test_activate_follows_the_task_table():
    x = np.array([[0.0, 2.0]])
    np.testing.assert_allclose(activate_array("va", x), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(activate_array("au", x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(activate_array("expr", x).sum(axis=1), 1.0, rtol=1e-6)


def test_thresholds_come_from_checkpoint_metadata():
    assert thresholds_of("au", {}).tolist() == [0.5] * 12
    assert thresholds_of("ah", {"thresholds": [0.3]}).tolist() == [0.3]
    assert thresholds_of("au", {"thresholds": [0.1] * 12}).tolist() == [0.1] * 12
    with pytest.raises(ValueError, match="12"):
        thresholds_of("au", {"thresholds": [0.1] * 3})


def test_from_checkpoint_reads_window_stride_and_thresholds_that_checkpoint_meta_writes():
    meta = {"task": "au", "seq_len": 8, "stride": 4, "thresholds": [0.3], "epoch": 3}
    predictor = Predictor.from_checkpoint(PositionEcho(), meta, batch_size=2)
    assert (predictor.task, predictor.seq_len, predictor.stride, predictor.batch_size) == ("au", 8, 4, 2)
    assert predictor.decision_thresholds.tolist() == [0.3] * 12
    assert Predictor.from_checkpoint(PositionEcho(), meta, stride=2).stride == 2  # --stride overrides
    assert (
        Predictor.from_checkpoint(PositionEcho(), {"task": "va", "seq_len": 9}).stride == 4
    )  # half a window
    assert Predictor(PositionEcho(), "au", 8, 4).decision_thresholds.tolist() == [0.5] * 12
    again = Predictor.from_checkpoint(PositionEcho(), predictor.checkpoint_meta())
    assert again.checkpoint_meta() == predictor.checkpoint_meta()
    assert predictor.checkpoint_meta() == {"task": "au", "seq_len": 8, "stride": 4, "thresholds": [0.3] * 12,
                                           "no_face": "zeros", "include_no_face": False}  # fmt: skip
    assert predictor.no_face == "zeros"  # a checkpoint that records no treatment was trained on zeros
    held = Predictor.from_checkpoint(PositionEcho(), {**meta, "no_face": "hold", "include_no_face": True})
    assert (held.no_face, held.include_no_face) == ("hold", True)
    with pytest.raises(ValueError, match="stride"):
        Predictor.from_checkpoint(PositionEcho(), meta, stride=-1)


def test_clip_task_predicts_one_row_from_a_window_across_the_clip():
    class MeanOfValid(nn.Module):  # a clip model: mean map value of the valid frames, (B, 1)
        def forward(self, maps, mask):
            value = maps[0][:, :, 0, 0, 0].float()  # (B, T)
            return ((value * mask).sum(1) / mask.sum(1))[:, None]

    cache = FakeCache({"a": 5})
    predictor = Predictor(MeanOfValid(), "emi", seq_len=8, stride=4)
    out = predictor.raw(predictor.reader(cache), "a")
    assert out.values.shape == (1, 1) and out.values[0, 0] == pytest.approx(2.0)  # rows 0..4
    assert out.decode_index.tolist() == [0, 1, 2, 3, 4] and out.face.all()
    np.testing.assert_allclose(predictor.predict(predictor.reader(cache), "a").values, 1 / (1 + np.exp(-2.0)))


class Mixing(nn.Module):
    """Every frame's output mixes the whole window, as token mixing does: frame value + window mean."""

    def forward(self, maps):
        value = maps[0][:, :, 0, 0, 0].float()  # (B, T)
        return (value + value.mean(1, keepdim=True))[..., None]  # (B, T, 1)


class Junk(FakeCache):
    """Faceless frames hold large values in the cache instead of the zeros extraction writes."""

    def read(self, subject, start=0, stop=None, maps=True):
        out = super().read(subject, start, stop, maps)
        out.maps = tuple(np.where(out.face[:, None, None, None], m, 500).astype(m.dtype) for m in out.maps)
        return out


def test_what_faceless_frames_hold_in_the_cache_does_not_reach_their_neighbours():
    face = np.ones(40, bool)
    face[12:20] = False
    zeros, junk = FakeCache({"a": 40}, faces={"a": face}), Junk({"a": 40}, faces={"a": face})

    def outputs(cache, no_face):
        predictor = Predictor(Mixing(), "va", seq_len=8, stride=4, no_face=no_face)
        return predictor.raw(predictor.reader(cache), "a").values[:, 0]

    held, held_junk = outputs(zeros, "hold"), outputs(junk, "hold")
    np.testing.assert_allclose(held[face], held_junk[face])  # faceless content never reaches a face frame
    plain, plain_junk = outputs(zeros, "zeros"), outputs(junk, "zeros")
    assert not np.allclose(plain[face], plain_junk[face])  # without the treatment it does
