"""`python -m jobs.learnability` extracts its cache where the recipe (or its flags) cut the backbone, each
cut in its own folder, and trains with the same cut (the extraction and training themselves are faked)."""

from __future__ import annotations

import pytest

import jobs.learnability as learnability


@pytest.mark.parametrize(
    "argv, folder, cut",
    [
        ([], "affwild2", (2, 224, "maps")),  # the folder of earlier runs
        (["--recipe", "seed"], "affwild2-n5-112-crops", (5, 112, "crops")),
        (["--trainable-blocks", "3"], "affwild2-n3-224-maps", (3, 224, "maps")),
        (["--trainable-blocks", "5", "--input-size", "224"], "affwild2-n5-224-crops", (5, 224, "crops")),
        (["--trainable-blocks", "4", "--cache-kind", "maps"], "affwild2-n4-224-maps", (4, 224, "maps")),
        (["--recipe", "seed", "--trainable-blocks", "2"], "affwild2-n2-112-maps", (2, 112, "maps")),
    ],
)
def test_the_cache_folder_and_training_follow_the_cut(tmp_path, monkeypatch, argv, folder, cut):
    extracted, trained = [], []
    monkeypatch.setattr(learnability, "make_data", lambda *a, **k: None)
    monkeypatch.setattr(
        learnability, "make_cache", lambda root, cache, say, *rest: extracted.append((cache, rest)) or 1.0
    )
    figures = {"metric": 0.5, "tuned": None, "trivial": 0.0, "epoch": 1, "seconds": 1.0}
    monkeypatch.setattr(
        learnability, "train_task", lambda cfg, shuffled, say: trained.append(cfg) or dict(figures)
    )
    report = learnability.main(["--output", str(tmp_path), "--tasks", "va", *argv])
    assert extracted == [(tmp_path / "cache" / folder, cut)]
    assert trained[0].cache == str(tmp_path / "cache" / folder)
    assert (trained[0].trainable_blocks, trained[0].input_size) == cut[:2]  # train checks the cache agrees
    assert (report["trainable_blocks"], report["input_size"], report["cache_kind"]) == cut
