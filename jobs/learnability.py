"""Learnability of the synthetic data set: train VA, AU and EXPR on `lwaffect synth` data, report figures.

`python -m jobs.learnability --output DIR` makes the synthetic Aff-Wild2-layout data set (unless DIR/data
has one), extracts the train and validation subjects into DIR/cache (randomly initialised backbone, as in
the tests), trains each task from scratch and reports, on the held-out validation subjects, the official
metric next to two baselines a model that learned nothing would reach:

- `trivial`: the best constant prediction (VA CCC 0; AU all positive; EXPR the most frequent class);
- `shuffled`: the same training with every train subject's labels shifted in time by half its length
  (labels keep their statistics and smoothness but no longer match the faces), with `--shuffled TASKS`.

Writes DIR/learnability.json and prints a table with the wall time of each part.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from jobs.train.trainer import TrainConfig, Trainer, prepare, torch_settings
from model.tasks import AFFWILD2_TASKS
from pipeline.metrics import compute_metric
from pipeline.temporal.windows import label_rows


def make_data(root: Path, videos: int | None, seconds: float | None, say) -> None:
    """The synthetic data set at `root`, made once."""
    from pipeline.synth.common import MANIFEST, SynthConfig
    from pipeline.synth.dataset import make_dataset

    if not (root / MANIFEST).exists():
        make_dataset(SynthConfig(output=root, videos=videos, seconds=seconds), say=say)


def make_cache(root: Path, cache: Path, say) -> float:
    """Extract the train and validation subjects; returns the seconds it took."""
    from jobs.extract.config import ExtractConfig
    from jobs.extract.driver import extract

    t0 = time.perf_counter()
    for split in ("train", "validation"):
        extract(ExtractConfig(input=root, cache=str(cache), split=split), say=say)
    return time.perf_counter() - t0


def trivial_baseline(task: str, data) -> float:
    """The official metric of the best constant prediction on the validation frames."""
    labels = [label_rows(data.labels[s].values, data.labels[s].valid, np.arange(len(data.labels[s].values)))
              for s in data.val]  # fmt: skip
    y = np.concatenate([v for v, _ in labels])
    mask = np.concatenate([ok for _, ok in labels])
    if task == "va":
        return compute_metric("va", np.zeros_like(y), y, mask).value
    if task == "au":
        return compute_metric("au", np.ones_like(y), y, mask).value
    majority = np.bincount(y[mask, 0].astype(np.int64)).argmax()
    return compute_metric("expr", np.full(len(y), majority), y[:, 0], mask).value


def shift_labels(data, subjects: list[str]) -> None:
    """Shift each subject's labels by half its length (in place): they no longer match the frames."""
    for s in subjects:
        lab = data.labels[s]
        half = len(lab.values) // 2
        data.labels[s] = SimpleNamespace(
            values=np.roll(lab.values, half, axis=0), valid=np.roll(lab.valid, half)
        )


def train_task(cfg: TrainConfig, shuffled: bool, say) -> dict:
    """One training run (optionally on shifted labels); its best validation figure and time."""
    data = prepare(cfg, say)
    if shuffled:
        shift_labels(data, data.train)
    with torch_settings(cfg):
        trainer = Trainer(cfg, data, torch.device(cfg.device), say)
        trainer.resume()
        result = trainer.run(time.perf_counter())
    return {"metric": result.best_metric, "epoch": result.best_epoch, "epochs": result.epochs_run,
            "seconds": round(result.wall_time_s, 1), "trivial": trivial_baseline(cfg.task, data)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=Path("learnability-out"), help="work and report folder"
    )
    parser.add_argument(
        "--tasks", default=",".join(AFFWILD2_TASKS), help="comma-separated tasks (va, au, expr)"
    )
    parser.add_argument("--config", default="tam_s1", help="model config")
    parser.add_argument("--epochs", type=int, default=12, help="maximum epochs per task")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--seq-len", type=int, default=32, help="frames per window")
    parser.add_argument("--stride", type=int, default=8, help="frames between training windows")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    parser.add_argument("--videos", type=int, default=24, help="synthetic videos")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a video in seconds")
    parser.add_argument("--shuffled", default="", help="tasks also trained on time-shifted labels, e.g. va")
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: OUTPUT/cache)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    out: Path = args.output
    root, cache = out / "data", args.cache or out / "cache"
    t0 = time.perf_counter()
    make_data(root, args.videos, args.seconds, say)
    synth_s = time.perf_counter() - t0
    extract_s = make_cache(root, cache, say)
    report: dict = {"config": args.config, "threads": args.threads or torch.get_num_threads(),
                    "synth_s": round(synth_s, 1), "extract_s": round(extract_s, 1), "tasks": {}}  # fmt: skip
    for task in args.tasks.split(","):
        cfg = TrainConfig(
            task=task, input=root, cache=str(cache), output=out / "runs" / task, config=args.config,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seq_len=args.seq_len,
            stride=args.stride, patience=args.epochs, threads=args.threads, device=args.device, log_every=0,
        )  # fmt: skip
        figures = train_task(cfg, shuffled=False, say=say)
        if task in args.shuffled.split(","):
            shifted = train_task(
                replace(cfg, output=out / "runs" / f"{task}-shuffled"), shuffled=True, say=say
            )
            figures["shuffled"] = shifted["metric"]
        report["tasks"][task] = figures
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "learnability.json").write_text(json.dumps(report, indent=2))
    say(f"\nlearnability ({args.config}, {report['threads']} threads): validation figures")
    say(f"{'task':6}{'metric':>9}{'trivial':>9}{'shuffled':>10}{'epoch':>7}{'train s':>9}")
    for task, f in report["tasks"].items():
        shuffled = f"{f['shuffled']:.3f}" if "shuffled" in f else "-"
        say(f"{task:6}{f['metric']:9.3f}{f['trivial']:9.3f}{shuffled:>10}{f['epoch']:7d}{f['seconds']:9.0f}")
    say(f"synth {report['synth_s']:.0f}s, extract {report['extract_s']:.0f}s, total {report['wall_s']:.0f}s")
    return report


if __name__ == "__main__":
    main()
