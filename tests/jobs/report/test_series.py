"""Binning long series and the runs of filled frames (`jobs.report.series`)."""

from __future__ import annotations

import numpy as np

from jobs.report.series import bin_mean, bin_mode, bin_size, merge_runs, runs


def test_bin_size_keeps_at_most_the_points_asked_for():
    assert bin_size(100, 1200) == 1
    assert bin_size(1200, 1200) == 1
    assert bin_size(1201, 1200) == 2
    assert bin_size(18_000, 1200) == 15 and -(-18_000 // 15) <= 1200


def test_bin_mean_ignores_nan_and_keeps_a_short_last_bin():
    values = np.array([1.0, 3.0, np.nan, 5.0, np.nan, np.nan, 7.0])
    np.testing.assert_array_equal(bin_mean(values, 2), [2.0, 5.0, np.nan, 7.0])
    np.testing.assert_array_equal(bin_mean(values, 1), values)
    grid = np.arange(12, dtype=float).reshape(6, 2)  # (N, K) rows are binned, columns kept
    np.testing.assert_array_equal(bin_mean(grid, 4), [[3.0, 4.0], [9.0, 10.0]])


def test_bin_mode_takes_the_most_frequent_class_and_the_lowest_on_a_tie():
    codes = np.array([2, 2, 1, 0, 0, 3, np.nan, np.nan, -1])
    np.testing.assert_array_equal(bin_mode(codes, 3, 4), [2.0, 0.0, np.nan])
    np.testing.assert_array_equal(bin_mode(np.array([1.0, 3.0]), 2, 4), [1.0])
    np.testing.assert_array_equal(bin_mode(np.array([1.0, np.nan]), 1, 4), [1.0, np.nan])


def test_runs_and_merged_runs():
    mask = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1], bool)
    assert runs(mask) == [(1, 3), (4, 5), (8, 10)]
    assert runs(np.ones(3, bool)) == [(0, 3)] and runs(np.zeros(3, bool)) == []
    assert merge_runs(runs(mask), 3) == [(1, 3), (4, 5), (8, 10)]
    assert merge_runs(runs(mask), 2) == [(1, 5), (8, 10)]  # the smallest gap (one frame) is joined first
    assert merge_runs(runs(mask), 1) == [(1, 10)]
