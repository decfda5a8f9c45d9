"""`make demo`: the whole pipeline on a small synthetic data set, from nothing to a checked submission.

Steps, each one reused when a rerun finds it finished:

1. a synthetic Aff-Wild2-layout data set (`pipeline.synth.common`) in OUT/data;
2. the feature cache of all its splits (`jobs.extract.driver`) in OUT/cache;
3. a VA model (`tam_s1`) trained for a few epochs (`jobs.train.trainer`) in OUT/checkpoints/va;
4. `lwaffect run --task va --split test` (`jobs.run`): OUT/predictions/va.parquet and
   OUT/submission/va/predictions.txt;
5. a check of the submission file against the test list and frame counts.

Run as `python -m jobs.demo --output demo`; exit status 0 when the submission checks.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.run import RunConfig, RunReport, run

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


def make_data(cfg: DemoConfig, say: Say) -> Path:
    """The synthetic data set in OUT/data (kept when its manifest exists)."""
    from pipeline.synth.common import MANIFEST, SynthConfig
    from pipeline.synth.dataset import make_dataset

    root = cfg.output / "data"
    if (root / MANIFEST).is_file():
        say(f"[1/5] data: reusing {root}")
        return root
    say(f"[1/5] data: writing {cfg.videos} synthetic videos of {cfg.seconds:g} s to {root}")
    make_dataset(
        SynthConfig(output=root, videos=cfg.videos, seconds=cfg.seconds, seed=cfg.seed),
        say=lambda line: say(f"  {line}"),
    )
    return root


def make_cache(cfg: DemoConfig, data: Path, say: Say) -> str:
    """The feature cache of every split (complete shards are skipped)."""
    from jobs.extract.config import ExtractConfig
    from jobs.extract.driver import extract

    cache = str(cfg.output / "cache")
    say(f"[2/5] extract: feature cache of all splits in {cache}")
    report = extract(ExtractConfig(input=data, cache=cache, split="all"), say=lambda line: say(f"  {line}"))
    if report.failures:
        say(f"  {len(report.failures)} subjects failed: {', '.join(f.subject for f in report.failures)}")
    return cache


def train_model(cfg: DemoConfig, data: Path, cache: str, say: Say) -> Path:
    """A briefly trained VA model (resumed, or kept when all its epochs are done)."""
    from jobs.train.trainer import TrainConfig, train

    output = cfg.output / "checkpoints" / "va"
    say(f"[3/5] train: VA model {cfg.config}, {cfg.epochs} epochs, in {output}")
    result = train(
        TrainConfig(task="va", input=data, cache=cache, output=output, config=cfg.config, epochs=cfg.epochs,
                    seq_len=cfg.seq_len, stride=cfg.stride, batch_size=cfg.batch_size, lr=cfg.lr,
                    seed=cfg.seed, patience=cfg.epochs),
        say=lambda line: say(f"  {line}"),
    )  # fmt: skip
    curve = [f"{r['metric']:.3f}" for r in result.history]
    say(f"  validation mean CCC by epoch: {' '.join(curve)}; best {result.best_metric:.3f} "
        f"at epoch {result.best_epoch}")  # fmt: skip
    return result.checkpoint


def run_test_split(cfg: DemoConfig, data: Path, cache: str, weights: Path, say: Say) -> RunReport:
    """`lwaffect run --task va --split test` on the cache."""
    say("[4/5] run: lwaffect run --task va --split test")
    run_cfg = RunConfig(input=data, task="va", weights=weights, output=cfg.output, split="test", cache=cache)
    report = run(run_cfg, say=lambda line: say(f"  {line}"))
    say(report.summary())
    return report


def check(report: RunReport, data: Path, say: Say) -> bool:
    """Check the submission file again, as `lwaffect check-submission` does."""
    from jobs.evaluate import CheckConfig, check_submission_file

    say("[5/5] check-submission")
    if report.submission is None:
        say("  no submission file was written")
        return False
    problems = check_submission_file(CheckConfig("va", report.submission, data, report.predictions))
    for problem in problems:
        say(f"  {report.submission}: {problem}")
    return not problems


def demo(cfg: DemoConfig, say: Say | None = None) -> int:
    """Run the five steps; the exit status (0 when the submission checks)."""
    say = say or (lambda line: print(line, flush=True))
    started = time.perf_counter()
    cfg.output.mkdir(parents=True, exist_ok=True)
    data = make_data(cfg, say)
    cache = make_cache(cfg, data, say)
    weights = train_model(cfg, data, cache, say)
    report = run_test_split(cfg, data, cache, weights, say)
    valid = check(report, data, say)
    say(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    lines = sum(1 for _ in report.submission.open()) - 1 if report.submission else 0
    if valid:
        say(f"submission: {report.submission} ({lines} frames) - valid")
        return 0
    say(f"submission: {report.submission} - does NOT check (see above)")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DemoConfig.output, help="demo folder (default: demo)")
    parser.add_argument("--epochs", type=int, default=DemoConfig.epochs, help="training epochs")
    args = parser.parse_args(argv)
    return demo(DemoConfig(output=args.output, epochs=args.epochs))


if __name__ == "__main__":
    sys.exit(main())
