"""Filling frames without a face: interpolation values, held ends, flags, classes derived again."""

import numpy as np
import polars as pl
import pytest

from model.tasks import AU_NAMES, EXPR_NAMES
from pipeline.fill import FillConfig, fill_predictions, fill_probabilities, fill_values


def test_linear_interpolates_between_face_frames_and_holds_ends():
    values = np.array([[9.0, 9.0], [0.0, 1.0], [9.0, 9.0], [9.0, 9.0], [0.6, -1.0], [9.0, 9.0]])
    face = np.array([False, True, False, False, True, False])
    out, filled = fill_values(values, face, "linear")
    expected = np.array([[0.0, 1.0], [0.0, 1.0], [0.2, 0.333333], [0.4, -0.333333], [0.6, -1.0], [0.6, -1.0]])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(filled, ~face)
    assert values[0, 0] == 9.0  # input untouched


def test_nearest_copies_nearest_face_frame():
    values = np.array([5.0, 1.0, 5.0, 5.0, 5.0, 2.0, 5.0])
    face = np.array([False, True, False, False, False, True, False])
    out, filled = fill_values(values, face, "nearest")
    # frame 3 is equally far from 1 and 5: the earlier face frame wins
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert filled.tolist() == [True, False, True, True, True, False, True]


def test_all_faces_is_unchanged():
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    out, filled = fill_values(values, np.ones(3, bool))
    np.testing.assert_array_equal(out, values)
    assert not filled.any()


@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_no_face_at_all_gets_neutral_default(method):
    out, filled = fill_values(np.full((4, 2), 0.7), np.zeros(4, bool), method)
    np.testing.assert_array_equal(out, np.zeros((4, 2)))
    assert filled.all()


def test_unknown_method_and_bad_mask_raise():
    with pytest.raises(ValueError, match="fill method"):
        fill_values(np.zeros((2, 1)), np.ones(2, bool), "cubic")
    with pytest.raises(ValueError, match="rows"):
        fill_values(np.zeros((2, 1)), np.ones(3, bool))


def test_multiclass_classes_derived_from_filled_probabilities():
    probs = np.array([[0.9, 0.1], [0.0, 0.0], [0.1, 0.9]])
    face = np.array([True, False, True])
    p, classes, filled = fill_probabilities(probs, face, "multiclass")
    np.testing.assert_allclose(p[1], [0.5, 0.5])
    assert classes.tolist() == [0, 0, 1] and filled.tolist() == [False, True, False]
    p, classes, _ = fill_probabilities(probs, np.zeros(3, bool), "multiclass")
    assert not p.any() and classes.tolist() == [0, 0, 0]  # no face at all: class 0 (Neutral)


def test_multilabel_classes_use_thresholds():
    probs = np.array([[0.8, 0.2], [0.0, 0.0], [0.4, 0.6]])
    _, classes, _ = fill_probabilities(
        probs, np.array([True, False, True]), "multilabel", thresholds=[0.5, 0.35]
    )
    assert classes.tolist() == [[1, 0], [1, 1], [0, 1]]  # row 1: (0.6, 0.4)


def _table(task, face_by_subject):
    rows = []
    for subject, faces in face_by_subject.items():
        for i, face in enumerate(faces):
            rows.append({"video": subject, "subject": subject, "frame": i + 1, "face": face, "filled": False})
    table = pl.DataFrame(rows).with_columns(pl.col("frame").cast(pl.Int32))
    n = len(table)
    if task == "va":
        return table.with_columns(pl.Series("valence", np.linspace(-1, 1, n), dtype=pl.Float32),
                                  pl.Series("arousal", np.linspace(1, -1, n), dtype=pl.Float32))  # fmt: skip
    if task == "expr":
        probs = np.eye(8, dtype=np.float32)[np.arange(n) % 8]
        cols = [pl.Series(f"p_{c}", probs[:, k]) for k, c in enumerate(EXPR_NAMES)]
        return table.with_columns(*cols, pl.Series("expression", np.arange(n) % 8, dtype=pl.Int8))
    probs = np.full((n, 12), 0.9, dtype=np.float32)
    cols = [pl.Series(f"p_{c}", probs[:, k]) for k, c in enumerate(AU_NAMES)]
    return table.with_columns(*cols, *[pl.Series(c, np.ones(n), dtype=pl.Int8) for c in AU_NAMES])


def test_fill_predictions_va_per_subject():
    table = _table("va", {"a": [True, False, True], "b": [False, False]})
    out = fill_predictions(table, "va")
    a = out.filter(pl.col("subject") == "a")
    assert a["valence"][1] == pytest.approx((a["valence"][0] + a["valence"][2]) / 2)
    assert out.filter(pl.col("subject") == "b")["valence"].to_list() == [0.0, 0.0]
    assert out["filled"].to_list() == [False, True, False, True, True]
    assert out.schema == table.schema


def test_fill_predictions_expr_and_au_classes():
    table = _table("expr", {"a": [True, False, True]})  # frames 1, 3 one-hot classes 0 and 2
    out = fill_predictions(table, "expr", FillConfig(method="nearest"))
    assert out["expression"].to_list() == [0, 0, 2]
    assert out["p_Neutral"][1] == 1.0
    au = _table("au", {"a": [False, False]})
    out = fill_predictions(au, "au")
    assert out.select(AU_NAMES).to_numpy().sum() == 0  # no face at all: every AU absent
    assert out["filled"].all()
