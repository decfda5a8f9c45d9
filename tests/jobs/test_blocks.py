"""Each number of trainable blocks end to end: extract (real decoder, MTCNN, timm, local Ray), train one epoch
and predict, on two short subjects of the shared synthetic Aff-Wild2 set (one train, one validation).

For N = 0 to 3 the map cache holds the maps the contract lists; for N = 4 and 5 the extraction caches
the face crops by default (N = 5 at 112 px, the seed's size: the crops follow --input-size), from which
the trainer and the predictor make the cached maps of that N on the fly. The model (`tam_s1`, which
reads the stride-32 map) trains the last N blocks, whose weights move from the backbone's; prediction
reads the same cache; a checkpoint of one N is refused on the cache of another, map or crop cache,
naming both, and training on a cache with another --trainable-blocks is refused before any step.
"""

from __future__ import annotations

import time

import polars as pl
import pytest
import torch

from jobs.extract.config import ExtractConfig, sized
from jobs.extract.driver import extract
from jobs.extract.runtime import RuntimeConfig, ray_session
from jobs.predict import PredictConfig, PredictError, predict
from jobs.train.trainer import TrainConfig, TrainError, train
from model.backbone import build_backbone
from model.checkpoint import load_checkpoint
from pipeline.cache.read import open_cache
from pipeline.datasets import load_catalogue

pytestmark = pytest.mark.slow
CACHED = {0: ["s8", "s16", "s32"], 1: ["s8", "s16", "block3"], 2: ["s8", "s16"], 3: ["s8"], 4: ["block0"],
          5: ["stem"]}  # fmt: skip
SIZE = {5: 112}  # input size per N (224 where not listed)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    with ray_session(RuntimeConfig(temp_dir=str(tmp_path_factory.mktemp("ray")))) as resources:
        yield resources


def shortest(root, split: str) -> str:
    """The VA subject of `split` with the fewest frames."""
    catalogue = load_catalogue(root, strict=False)
    subjects = [s.name for s in catalogue.subjects_in("va", split)]
    return min(subjects, key=lambda s: (len(catalogue.labels[("va", s)].values), s))


@pytest.mark.timeout(600)
def test_each_n_extracts_trains_one_epoch_and_predicts(synth_affwild2, local_ray, tmp_path, one_thread):
    subjects = (shortest(synth_affwild2, "train"), shortest(synth_affwild2, "validation"))
    checkpoints, seconds = {}, {}
    for n in CACHED:
        times = [time.perf_counter()]
        cache = str(tmp_path / f"cache{n}")
        size = SIZE.get(n, 224)
        faces, backbone = sized(trainable_blocks=n, input_size=size)
        report = extract(ExtractConfig(input=synth_affwild2, cache=cache, faces=faces, backbone=backbone,
                                       subjects=subjects), say=lambda _: None)  # fmt: skip
        assert not report.failures, report.failures
        times.append(time.perf_counter())
        spec = open_cache(cache).spec
        assert spec["trainable_blocks"] == n and spec["cached_names"] == CACHED[n]
        assert spec["input_size"] == size and spec["cache_kind"] == ("crops" if n >= 4 else "maps")
        if n >= 4:  # the crops themselves, at the input size
            assert open_cache(cache).read(subjects[0], 0, 4).maps[0].shape == (4, 3, size, size)
        assert [tuple(s) for s in spec["boundary"]] == list(build_backbone(backbone).cached_shapes)

        out = tmp_path / f"va{n}"
        cfg = TrainConfig(task="va", input=synth_affwild2, cache=cache, output=out, config="tam_s1", epochs=1,
                          seq_len=8, stride=8, batch_size=4, threads=1, log_every=0, train_subjects=subjects[:1],
                          val_subjects=subjects[1:])  # fmt: skip
        result = train(cfg, say=lambda _: None)
        times.append(time.perf_counter())
        model, doc = load_checkpoint(result.checkpoint)
        assert doc["backbone"]["trainable_blocks"] == n and doc["cache_spec"]["trainable_blocks"] == n
        if n == 0:
            assert model.tail is None  # the cache holds s32: nothing of the backbone trains
        else:
            assert len(model.tail.blocks) == n
            start = build_backbone(backbone).tail.state_dict()
            trained = model.tail.state_dict()
            assert any(not torch.equal(trained[k], start[k]) for k in trained if "weight" in k)

        written = predict(PredictConfig(task="va", cache=cache, weights=result.checkpoint, output=out / "pred"),
                          say=lambda _: None)  # fmt: skip
        table = pl.read_parquet(written.path)
        assert written.subjects == 2 and len(table) == sum(open_cache(cache).num_frames(s) for s in subjects)
        assert table.select(pl.col("valence").is_finite().all()).item()
        checkpoints[n] = result.checkpoint
        times.append(time.perf_counter())
        seconds[n] = [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)]

    with pytest.raises(
        PredictError, match=r"trainable blocks N = 3 \(checkpoint\) vs trainable blocks N = 2"
    ):
        predict(PredictConfig(task="va", cache=str(tmp_path / "cache2"), weights=checkpoints[3],
                              output=tmp_path / "refused"), say=lambda _: None)  # fmt: skip
    with pytest.raises(PredictError, match=r"(?s)trainable blocks N = 4 \(checkpoint\) vs trainable blocks N = 5"
                                           r".*input size 224 px \(checkpoint\) vs input size 112 px"):  # fmt: skip
        predict(PredictConfig(task="va", cache=str(tmp_path / "cache5"), weights=checkpoints[4],
                              output=tmp_path / "refused"), say=lambda _: None)  # fmt: skip
    with pytest.raises(
        TrainError, match=r"made with --trainable-blocks 5, this run asks for --trainable-blocks 4"
    ):
        train(TrainConfig(task="va", input=synth_affwild2, cache=str(tmp_path / "cache5"), output=tmp_path / "no",
                          trainable_blocks=4, train_subjects=subjects[:1], val_subjects=subjects[1:]),
              say=lambda _: None)  # fmt: skip
    print("seconds per N (extract, train, predict):", seconds)
