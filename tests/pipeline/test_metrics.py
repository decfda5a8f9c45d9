"""Official metrics against independent references (scikit-learn, SciPy, a hand-computed CCC) and their
defined degenerate cases."""

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from model.tasks import AU_NAMES, EMI_NAMES, EXPR_NAMES
from pipeline.metrics import (
    MetricError,
    ah_metric,
    au_metric,
    ccc,
    compute_metric,
    emi_metric,
    expr_metric,
    f1_binary,
    pearson,
    tune_thresholds,
    va_metric,
)

TOL = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_ccc_hand_computed():
    # x mean 2.5, var 1.25; y mean 3, var 1.5; cov (pop) 1.25 -> 2 * 1.25 / (1.25 + 1.5 + 0.25) = 5 / 6
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 4.0, 4.0])
    assert ccc(x, y) == pytest.approx(5 / 6, abs=TOL)
    assert ccc(x, x) == pytest.approx(1.0, abs=TOL)
    assert ccc(x, -x) == pytest.approx(-2 * 1.25 / (2.5 + 25.0), abs=TOL)


def test_ccc_uses_population_moments(rng):
    x, y = rng.normal(size=7), rng.normal(size=7)
    cov = np.cov(x, y, ddof=0)[0, 1]
    expected = 2 * cov / (np.var(x) + np.var(y) + (x.mean() - y.mean()) ** 2)
    assert ccc(x, y) == pytest.approx(expected, abs=TOL)


def test_ccc_degenerate_cases():
    labels = np.array([0.1, -0.3, 0.5, 0.2])
    assert ccc(np.full(4, 0.4), labels) == 0.0  # constant prediction: covariance 0
    assert ccc(np.full(3, 0.2), np.full(3, 0.2)) == 1.0  # both constant and equal
    assert ccc(np.full(3, 0.2), np.full(3, 0.5)) == 0.0  # both constant, different
    assert ccc([0.3], [0.3]) == 1.0 and ccc([0.3], [0.1]) == 0.0  # one frame
    with pytest.raises(MetricError, match="no valid frames"):
        ccc([], [])


def test_pearson_matches_scipy(rng):
    for _ in range(5):
        x, y = rng.normal(size=50), rng.normal(size=50) + 0.3 * np.arange(50) / 50
        assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic, abs=TOL)


def test_pearson_zero_variance_is_zero():
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0
    assert pearson(np.arange(5.0), np.full(5, 2.0)) == 0.0


def test_au_metric_matches_sklearn_binary_f1(rng):
    labels = (rng.random((300, 12)) < 0.3).astype(float)
    pred = (rng.random((300, 12)) < 0.4).astype(float)
    mask = rng.random(300) < 0.8
    result = au_metric(pred, labels, mask)
    per_au = [f1_score(labels[mask, k], pred[mask, k], zero_division=0) for k in range(12)]
    assert list(result.parts) == list(AU_NAMES)
    np.testing.assert_allclose(list(result.parts.values()), per_au, atol=TOL)
    assert result.value == pytest.approx(np.mean(per_au), abs=TOL)
    assert result.count == mask.sum()


def test_expr_metric_matches_sklearn_macro_f1(rng):
    labels = rng.integers(0, 8, 400)
    pred = np.where(rng.random(400) < 0.5, labels, rng.integers(0, 8, 400))
    mask = rng.random(400) < 0.9
    result = expr_metric(pred, labels, mask)
    expected = f1_score(labels[mask], pred[mask], average="macro")
    assert result.value == pytest.approx(expected, abs=TOL)
    per_class = f1_score(labels[mask], pred[mask], labels=range(8), average=None)
    np.testing.assert_allclose([result.parts[n] for n in EXPR_NAMES], per_class, atol=TOL)


def test_expr_absent_class_counts_as_zero_over_all_8():
    labels = np.array([0, 1, 2, 1, 0])  # classes 3..7 never present, nor predicted
    pred = np.array([0, 1, 2, 2, 0])
    result = expr_metric(pred, labels)
    reference = f1_score(labels, pred, labels=range(8), average="macro", zero_division=0)
    assert result.value == pytest.approx(reference, abs=TOL)
    assert result.parts["Fear"] == 0.0
    assert result.value == pytest.approx(sum(result.parts.values()) / 8, abs=TOL)


def test_f1_class_never_positive_is_zero():
    assert f1_binary(np.zeros(4), np.zeros(4)) == 0.0
    assert f1_binary(np.ones(4), np.zeros(4)) == 0.0
    assert f1_binary([1, 0], [1, 0]) == 1.0


@pytest.mark.parametrize("average", ["macro", "binary"])
def test_ah_metric_matches_sklearn(rng, average):
    labels = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, labels, 1 - labels)
    result = ah_metric(pred, labels, average=average)
    assert result.value == pytest.approx(f1_score(labels, pred, average=average), abs=TOL)
    assert result.parts["present"] == pytest.approx(f1_score(labels, pred), abs=TOL)


