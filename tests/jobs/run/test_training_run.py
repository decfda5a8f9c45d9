"""`lwaffect run` without --weights on `lwaffect synth` data: trains, reuses, several tasks, failed videos.

One module-scoped run (`va,au`, two short epochs each) is shared by the tests; each later call works in its
own copy where it changes anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from model.tasks import TASKS
from pipeline.cache.layout import encode_subject
from pipeline.datasets import load_catalogue

SHORT = ["--epochs", "2", "--seq-len", "16", "--stride", "8", "--batch-size", "8", "--threads", "1"]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args])
    return result.exit_code, result.output


def checked(task: str, path: Path, root: Path) -> None:
    result = CliRunner().invoke(app, ["check-submission", "--task", task, str(path), "--input", str(root)])
    assert result.exit_code == 0, result.output


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def first(synth_affwild2, tmp_path_factory):
    """`lwaffect run --task va,au` with no weights, short training: its output folder and what it printed."""
    out = tmp_path_factory.mktemp("run") / "out"
    code, output = run_cli("--input", str(synth_affwild2), "--task", "va,au", "--output", str(out), *SHORT)
    return out, code, output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_trains_each_task_and_writes_checked_submissions_from_one_cache(first, synth_affwild2):
    out, code, output = first
    assert code == 0, output
    record = json.loads((out / "run.json").read_text())
    assert record["tasks"] == ["va", "au"]
    assert [s["name"] for s in record["stages"]].count("extract") == 1  # one extraction for both tasks
    for task in ("va", "au"):
        ckpt = record["checkpoints"][task]
        assert ckpt["source"] == "trained"
        assert Path(ckpt["path"]) == out / "checkpoints" / task / "best.safetensors"
        assert len(ckpt["sha256"]) == len("sha256:") + 64
        assert ckpt["train_config"]["epochs"] == 2 and ckpt["train_config"]["seq_len"] == 16
        assert str(out / "checkpoints" / task) in output  # says where the checkpoint is
        submission = Path(record["submissions"][task]["path"])
        assert record["submissions"][task]["valid"] is True
        checked(task, submission, synth_affwild2)
    assert record["failures"] == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_second_run_reuses_the_checkpoint_and_the_cache(first, synth_affwild2):
    out, code, _ = first
    assert code == 0
    before = mtimes(out / "checkpoints") | {f"cache/{k}": v for k, v in mtimes(out / "cache").items()}
    code, output = run_cli("--input", str(synth_affwild2), "--task", "va,au", "--output", str(out), *SHORT)
    assert code == 0, output
    after = mtimes(out / "checkpoints") | {
        f"cache/{k}": v for k, v in mtimes(out / "cache" / "shards").items()
    }
    shards = {k: v for k, v in before.items() if k.startswith("cache/shards/")}
    assert shards and all(after[k.replace("cache/shards/", "cache/", 1)] == v for k, v in shards.items())
    assert {k: v for k, v in after.items() if not k.startswith("cache/")} == {
        k: v for k, v in before.items() if not k.startswith("cache/")
    }  # no checkpoint file rewritten
    record = json.loads((out / "run.json").read_text())
    assert {record["checkpoints"][t]["source"] for t in ("va", "au")} == {"reused"}
    assert "0 subjects extracted" in output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_other_training_settings_are_refused_naming_the_difference(first, synth_affwild2):
    out, code, _ = first
    assert code == 0
    args = ["--input", str(synth_affwild2), "--task", "va", "--output", str(out), *SHORT, "--lr", "0.01"]
    code, output = run_cli(*args)
    assert code == 1
    assert "lr: 0.001 (saved) vs 0.01 (now)" in output and "--retrain" in output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_truncated_test_video_keeps_the_submission_complete(first, synth_affwild2, tmp_path):
    out, code, _ = first
    assert code == 0
    root, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(synth_affwild2, root)
    shutil.copytree(out / "cache", cache)
    catalogue = load_catalogue(root)
    broken = catalogue.subjects_in("va", "test")[0]
    video = catalogue.videos[broken.video].path
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])  # truncated
    for subject in catalogue.subjects.values():
        if subject.video == broken.video:
            (cache / "shards" / f"{encode_subject(subject.name)}.parquet").unlink(missing_ok=True)
    weights = out / "checkpoints" / "va" / "best.safetensors"
    code, output = run_cli("--input", str(root), "--task", "va", "--weights", str(weights),
                           "--output", str(tmp_path / "o"), "--cache", str(cache))  # fmt: skip
    assert code == 2, output
    failures = pl.read_parquet(tmp_path / "o" / "failures.parquet")
    assert broken.name in failures["subject"].to_list()
    submission = tmp_path / "o" / "submission" / "va" / "predictions.txt"
    checked("va", submission, root)
    lines = [line for line in submission.read_text().splitlines() if line.startswith(f"{broken.name}/")]
    assert lines and all(line.split(",")[1:] == ["0", "0"] for line in lines), lines[:3]
    table = pl.read_parquet(tmp_path / "o" / "predictions" / "va.parquet").filter(
        pl.col("subject") == broken.name
    )
    assert len(table) == len(lines)
    assert table["filled"].all() and set(table["reason"].to_list()) == {"failed video"}
    assert (table["valence"] == TASKS["va"].neutral[0]).all()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_goes_on_past_an_annotation_without_its_video_and_strict_refuses(
    first, synth_affwild2, tmp_path
):
    out, code, _ = first
    assert code == 0
    root = tmp_path / "data"
    shutil.copytree(synth_affwild2, root)
    train_set = next(root.rglob("VA_Estimation_Challenge/Train_Set"))
    some = next(train_set.glob("*.txt"))
    (train_set / "999-30-640x360.txt").write_text(some.read_text())  # labels of a video that is not there
    args = ["train", "--task", "va", "--input", str(root), "--cache", str(out / "cache"),
            "--output", str(tmp_path / "ckpt"), "--epochs", "1", "--seq-len", "16", "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "999-30-640x360" in result.output and "left out" in result.output
    assert (tmp_path / "ckpt" / "best.safetensors").is_file()
    strict = CliRunner().invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1
    assert "999-30-640x360" in strict.output
