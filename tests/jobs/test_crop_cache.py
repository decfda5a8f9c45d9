"""`--cache-kind crops` end to end on `lwaffect synth` data through the real parts (decord, MTCNN, timm with
random weights, a local Ray): extract a crop cache of three subjects, train VA one epoch from it, predict;
the frozen maps made on the fly from its crops match the map cache's (`affwild2_cache`); a shard lost
and an extraction run again restore the cache; a maps extraction into it is refused, naming the kinds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from jobs.cli import app
from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.layout import shard_file
from pipeline.cache.read import open_cache
from pipeline.features import cosine_per_frame
from pipeline.temporal.crops import CropMaps

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
# two VA train subjects (the second with frames 36-53 faceless: whole decode chunks without a crop), one
# validation subject
SUBJECTS = ["1-25-640x360", "2-30-1280x720", "6-25-640x360"]
# JPEG 4:4:4 quality 90 against the map cache's own maps (both bf16 where the CPU has it, the map cache
# float16): the codec bench measured a median cosine of 0.9996, at least 0.9991, on the synthetic crops
MEDIAN_COSINE, MIN_COSINE = 0.999, 0.995


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def crop_cache(synth_affwild2, tmp_path_factory) -> str:
    location = str(tmp_path_factory.mktemp("crop_cache") / "cache")
    only = [arg for s in SUBJECTS for arg in ("--only", s)]
    code, output = cli(
        "extract", "--input", str(synth_affwild2), "--cache", location, "--cache-kind", "crops", *only
    )
    assert code == 0, output
    return location


@pytest.mark.timeout(300)
def test_a_crop_cache_holds_the_crops_and_gives_the_map_cache_maps(crop_cache, affwild2_cache):
    crops, maps = open_cache(crop_cache), open_cache(affwild2_cache)
    assert crops.kind == "crops" and crops.subjects() == SUBJECTS
    assert crops.spec["crops"] == {"codec": "jpeg", "quality": 90, "subsampling": 0}
    sizes = {r["subject"]: r["bytes"] / r["frames"] for r in crops.manifest().to_pylist()}
    map_sizes = {r["subject"]: r["bytes"] / r["frames"] for r in maps.manifest().to_pylist()}
    assert all(sizes[s] < map_sizes[s] / 4 for s in SUBJECTS), (sizes, map_sizes)  # far smaller
    on_the_fly = CropMaps(build_backbone(BackboneConfig()))
    for subject in SUBJECTS:
        a, b = crops.read(subject), maps.read(subject)
        np.testing.assert_array_equal(a.face, b.face)  # the same face stage made both
        assert a.maps[0].shape[1:] == (3, 224, 224) and not a.maps[0][~a.face].any()
        made = on_the_fly(torch.from_numpy(a.maps[0])[None])
        for got, cached in zip(made, b.maps, strict=True):
            cos = cosine_per_frame(got[0].numpy()[a.face], cached[b.face].astype(np.float32))
            assert np.median(cos) > MEDIAN_COSINE and cos.min() > MIN_COSINE, (
                subject,
                np.median(cos),
                cos.min(),
            )
    gap = crops.read(
        SUBJECTS[1], 36, 54
    )  # the faceless stretch: rows kept, with no crop (null, decoded blank)
    assert len(gap.index) == 18 and not gap.face.any() and not gap.maps[0].any()


@pytest.mark.timeout(300)
def test_train_and_predict_from_crops(crop_cache, synth_affwild2, tmp_path):
    out = tmp_path / "va"
    code, output = cli("train", "--task", "va", "--input", str(synth_affwild2), "--cache", crop_cache,
                       "--output", str(out), "--epochs", "1", "--seq-len", "16", "--stride", "8",
                       "--batch-size", "8", "--threads", "1", "--allow-missing")  # fmt: skip
    assert code == 0, output
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["config"]["augment"] is None  # the default: standard augmentation from crops
    epoch = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"epoch"' in line]
    assert len(epoch) == 1 and np.isfinite(epoch[0]["train_loss"]) and np.isfinite(epoch[0]["metric"])
    code, output = cli("predict", "--task", "va", "--cache", crop_cache, "--weights", str(out / "best.safetensors"),
                       "--output", str(tmp_path / "pred"))  # fmt: skip
    assert code == 0, output
    table = pl.read_parquet(tmp_path / "pred" / "predictions" / "va.parquet")
    assert sorted(table["subject"].unique().to_list()) == SUBJECTS
    assert len(table) == sum(open_cache(crop_cache).num_frames(s) for s in SUBJECTS)
    assert table["valence"].is_finite().all() and table["valence"].abs().max() <= 1


@pytest.mark.timeout(300)
def test_a_lost_shard_is_extracted_again_and_a_maps_run_is_refused(crop_cache, synth_affwild2):
    root = Path(crop_cache)
    before = {s: (root / shard_file(s)).stat().st_mtime_ns for s in SUBJECTS}
    (root / shard_file(SUBJECTS[1])).unlink()
    only = [arg for s in SUBJECTS for arg in ("--only", s)]
    code, output = cli(
        "extract", "--input", str(synth_affwild2), "--cache", crop_cache, "--cache-kind", "crops", *only
    )
    assert code == 0, output
    assert "3 subjects in" in output and "2 already cached" in output  # one was redone
    cache = open_cache(crop_cache)
    assert cache.subjects() == SUBJECTS and cache.metadata(SUBJECTS[1])["complete"] is True
    after = {s: (root / shard_file(s)).stat().st_mtime_ns for s in SUBJECTS}
    assert [after[s] == before[s] for s in SUBJECTS] == [True, False, True]
    code, output = cli("extract", "--input", str(synth_affwild2), "--cache", crop_cache, *only)
    assert code == 1 and "holds crops, this extraction makes maps" in output, output