def test_va_metric_is_mean_of_two_cccs(rng):
    labels = rng.uniform(-1, 1, (100, 2))
    pred = np.clip(labels + rng.normal(0, 0.3, (100, 2)), -1, 1)
    mask = np.ones(100, bool)
    mask[:10] = False
    result = va_metric(pred, labels, mask)
    v, a = ccc(pred[10:, 0], labels[10:, 0]), ccc(pred[10:, 1], labels[10:, 1])
    assert result.parts == pytest.approx({"valence": v, "arousal": a}, abs=TOL)
    assert result.value == pytest.approx((v + a) / 2, abs=TOL)
    assert result.count == 90


def test_emi_metric_is_mean_pearson(rng):
    labels = rng.random((40, 6))
    pred = np.clip(labels + rng.normal(0, 0.2, (40, 6)), 0, 1)
    result = emi_metric(pred, labels)
    rs = [pearsonr(pred[:, k], labels[:, k]).statistic for k in range(6)]
    assert list(result.parts) == list(EMI_NAMES)
    assert result.value == pytest.approx(np.mean(rs), abs=TOL)


def test_invalid_frames_are_excluded():
    labels = np.array([[0.5, 0.5], [-0.5, -0.5], [-5.0, -5.0]])
    pred = np.array([[0.5, 0.5], [-0.5, -0.5], [1.0, 1.0]])
    assert va_metric(pred, labels, np.array([True, True, False])).value == pytest.approx(1.0)
    assert va_metric(pred, labels).value < 1.0


def test_no_valid_frames_raises():
    with pytest.raises(MetricError, match="no valid frames"):
        compute_metric("au", np.zeros((3, 12)), np.zeros((3, 12)), np.zeros(3, bool))


def test_nan_on_valid_frame_raises():
    pred = np.array([[0.1, np.nan], [0.2, 0.3]])
    with pytest.raises(MetricError, match="NaN"):
        va_metric(pred, np.zeros((2, 2)))
    assert va_metric(pred, np.zeros((2, 2)), np.array([False, True])).count == 1


def test_compute_metric_dispatches_every_task(rng):
    shapes = {"va": (10, 2), "au": (10, 12), "expr": (10,), "ah": (10,), "emi": (10, 6)}
    for task, shape in shapes.items():
        labels = rng.permutation(np.arange(10) % (8 if task == "expr" else 2)).astype(float)
        labels = labels if len(shape) == 1 else np.tile(labels[:, None], (1, shape[1]))
        result = compute_metric(task, labels, labels)
        assert result.task == task and result.value == pytest.approx(1.0), task


def test_tune_thresholds_beats_every_fixed_threshold(rng):
    labels = (rng.random((500, 3)) < [0.1, 0.3, 0.6]).astype(float)
    probs = np.clip(0.3 * labels + rng.random((500, 3)) * 0.7, 0, 1)
    thresholds = tune_thresholds(probs, labels)
    assert thresholds.shape == (3,)
    for k in range(3):
        tuned = f1_binary(probs[:, k] >= thresholds[k], labels[:, k])
        for t in np.linspace(0.0, 1.0, 101):
            assert tuned >= f1_binary(probs[:, k] >= t, labels[:, k]) - 1e-12


def test_tune_thresholds_separable_and_masked():
    probs = np.array([0.1, 0.2, 0.6, 0.9, 0.95])
    labels = np.array([0, 0, 1, 1, 0])
    mask = np.array([True, True, True, True, False])  # the high-probability negative is ignored
    t = tune_thresholds(probs, labels, mask)
    assert t.shape == (1,) and 0.2 < t[0] <= 0.6
    assert tune_thresholds(probs, np.zeros(5))[0] == 0.5  # no positive label: the default


def test_ah_thresholds_tuned_for_macro_f1_beat_every_threshold_on_macro_f1(rng):
    labels = (rng.random(400) < 0.7).astype(float)  # positives common: the two F1s pull apart
    probs = np.clip(0.25 * labels + rng.random(400) * 0.75, 0, 1)

    def macro(t):
        return f1_score(labels, (probs >= t).astype(int), average="macro", zero_division=0)

    t_macro = tune_thresholds(probs, labels, average="macro")[0]
    t_binary = tune_thresholds(probs, labels)[0]
    candidates = [*np.linspace(0.0, 1.0, 201), probs.max() + 1e-9]
    assert macro(t_macro) >= max(macro(t) for t in candidates) - 1e-12
    assert macro(t_macro) > macro(t_binary)  # tuning for the class-1 F1 gives away macro F1 here
    # every frame negative is a candidate: a useless score whose best macro F1 is deciding nothing
    few = np.array([0, 0, 0, 0, 0, 0, 0, 1.0])
    flat = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    t = tune_thresholds(flat, few, average="macro")[0]
    assert t > 0.5 and ah_metric((flat >= t).astype(int), few).value == pytest.approx(f1_score(
        few, np.zeros(8), average="macro", zero_division=0))  # fmt: skip
    with pytest.raises(MetricError, match="averaging"):
        tune_thresholds(probs, labels, average="micro")  # type: ignore[arg-type]
