"""Learnability of the synthetic data sets: train every task on `lwaffect synth` data, report figures.

`python -m jobs.learnability --output DIR` makes three synthetic data sets under DIR/data (unless they are
there): the Aff-Wild2 layout (VA, AU, EXPR), the BAH layout (AH) and the HUME-Vidmimic2 layout (EMI), with
the learnability settings of `pipeline.synth.common.SynthConfig`: several identities made from the one
photo (one of them only in validation and test), label cues that overlap (tints of random strength and
hue) and faceless stretches in half of the Aff-Wild2 videos. It extracts the train and validation subjects
into DIR/cache/<layout> (randomly initialised backbone, as in the tests), trains each task from scratch
with a recipe (`jobs.train.recipes`) and reports, on the held-out validation subjects, the official metric
next to what a model that learned nothing would reach. The cache is extracted where the recipe cuts the
backbone (`--recipe seed`: N = 5 trainable blocks at 112 px, so a crop cache), or where
`--trainable-blocks N` / `--input-size` / `--cache-kind` say; a cache at other settings than extract's
defaults (N = 2, 224 px, maps) lives in DIR/cache/<layout>-n<N>-<size>-<kind>, so each keeps its own:

- `trivial`: the best constant prediction (VA CCC 0; AU all present; EXPR the most frequent class; AH all
  absent or all present, whichever scores higher; EMI the same intensities for every clip, Pearson r 0);
- `shuffled` (`--shuffled TASKS`): the same training with every train subject's labels shifted in time by
  half its length (EMI: each clip gets another clip's intensities).

AU and AH report the two-fold figure that picks the epoch (`metric`) beside the one with thresholds tuned
on all validation frames (`tuned`); AU also per AU beside the all-present baseline. Frame tasks also
report the metric on the face frames within `NEAR` frames of a faceless stretch (`near_no_face`), the
frames that faceless maps would disturb. Writes DIR/learnability.json and prints a table with the wall
time of each part.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from jobs.train.recipes import RECIPES, recipe_config, recipe_cut
from jobs.train.state import torch_settings
from jobs.train.trainer import TrainConfig, Trainer, prepare
from model.checkpoint import load_checkpoint
from model.split import DEFAULT_TRAINABLE_BLOCKS
from model.tasks import get_task
from pipeline.cache.crops import CACHE_KINDS, CacheKind, default_cache_kind
from pipeline.fill import fill_values
from pipeline.metrics import compute_metric
from pipeline.temporal.predictor import Predictor
from pipeline.temporal.windows import label_rows

NEAR = 16  # frames on either side of a faceless stretch counted as its neighbours
LAYOUT_OF = {"va": "affwild2", "au": "affwild2", "expr": "affwild2", "ah": "ah", "emi": "emi"}


def make_data(root: Path, videos: int | None, seconds: float | None, say, layout: str = "affwild2",
              **settings: Any) -> None:  # fmt: skip
    """The synthetic data set of `layout` at `root` with `settings` (SynthConfig fields), made once."""
    from pipeline.synth.common import MANIFEST, SynthConfig
    from pipeline.synth.dataset import make_dataset

    if not (root / MANIFEST).exists():
        make_dataset(
            SynthConfig(output=root, layout=layout, videos=videos, seconds=seconds, **settings), say=say
        )


def cache_folder(out: Path, layout: str, trainable_blocks: int, input_size: int, kind: str) -> Path:
    """Where the cache of `layout` at N = `trainable_blocks`, `input_size` px and `kind` lives: OUT/cache/
    <layout> for extract's defaults (N = 2, 224 px, maps), else OUT/cache/<layout>-n<N>-<size>-<kind>, so
    that runs at other settings keep their own caches side by side."""
    if (trainable_blocks, input_size, kind) == (DEFAULT_TRAINABLE_BLOCKS, 224, "maps"):
        return out / "cache" / layout
    return out / "cache" / f"{layout}-n{trainable_blocks}-{input_size}-{kind}"


def make_cache(root: Path, cache: Path, say, trainable_blocks: int = DEFAULT_TRAINABLE_BLOCKS,
               input_size: int = 224, kind: CacheKind | None = None) -> float:  # fmt: skip
    """Extract the train and validation subjects at N = `trainable_blocks` and `input_size` px as `kind`
    (None: the default of N); returns the seconds it took."""
    from jobs.extract.config import ExtractConfig, sized
    from jobs.extract.driver import extract

    faces, backbone = sized(trainable_blocks=trainable_blocks, input_size=input_size)
    t0 = time.perf_counter()
    for split in ("train", "validation"):
        extract(ExtractConfig(input=root, cache=str(cache), split=split, faces=faces, backbone=backbone,
                              cache_kind=kind), say=say)  # fmt: skip
    return time.perf_counter() - t0


def _pooled_labels(data) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N, K) and validity (N,) of the validation subjects' annotation rows pooled."""
    labels = [label_rows(data.labels[s].values, data.labels[s].valid, np.arange(len(data.labels[s].values)))
              for s in data.val]  # fmt: skip
    return np.concatenate([v for v, _ in labels]), np.concatenate([ok for _, ok in labels])


