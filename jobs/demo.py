"""`make demo`: the whole pipeline on a small synthetic data set, from nothing to a checked submission.

Steps, each one reused when a rerun finds it finished:

1. a synthetic Aff-Wild2-layout data set (`pipeline.synth.dataset`) in OUT/data;
2. `lwaffect run --input OUT/data --task va --split all` with short training settings (through the CLI),
   so that the report shows labels beside the predictions (the test subjects have none): the feature
   cache in OUT/cache, a VA model (`tam_s1`) trained in OUT/checkpoints/va, OUT/predictions/va.parquet,
   OUT/submission/va/predictions.txt, OUT/run.json and the HTML report OUT/report.html;
3. a check of the submission file against the test list and frame counts.

It ends by printing the report's path.

Run as `python -m jobs.demo --output demo`; exit status 0 when the submission checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.run.report import RUN_FILE

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo makes and how long it trains."""

    output: Path = Path("demo")  # everything goes below this folder
    videos: int = 8  # synthetic videos (train, validation and test)
    seconds: float = 3.0  # length of each video
    epochs: int = 8  # training epochs of the VA model
    config: str = "tam_s1"  # model config
    seq_len: int = 16  # frames per training and prediction window
    stride: int = 4  # frames between training windows
    batch_size: int = 8  # windows per step
    lr: float = 2e-3  # peak learning rate
    seed: int = 0  # seed of the data set and of training

    def run_args(self, data: Path) -> list[str]:
        """`lwaffect run` on the demo data with the demo's short training settings."""
        return ["run", "--input", str(data), "--task", "va", "--split", "all", "--output", str(self.output),
                "--config", self.config, "--epochs", str(self.epochs), "--seq-len", str(self.seq_len),
                "--train-stride", str(self.stride), "--batch-size", str(self.batch_size), "--lr", str(self.lr),
                "--seed", str(self.seed), "--patience", str(self.epochs)]  # fmt: skip


def make_data(cfg: DemoConfig, say: Say) -> Path:
    """The synthetic data set in OUT/data (kept when its manifest exists)."""
    from pipeline.synth.common import MANIFEST, SynthConfig
    from pipeline.synth.dataset import make_dataset

    root = cfg.output / "data"
    if (root / MANIFEST).is_file():
        say(f"[1/3] data: reusing {root}")
        return root
    say(f"[1/3] data: writing {cfg.videos} synthetic videos of {cfg.seconds:g} s to {root}")
    make_dataset(
        SynthConfig(output=root, videos=cfg.videos, seconds=cfg.seconds, seed=cfg.seed),
        say=lambda line: say(f"  {line}"),
    )
    return root


def check(submission: Path | None, predictions: Path, data: Path, say: Say) -> bool:
    """Check the submission file again, as `lwaffect check-submission` does."""
    from jobs.evaluate import CheckConfig, check_submission_file

    say("[3/3] check-submission")
    if submission is None:
        say("  no submission file was written")
        return False
    problems = check_submission_file(CheckConfig("va", submission, data, predictions))
    for problem in problems:
        say(f"  {submission}: {problem}")
    return not problems


def demo(cfg: DemoConfig, say: Say | None = None) -> int:
    """Run the three steps; the exit status (0 when the submission checks)."""
    from jobs.cli import app

    say = say or (lambda line: print(line, flush=True))
    started = time.perf_counter()
    cfg.output.mkdir(parents=True, exist_ok=True)
    data = make_data(cfg, say)
    argv = cfg.run_args(data)
    say(f"[2/3] run: lwaffect {' '.join(argv)}")
    code = app(argv, prog_name="lwaffect", standalone_mode=False)  # the exit status, as the command's
    if code not in (0, 2, None):  # 2: finished, some inputs failed (the submission is still complete)
        return int(code)
    record = json.loads((cfg.output / RUN_FILE).read_text())
    submission = record["submissions"].get("va", {}).get("path")
    valid = check(Path(submission) if submission else None, Path(record["predictions"]["va"]), data, say)
    say(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    say(f"checkpoint: {record['checkpoints']['va']['path']} ({record['checkpoints']['va']['source']})")
    say(f"run record: {cfg.output / RUN_FILE}")
    if valid:
        lines = sum(1 for _ in Path(submission).open()) - 1
        say(f"submission: {submission} ({lines} frames) - valid")
    else:
        say(f"submission: {submission} - does NOT check (see above)")
    report = record.get("report")
    say(
        f"report: {report} (open it in a browser)"
        if report
        else f"report: not written ({record.get('report_error')})"
    )
    return 0 if valid and report else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DemoConfig.output, help="demo folder (default: demo)")
    parser.add_argument("--epochs", type=int, default=DemoConfig.epochs, help="training epochs")
    args = parser.parse_args(argv)
    return demo(DemoConfig(output=args.output, epochs=args.epochs))


if __name__ == "__main__":
    sys.exit(main())
