"""Training settings of the crop cache: augmentation needs crops; the setting is recorded and resumes."""

from __future__ import annotations

import pytest

from jobs.train.trainer import TrainError, train
from tests.jobs.train.test_train import config, fakes  # noqa: F401 (fixture)


def test_augmenting_a_map_cache_is_a_clear_error(tmp_path, fakes):  # noqa: F811
    with pytest.raises(TrainError, match="--augment standard needs a crop cache"):
        train(config(tmp_path, augment="standard"), say=lambda _: None)


def test_no_augmentation_trains_on_maps_as_before(tmp_path, fakes):  # noqa: F811
    result = train(config(tmp_path, augment="none"), say=lambda _: None)
    assert result.epochs_run == 1 and result.checkpoint.exists()