def trivial_baseline(task: str, data) -> float:
    """The official metric of the best constant prediction on the validation frames (clips for EMI)."""
    y, mask = _pooled_labels(data)
    if task in ("va", "emi"):  # a constant has no covariance with the labels: CCC and Pearson r 0
        return compute_metric(task, np.zeros_like(y), y, mask).value
    if task == "au":
        return compute_metric("au", np.ones_like(y), y, mask).value
    if task == "ah":
        return max(compute_metric("ah", np.full(len(y), c), y[:, 0], mask).value for c in (0, 1))
    majority = np.bincount(y[mask, 0].astype(np.int64)).argmax()
    return compute_metric("expr", np.full(len(y), majority), y[:, 0], mask).value


def per_class_trivial(task: str, data) -> dict[str, float] | None:
    """AU: each AU's F1 when predicted present on every frame (the all-present baseline, per AU)."""
    if task != "au":
        return None
    y, mask = _pooled_labels(data)
    return compute_metric("au", np.ones_like(y), y, mask).parts


def shift_labels(data, subjects: list[str]) -> None:
    """Labels that no longer match the frames (in place): each subject's shifted by half its length, a
    clip task's passed on to the next clip."""
    if len(subjects) > 1 and all(len(data.labels[s].values) == 1 for s in subjects):  # one row per clip
        rows = [data.labels[s] for s in subjects]
        for s, lab in zip(subjects, rows[1:] + rows[:1], strict=True):
            data.labels[s] = lab
        return
    for s in subjects:
        lab = data.labels[s]
        half = len(lab.values) // 2
        data.labels[s] = SimpleNamespace(
            values=np.roll(lab.values, half, axis=0), valid=np.roll(lab.valid, half)
        )


def near_no_face(checkpoint: Path, data, crops: Any = None) -> dict[str, Any] | None:
    """The metric of the best model on the validation face frames within NEAR frames of a faceless one
    (with the checkpoint's thresholds); None for EMI or when no validation subject has such frames.
    `crops`: the trainer's maker of maps from a crop cache (`pipeline.temporal.crops.CropMaps`)."""
    model, meta = load_checkpoint(checkpoint)
    predictor = replace(Predictor.from_checkpoint(model, meta, batch_size=8), crops=crops)
    if predictor.spec.unit == "clip":
        return None
    reader = predictor.reader(data.cache)
    preds, target, keep = [], [], []
    for subject in data.val:
        out, index, face = predictor.predict(reader, subject)
        if face.all():
            continue
        distance = np.abs(np.arange(len(face))[:, None] - np.flatnonzero(~face)[None]).min(axis=1)
        values, ok = label_rows(data.labels[subject].values, data.labels[subject].valid, index)
        preds.append(fill_values(out, face)[0])
        target.append(values)
        keep.append(ok & face & (distance <= NEAR))
    if not keep or not np.concatenate(keep).any():
        return None
    p, y, m = np.concatenate(preds), np.concatenate(target), np.concatenate(keep)
    kind = predictor.spec.kind
    if kind in ("multilabel", "binary"):
        p = (p >= predictor.decision_thresholds).astype(np.int8)
        p = p[:, 0] if kind == "binary" else p
    elif kind == "multiclass":
        p, y = p.argmax(axis=1), y[:, 0]
    return {"metric": compute_metric(predictor.task, p, y, m).value, "frames": int(m.sum())}


