"""Evaluation of hand-made predictions files (Parquet and ABAW predictions.txt) against hand-computed
metrics, missing predictions, and the evaluate / submit / check-submission commands."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.evaluate import (
    CheckConfig,
    EvaluateConfig,
    MissingPredictionsError,
    SubmitConfig,
    check_submission_file,
    evaluate_predictions,
    submit_predictions,
)
from model.tasks import EMI_NAMES
from pipeline import datasets
from pipeline.datasets.catalogue import Catalogue, Labels
from pipeline.submission.read import PredictionsError, frame_counts, read_predictions

# VA labels of two validation subjects; frame 3 of "a" is invalid (-5) and its wild prediction is ignored.
# Valence labels (0.1, 0.3, 0.4, 0.4), predictions (0.1, 0.2, 0.3, 0.4): CCC = 5/6 (see test_metrics);
# arousal predictions equal the labels: CCC = 1. Official figure (5/6 + 1) / 2.
VA_LABELS = {"a": [[0.1, 0.0], [0.3, 0.5], [-5.0, -5.0]], "b": [[0.4, -0.5], [0.4, 0.2]]}
VA_PRED = {"a": [[0.1, 0.0], [0.2, 0.5], [0.9, -0.9]], "b": [[0.3, -0.5], [0.4, 0.2]]}
VA_EXPECTED = (5 / 6 + 1) / 2
# EXPR: pooled valid labels (0, 1, 1, 2, 2, 0), predictions (0, 1, 2, 2, 2, 1):
# F1 class 0 = 2/3, class 1 = 1/2, class 2 = 4/5, classes 3..7 = 0 -> macro over 8
EXPR_LABELS = {"a": [0, 1, 1, -1, 2], "b": [2, 0]}
EXPR_PRED = {"a": [0, 1, 2, 5, 2], "b": [2, 1]}
EXPR_EXPECTED = (2 / 3 + 1 / 2 + 4 / 5) / 8


def _catalogue(root: Path, task: str, labels: dict, invalid: float) -> Catalogue:
    cat = Catalogue(root=root, layout="affwild2")
    cat.splits[task] = {"train": [], "validation": list(labels) + ["unlabelled"], "test": list(labels)}
    for subject, rows in labels.items():
        values = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        valid = ~(values == invalid).any(axis=1)
        cat.labels[(task, subject)] = Labels(task, subject, values, valid, root / f"{subject}.txt")
    return cat


def _parquet(path: Path, task: str, preds: dict) -> Path:
    rows = []
    for subject, values in preds.items():
        for i, v in enumerate(values):
            row = {"video": subject, "subject": subject, "frame": i + 1, "face": True, "filled": False}
            row |= {"valence": v[0], "arousal": v[1]} if task == "va" else {"expression": v}
            rows.append(row)
    pl.DataFrame(rows).with_columns(pl.col("frame").cast(pl.Int32)).write_parquet(path)
    return path


def _txt(path: Path, task: str, preds: dict) -> Path:
    header = (
        "valence,arousal" if task == "va" else "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    )
    lines = [f"image_location,{header}"]
    for subject, values in preds.items():
        for i, v in enumerate(values):
            text = f"{v[0]},{v[1]}" if task == "va" else str(v)
            lines.append(f"{subject}/{i + 1:05d}.jpg,{text}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["parquet", "txt"])
def test_va_hand_computed(tmp_path, fmt):
    cat = _catalogue(tmp_path, "va", VA_LABELS, -5.0)
    path = (_parquet if fmt == "parquet" else _txt)(tmp_path / f"p.{fmt}", "va", VA_PRED)
    evaluation = evaluate_predictions(EvaluateConfig("va", path, tmp_path), cat)
    assert evaluation.result.value == pytest.approx(VA_EXPECTED, abs=1e-6)
    assert evaluation.result.parts["valence"] == pytest.approx(5 / 6, abs=1e-6)
    assert evaluation.result.count == 4 and evaluation.subjects == 2


@pytest.mark.parametrize("fmt", ["parquet", "txt"])
def test_expr_hand_computed(tmp_path, fmt):
    cat = _catalogue(tmp_path, "expr", EXPR_LABELS, -1.0)
    path = (_parquet if fmt == "parquet" else _txt)(tmp_path / f"p.{fmt}", "expr", EXPR_PRED)
    evaluation = evaluate_predictions(EvaluateConfig("expr", path, tmp_path), cat)
    assert evaluation.result.value == pytest.approx(EXPR_EXPECTED, abs=1e-6)
    assert evaluation.result.parts["Happiness"] == 0.0


def test_missing_frames_and_subjects_are_listed(tmp_path):
    cat = _catalogue(tmp_path, "va", VA_LABELS | {"c": [[0.1, 0.1]]}, -5.0)
    preds = {"a": VA_PRED["a"][:1], "b": VA_PRED["b"]}  # a: frames 2 (valid) and 3 (invalid) missing
    path = _parquet(tmp_path / "p.parquet", "va", preds)
    with pytest.raises(MissingPredictionsError) as info:
        evaluate_predictions(EvaluateConfig("va", path, tmp_path), cat)
    message = str(info.value)
    assert (
        "a: frames 2\n" in message and "c: frames 1" in message and "no prediction at all for: c" in message
    )
    evaluation = evaluate_predictions(EvaluateConfig("va", path, tmp_path, allow_missing=True), cat)
    assert evaluation.missing_count == 2 and evaluation.result.count == 3
    assert "left out (missing)" in evaluation.table()


def test_extra_frames_are_ignored_and_counted(tmp_path):
    cat = _catalogue(tmp_path, "va", VA_LABELS, -5.0)
    path = _parquet(tmp_path / "p.parquet", "va", {"a": VA_PRED["a"] + [[0.0, 0.0]], "b": VA_PRED["b"]})
    evaluation = evaluate_predictions(EvaluateConfig("va", path, tmp_path), cat)
    assert evaluation.extra == 1 and evaluation.result.value == pytest.approx(VA_EXPECTED, abs=1e-6)


def test_emi_csv(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.random((5, 6))
    cat = Catalogue(root=tmp_path, layout="emi")
    cat.splits["emi"] = {"validation": [f"{i:05d}" for i in range(5)]}
    for i, s in enumerate(cat.splits["emi"]["validation"]):
        cat.labels[("emi", s)] = Labels(
            "emi", s, labels[i : i + 1].astype(np.float32), np.ones(1, bool), tmp_path
        )
    lines = ["Filename," + ",".join(EMI_NAMES)]
    lines += [f"{i:05d}.mp4," + ",".join(str(v) for v in labels[i]) for i in range(5)]
    (tmp_path / "emi.csv").write_text("\n".join(lines) + "\n")
    evaluation = evaluate_predictions(EvaluateConfig("emi", tmp_path / "emi.csv", tmp_path), cat)
    assert evaluation.result.value == pytest.approx(1.0, abs=1e-6) and evaluation.result.count == 5


def test_read_predictions_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("image_location,valence,arousal\nx/00001.jpg,0.1\n")
    with pytest.raises(PredictionsError, match="line 2: 2 fields"):
        read_predictions(bad, "va")
    with pytest.raises(PredictionsError, match="columns expression"):
        read_predictions(_parquet(tmp_path / "p.parquet", "va", VA_PRED), "expr")
    with pytest.raises(PredictionsError, match="no such"):
        read_predictions(tmp_path / "none.parquet", "va")


def test_frame_counts_from_table(tmp_path):
    table = read_predictions(_txt(tmp_path / "p.txt", "va", VA_PRED), "va")
    assert frame_counts(table) == {"a": 3, "b": 2}


def test_submit_then_check(tmp_path):
    cat = _catalogue(tmp_path, "va", VA_LABELS, -5.0)
    preds = _parquet(tmp_path / "p.parquet", "va", VA_PRED)
    out = tmp_path / "sub" / "predictions.txt"
    done = submit_predictions(SubmitConfig("va", preds, tmp_path, out), cat)
    assert done.problems == [] and done.report.lines == 5
    assert check_submission_file(CheckConfig("va", out, tmp_path, preds), cat) == []
    assert len(check_submission_file(CheckConfig("va", out, tmp_path, _txt(tmp_path / "q.txt", "va",
                                     VA_PRED | {"b": VA_PRED["b"] * 2})), cat)) == 1  # fmt: skip


# ----------------------------------------------------------------------------------------------- commands


@pytest.fixture
def cli_catalogue(tmp_path, monkeypatch):
    cat = _catalogue(tmp_path, "va", VA_LABELS, -5.0)
    seen = []
    monkeypatch.setattr(
        datasets, "load_catalogue", lambda root, *a, **k: seen.append(root) or cat, raising=False
    )
    return cat, seen


def test_cli_evaluate_table_and_json(tmp_path, cli_catalogue):
    _, seen = cli_catalogue
    path = _parquet(tmp_path / "p.parquet", "va", VA_PRED)
    args = ["evaluate", "--task", "va", "--predictions", str(path), "--input", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{VA_EXPECTED:.4f}" in result.output and "valence" in result.output
    assert seen == [tmp_path]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["value"] == pytest.approx(VA_EXPECTED) and data["split"] == "validation"


def submit_args(predictions: Path, root: Path, out: Path) -> list[str]:
    """`lwaffect submit` of VA predictions of the data set at `root` into `out`."""
    return [
        "submit",
        "--task",
        "va",
        "--predictions",
        str(predictions),
        "--input",
        str(root),
        "--output",
        str(out),
    ]


def test_cli_evaluate_missing_exits_1(tmp_path, cli_catalogue):
    path = _parquet(tmp_path / "p.parquet", "va", {"a": VA_PRED["a"]})
    args = ["evaluate", "--task", "va", "--predictions", str(path), "--input", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "b: frames 1-2" in result.output
    result = CliRunner().invoke(app, [*args, "--allow-missing", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["missing_frames"] == 2


def test_cli_submit_and_check_submission(tmp_path, cli_catalogue):
    preds = _parquet(tmp_path / "p.parquet", "va", VA_PRED)
    out = tmp_path / "predictions.txt"
    result = CliRunner().invoke(app, submit_args(preds, tmp_path, out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("image_location,valence,arousal\na/00001.jpg,0.1,0\n")
    check = ["check-submission", "--task", "va", str(out), "--input", str(tmp_path)]
    result = CliRunner().invoke(app, check)
    assert result.exit_code == 0 and "valid" in result.output
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:], lines[3]]) + "\n")
    result = CliRunner().invoke(app, [*check, "--predictions", str(preds)])
    assert result.exit_code == 1
    assert "out of order" in result.output and "duplicate" in result.output and "2 problems" in result.output


def test_cli_submit_missing_predictions_exits_1(tmp_path, cli_catalogue):
    preds = _parquet(tmp_path / "p.parquet", "va", {"a": VA_PRED["a"]})
    out = tmp_path / "predictions.txt"
    result = CliRunner().invoke(app, submit_args(preds, tmp_path, out))
    assert result.exit_code == 1 and "b: no predictions" in result.output and not out.exists()
