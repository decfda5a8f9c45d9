"""`lwaffect run`: usage errors, the report, and end-to-end runs on synthetic data sets for every task.

The end-to-end tests share one extraction per data set (module fixtures) and use randomly initialised
checkpoints for the format checks; one test trains a VA model briefly and compares the metric `evaluate`
finds on `run`'s predictions with the validation metric recorded in training.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.run.checkpoints import weights_needed
from jobs.run.config import RunConfig, RunError
from jobs.run.driver import check_config
from jobs.run.report import Stage, TaskReport, submission_path
from model.tasks import EMI_NAMES, TASKS
from pipeline.video.probe import count_decoded_frames
from tests.jobs.test_predict import expected_schema


def test_run_without_weights_or_labels_says_which_weights_and_how_to_make_them(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "--input", str(tmp_path), "--task", "au", "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "au checkpoint" in result.output
    assert (
        f"lwaffect train --task au --input {tmp_path} --cache {tmp_path / 'out' / 'cache'}" in result.output
    )
    assert "--weights" in result.output


def test_weights_message_names_the_cache_and_checkpoint_folder(tmp_path):
    cfg = RunConfig(input=tmp_path / "data", tasks=("va",), output=tmp_path / "o", cache="s3://bucket/c")
    message = weights_needed(cfg, "va")
    assert "va checkpoint" in message
    assert "--cache s3://bucket/c" in message
    assert f"--output {tmp_path / 'o' / 'checkpoints' / 'va'}" in message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope", "--weights", "x.ckpt"], "unknown task"),
        (["--task", "va", "--weights", "missing.ckpt"], "no such checkpoint"),
    ],
)
def test_usage_errors_exit_1_with_the_reason(tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", "--input", str(tmp_path), "--output", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--task", "va", "--split", "nope", "--weights", "x.ckpt"], "--split"),
    ],
)
def test_values_not_among_the_choices_exit_1_naming_them(tmp_path, args, flag):
    result = CliRunner().invoke(
        app, ["run", "--input", str(tmp_path), "--output", str(tmp_path), *args], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert f"Invalid value for '{flag}'" in result.output and "'nope' is not one of" in result.output


def test_report_exit_code_and_summary(tmp_path):
    report = TaskReport(
        task="va", split="test", videos=3, subjects=4, frames=200, filled=10,
        predictions=tmp_path / "predictions" / "va.parquet", failures_path=tmp_path / "failures.parquet",
        stages=[Stage("extract", 2.0, 200), Stage("predict", 0.5, 200), Stage("submit", 0.1, 200, "lines")],
        submission=submission_path(tmp_path, "va"),
    )  # fmt: skip
    assert report.exit_code == 0
    text = report.summary()
    for part in ("3 videos", "4 subjects", "200 frames", "10 frames filled (5.0%)", "0 failures",
                 "100.0 frames/s", "400.0 frames/s", "2000.0 lines/s", str(report.predictions),
                 str(submission_path(tmp_path, "va")), "valid"):  # fmt: skip
        assert part in text, part
    report.failures.append({"video": "v", "subject": "v", "stage": "decode", "reason": "truncated"})
    assert report.exit_code == 2
    assert "v [decode]: truncated" in report.summary()
    assert submission_path(tmp_path, "emi").name == "predictions.csv"
    assert submission_path(tmp_path, "ah") == tmp_path / "submission" / "ah" / "predictions.txt"


def test_a_checkpoint_of_another_task_is_refused_before_extraction(tmp_path, random_checkpoint):
    cfg = RunConfig(
        input=tmp_path, tasks=("va",), weights=(random_checkpoint("au"),), output=tmp_path / "out"
    )
    with pytest.raises(RunError, match="'au' model, not 'va'"):
        check_config(cfg)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- end to end, synthetic data


def quiet(line: str) -> None:
    pass


def extracted(root: Path, cache: Path, split: str) -> SimpleNamespace:
    """One extraction of `split` of the data set at `root`, and its catalogue."""
    from jobs.extract.config import ExtractConfig
    from jobs.extract.driver import extract
    from pipeline.datasets import load_catalogue

    report = extract(ExtractConfig(input=root, cache=str(cache), split=split), say=quiet)
    assert not report.failures, report.failures
    return SimpleNamespace(root=root, cache=str(cache), catalogue=load_catalogue(root))


@pytest.fixture(scope="module")
def affwild2(synth_affwild2, affwild2_cache):
    from pipeline.datasets import load_catalogue

    data = SimpleNamespace(
        root=synth_affwild2, cache=affwild2_cache, catalogue=load_catalogue(synth_affwild2)
    )
    data.two_subject = next(v for v in data.catalogue.videos if v + "_left" in data.catalogue.subjects)
    return data


@pytest.fixture(scope="module")
def emi(synth_emi, tmp_path_factory):
    return extracted(synth_emi, tmp_path_factory.mktemp("emi") / "cache", "test")


@pytest.fixture(scope="module")
def ah(synth_ah, tmp_path_factory):
    return extracted(synth_ah, tmp_path_factory.mktemp("ah") / "cache", "test")


def no_face_frames(root: Path) -> dict[str, set[int]]:
    """Video name -> 1-based frames the generator drew without a face."""
    manifest = json.loads((root / "synth_manifest.json").read_text())
    return {
        v["name"]: {i + 1 for start, stop in v.get("no_face_frames", []) for i in range(start, stop)}
        for v in manifest["videos"]
    }


def check_run(data: SimpleNamespace, task: str, split: str, output: Path, weights: Path) -> pl.DataFrame:
    """Run `task` on `split` through the command line; check predictions, submission and fill flags."""
    result = CliRunner().invoke(app, ["run", "--input", str(data.root), "--task", task, "--split", split,
                                      "--weights", str(weights), "--output", str(output), "--cache", data.cache])  # fmt: skip
    assert result.exit_code == 0, result.output
    catalogue = data.catalogue
    decoded = functools.cache(lambda video: count_decoded_frames(catalogue.videos[video].path))
    table = pl.read_parquet(output / "predictions" / f"{task}.parquet")
    assert dict(table.schema) == expected_schema(task)
    subjects = [s.name for s in catalogue.subjects_in(task, split)]
    assert table["subject"].unique(maintain_order=True).to_list() == subjects
    clip = TASKS[task].unit == "clip"
    if not clip:  # every decoded frame of every subject, numbered from 1
        for subject in subjects:
            frames = table.filter(pl.col("subject") == subject)["frame"].to_list()
            assert frames == list(range(1, decoded(catalogue.subjects[subject].video) + 1))
        assert (table["filled"] == ~table["face"]).all()
    # the submission: one line per frame of every test subject (per clip for EMI), and it checks
    submission = submission_path(output, task)
    test = [s.name for s in catalogue.subjects_in(task, "test")]
    lines = submission.read_text().splitlines()
    header = 0 if task == "ah" else 1
    expected = len(test) if clip else sum(decoded(catalogue.subjects[s].video) for s in test)
    assert len(lines) - header == expected
    checked = CliRunner().invoke(
        app, ["check-submission", "--task", task, str(submission), "--input", str(data.root)]
    )
    assert checked.exit_code == 0, checked.output
    assert str(submission) in result.output and "0 failures" in result.output
    return table


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_va_on_all_splits_fills_frames_without_a_face(affwild2, random_checkpoint, tmp_path):
    table = check_run(affwild2, "va", "all", tmp_path, random_checkpoint("va"))
    for video, frames in no_face_frames(affwild2.root).items():
        rows = table.filter(pl.col("video") == video)
        filled = set(rows.filter(pl.col("filled"))["frame"].to_list())
        assert frames <= filled, (video, sorted(frames - filled))
    assert table["filled"].any()  # the data set has a stretch without a face
    assert table.filter(pl.col("video") == affwild2.two_subject)["subject"].n_unique() == 2


@pytest.mark.parametrize("task", ["au", "expr"])
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_au_and_expr_write_checked_submissions(affwild2, random_checkpoint, tmp_path, task):
    check_run(affwild2, task, "test", tmp_path, random_checkpoint(task))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_emi_writes_one_row_per_clip(emi, random_checkpoint, tmp_path):
    table = check_run(emi, "emi", "test", tmp_path, random_checkpoint("emi"))
    assert table.select(EMI_NAMES).to_numpy().min() >= 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_ah_writes_frame_lines_from_zero(ah, random_checkpoint, tmp_path):
    check_run(ah, "ah", "test", tmp_path, random_checkpoint("ah"))
    first = submission_path(tmp_path, "ah").read_text().splitlines()[0]
    assert first.split(",")[0].endswith("/frame-0.jpg")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_evaluate_on_run_predictions_equals_the_training_validation_metric(affwild2, tmp_path):
    from jobs.evaluate import EvaluateConfig, evaluate_predictions
    from jobs.run.driver import run
    from jobs.train.trainer import TrainConfig, train

    trained = train(
        TrainConfig(task="va", input=affwild2.root, cache=affwild2.cache, output=tmp_path / "ckpt", epochs=2,
                    seq_len=16, stride=8, batch_size=8),
        say=quiet,
    )  # fmt: skip
    ran = run(RunConfig(input=affwild2.root, tasks=("va",), weights=(trained.checkpoint,), output=tmp_path / "out",
                        split="validation", cache=affwild2.cache), say=quiet)  # fmt: skip
    report = ran.task("va")
    assert ran.exit_code == 0 and report.submission is None
    evaluation = evaluate_predictions(EvaluateConfig("va", report.predictions, affwild2.root, "validation"))
    assert evaluation.result.value == pytest.approx(trained.best_metric, abs=1e-5)
    assert evaluation.result.count == trained.history[trained.best_epoch - 1]["frames"]
    assert f"{trained.best_metric:.4f}" in (report.metric or "")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_broken_test_video_is_listed_exits_2_and_keeps_its_lines(affwild2, random_checkpoint, tmp_path):
    from pipeline.cache.layout import encode_subject

    root, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(affwild2.root, root)
    shutil.copytree(affwild2.cache, cache)
    broken = affwild2.catalogue.subjects_in("va", "test")[0]
    path = root / affwild2.catalogue.videos[broken.video].path.relative_to(affwild2.root)
    path.write_bytes(b"not a video" * 100)
    (cache / "shards" / f"{encode_subject(broken.name)}.parquet").unlink()
    output = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--input", str(root), "--task", "va", "--weights",
                                      str(random_checkpoint("va")), "--output", str(output), "--cache", str(cache)])  # fmt: skip
    assert result.exit_code == 2, result.output
    failures = pl.read_parquet(output / "failures.parquet")
    assert broken.name in failures["subject"].to_list()
    assert broken.video in result.output
    table = pl.read_parquet(output / "predictions" / "va.parquet")
    test = [s.name for s in affwild2.catalogue.subjects_in("va", "test")]
    assert table["subject"].unique(maintain_order=True).to_list() == test  # the broken one too, in order
    failed = table.filter(pl.col("subject") == broken.name)
    assert failed["reason"].unique().to_list() == ["failed video"] and failed["filled"].all()
    assert table.filter(pl.col("subject") != broken.name)["reason"].is_in(["", "no face"]).all()