def train_task(cfg: TrainConfig, shuffled: bool, say) -> dict:
    """One training run (optionally on shifted labels); its best validation figures and time."""
    data = prepare(cfg, say)
    if shuffled:
        shift_labels(data, data.train)
    with torch_settings(cfg.seed, cfg.threads):
        trainer = Trainer(cfg, data, torch.device(cfg.device), say)
        trainer.resume()
        result = trainer.run(time.perf_counter())
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    return {"metric": result.best_metric, "tuned": best.get("tuned"), "epoch": result.best_epoch,
            "epochs": result.epochs_run, "seconds": round(result.wall_time_s, 1),
            "trivial": trivial_baseline(cfg.task, data), "parts": best["parts"],
            "trivial_parts": per_class_trivial(cfg.task, data),
            "near_no_face": None if shuffled else near_no_face(result.checkpoint, data, trainer.crops)}  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--output", type=Path, default=Path("learnability-out"), help="work and report folder")
    add("--tasks", default="va,au,expr,ah,emi", help="comma-separated tasks (va, au, expr, ah, emi)")
    add("--recipe", default="default", choices=list(RECIPES), help="training recipe (jobs.train.recipes)")
    add("--config", default=None, help="model config (default: the recipe's)")
    add("--epochs", type=int, default=12, help="maximum epochs per task")
    add("--batch-size", type=int, default=4, help="windows per step (the recipe's with 0)")
    add("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    add("--seq-len", type=int, default=None, help="frames per window (default: the recipe's)")
    add("--stride", type=int, default=8, help="frames between training windows (the recipe's with 0)")
    add("--no-face", default="hold", choices=["hold", "zeros"], help="maps of faceless frames")
    add("--threads", type=int, default=None, help="torch threads (default: one per core)")
    add("--videos", type=int, default=24, help="synthetic Aff-Wild2 videos")
    add("--seconds", type=float, default=4.0, help="length of an Aff-Wild2 video in seconds")
    add("--ah-videos", type=int, default=16, help="synthetic AH videos (two per participant)")
    add("--emi-clips", type=int, default=48, help="synthetic EMI clips")
    add("--identities", type=int, default=5, help="people made from the one photo (1: the photo only)")
    add("--overlap", type=float, default=1.0, help="overlap of the label cues, 0..1")
    add("--no-face-share", type=float, default=0.5, help="share of Aff-Wild2 videos with a faceless stretch")
    add("--shuffled", default="", help="tasks also trained on time-shifted labels, e.g. va")
    add("--device", default="cpu", help="cpu or cuda")
    add("--trainable-blocks", type=int, default=None, choices=range(6), metavar="N",
        help="backbone blocks trained, 0-5 (default: the recipe's; seed 5, else 2)")  # fmt: skip
    add("--input-size", type=int, default=None, choices=[112, 224],
        help="face crop side (default: the recipe's; seed 112, else 224)")  # fmt: skip
    add("--cache-kind", default=None, choices=list(CACHE_KINDS),
        help="maps or crops (default: crops from 4 trainable blocks, maps below)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    out: Path = args.output
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for task in tasks:
        get_task(task)
    settings = dict(identities=args.identities, overlap=args.overlap)
    blocks, size = recipe_cut(args.recipe, args.trainable_blocks, args.input_size)
    kind = args.cache_kind or default_cache_kind(blocks)
    t0 = time.perf_counter()
    report: dict = {"recipe": args.recipe, "threads": args.threads or torch.get_num_threads(), "settings":
                    {**settings, "no_face_share": args.no_face_share}, "trainable_blocks": blocks,
                    "input_size": size, "cache_kind": kind, "synth_s": {}, "extract_s": {},
                    "tasks": {}}  # fmt: skip
    for layout in dict.fromkeys(LAYOUT_OF[t] for t in tasks):
        t1 = time.perf_counter()
        videos, seconds, extra = {"affwild2": (args.videos, args.seconds, {"no_face_share": args.no_face_share}),
                                  "ah": (args.ah_videos, args.seconds, {}),
                                  "emi": (args.emi_clips, None, {})}[layout]  # fmt: skip
        make_data(out / "data" / layout, videos, seconds, say, layout=layout, **settings, **extra)
        report["synth_s"][layout] = round(time.perf_counter() - t1, 1)
        cache = cache_folder(out, layout, blocks, size, kind)
        seconds = make_cache(out / "data" / layout, cache, say, blocks, size, kind)
        report["extract_s"][layout] = round(seconds, 1)
    for task in tasks:
        layout = LAYOUT_OF[task]
        given = dict(config=args.config, epochs=args.epochs, lr=args.lr, seq_len=args.seq_len,
                     batch_size=args.batch_size or None, stride=args.stride or None, patience=args.epochs,
                     threads=args.threads, device=args.device, log_every=0, no_face=args.no_face,
                     trainable_blocks=blocks, input_size=size)  # fmt: skip
        cfg = recipe_config(args.recipe, task=task, input=out / "data" / layout,
                            cache=str(cache_folder(out, layout, blocks, size, kind)), output=out / "runs" / task,
                            **given)  # fmt: skip
        figures = train_task(cfg, shuffled=False, say=say)
        if task in args.shuffled.split(","):
            shifted = train_task(
                replace(cfg, output=out / "runs" / f"{task}-shuffled"), shuffled=True, say=say
            )
            figures["shuffled"] = shifted["metric"]
        report["tasks"][task] = figures
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "learnability.json").write_text(json.dumps(report, indent=2))
    for line in table(report):
        say(line)
    return report


def table(report: dict) -> list[str]:
    """The report as printed lines."""
    cut = f"N = {report.get('trainable_blocks', 2)}, {report.get('input_size', 224)} px, {report.get('cache_kind', 'maps')}"
    lines = [f"\nlearnability (recipe {report['recipe']}, {cut}, {report['threads']} threads): validation figures",
             f"{'task':6}{'metric':>9}{'tuned':>8}{'trivial':>9}{'shuffled':>10}{'near':>8}{'epoch':>7}"
             f"{'train s':>9}"]  # fmt: skip
    for task, f in report["tasks"].items():
        tuned = f"{f['tuned']:.3f}" if f.get("tuned") is not None else "-"
        shuffled = f"{f['shuffled']:.3f}" if "shuffled" in f else "-"
        near = f"{f['near_no_face']['metric']:.3f}" if f.get("near_no_face") else "-"
        lines.append(f"{task:6}{f['metric']:9.3f}{tuned:>8}{f['trivial']:9.3f}{shuffled:>10}{near:>8}"
                     f"{f['epoch']:7d}{f['seconds']:9.0f}")  # fmt: skip
        if f.get("trivial_parts"):
            lines.append("  per AU (F1 / all present): " + ", ".join(
                f"{k} {f['parts'][k]:.2f}/{v:.2f}" for k, v in f["trivial_parts"].items()))  # fmt: skip
    lines.append(f"synth {sum(report['synth_s'].values()):.0f}s, extract {sum(report['extract_s'].values()):.0f}s, "
                 f"total {report['wall_s']:.0f}s")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
