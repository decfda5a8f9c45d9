"""`lwaffect report` and `write_report` on small hand-made runs: what is missing is said, not fatal."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
from typer.testing import CliRunner

from jobs.cli import app
from jobs.predict import subject_table
from jobs.report import ReportConfig, write_report
from jobs.report.build import REPORT_FILE


def old_run(tmp_path, with_videos: bool):
    """A run folder whose record has only the keys of an older lwaffect (no videos, no stage parts), or
    names a video file that is gone; its input folder and cache are gone too."""
    tables = [
        subject_table(
            "va", v, v, np.arange(1, 41), np.arange(40) % 5 != 0, np.full((40, 2), 0.25), np.full(2, 0.5)
        )
        for v in ("a", "b")
    ]
    table = pl.concat(tables).with_columns(
        filled=~pl.col("face"), reason=pl.when(~pl.col("face")).then(pl.lit("no face")).otherwise(pl.lit(""))
    )
    (tmp_path / "predictions").mkdir()
    table.write_parquet(tmp_path / "predictions" / "va.parquet")
    record = {"input": str(tmp_path / "gone"), "cache": str(tmp_path / "no-cache"), "output": str(tmp_path),
              "split": "test", "tasks": ["va"], "predictions": {"va": str(tmp_path / "predictions" / "va.parquet")},
              "stages": [{"name": "predict", "seconds": 2.0, "items": 80, "unit": "frames", "task": "va"}],
              "failures": [{"video": "c", "subject": "c", "stage": "decode", "reason": "truncated file", "task": "va"}]}  # fmt: skip
    if with_videos:
        record["videos"] = {
            v: {"path": str(tmp_path / f"{v}.mp4"), "fps": 20.0, "frames": 40} for v in ("a", "b")
        }
    (tmp_path / "run.json").write_text(json.dumps(record))
    return tmp_path


def test_a_run_whose_input_cache_and_videos_are_gone_still_gets_its_report(tmp_path):
    run = old_run(tmp_path, with_videos=True)
    result = write_report(ReportConfig(run=run))
    text = result.path.read_text()
    assert result.path == run / REPORT_FILE and result.videos == 2 and result.subjects == 2
    assert (
        result.bytes == len(text.encode())
        and "<script src" not in text
        and "http" not in text.split("plotly-library")[0]
    )
    assert f"the input folder {run / 'gone'} can no longer be found" in text
    assert "the feature cache" in text and "no face records are shown" in text
    assert f"{run / 'a.mp4'} can no longer be found" in text  # no thumbnails, and why
    assert "truncated file" in text and "20 fps" in text
    assert text.count('class="plot timeline"') == 2


def test_a_record_without_videos_counts_frames_and_the_command_says_where_the_file_is(tmp_path):
    run = old_run(tmp_path, with_videos=False)
    result = CliRunner().invoke(app, ["report", "--run", str(run), "--output", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'r.html'} (" in result.output and "note: the input folder" in result.output
    assert "frame rate unknown: timelines count frames" in (tmp_path / "r.html").read_text()


def test_no_run_record_is_a_usage_error_naming_the_file(tmp_path):
    result = CliRunner().invoke(app, ["report", "--run", str(tmp_path)])
    assert result.exit_code == 1
    assert f"lwaffect report: {tmp_path / 'run.json'}: no run record" in result.output
