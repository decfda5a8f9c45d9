"""Benchmark of the face-crop cache against the map cache: codecs, bytes per frame and training frames/s.

`python -m jobs.bench.crops [--input FOLDER] [--frames N] [--steps K]` takes the aligned face crops of a
synthetic Aff-Wild2-layout set (made here, or `--input`) from the real face stage (decode, MTCNN,
tracking, alignment; no Ray), then:

1. per codec and quality (`pipeline.cache.crops`): bytes per frame, encode and decode ms per frame and the
   cosine between the frozen maps (s8, s16; fp32, no autocast) of the decoded crops and of the originals,
   beside the cosine of the extraction's bf16 maps to the same fp32 maps (the map cache's own error);
2. one subject's shard of both kinds written with the pipeline's writer: bytes per frame on disk;
3. training frames/s of `tam_s1` (VA loss, windows of 32 frames, batch 8) from each shard through the
   trainer's own path: `WindowDataset` -> loader -> (crop cache: `CropMaps` with `--augment standard`) ->
   `train_step`, `--steps` timed steps after one warm-up step.

Prints a Markdown table; the README's figures ("Face-crop cache") come from it.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from jobs.extract.config import FaceSettings
from jobs.extract.stages.face import FaceStage
from model.backbone import BackboneConfig, build_backbone
from pipeline.cache.crops import CropCodec, decode_crops, encode_crops
from pipeline.cache.read import open_cache
from pipeline.cache.schema import frames_table, shard_schema
from pipeline.cache.spec import make_spec
from pipeline.cache.write import CacheWriter
from pipeline.features import FeatureConfig, cosine_per_frame, extract_maps
from pipeline.temporal.augment import AugmentConfig
from pipeline.temporal.crops import CropMaps
from pipeline.temporal.optim import train_step
from pipeline.temporal.windows import WindowConfig, WindowDataset, window_loader

CODECS = (  # JPEG 4:2:0 (subsampling 2) and 4:4:4 (0) at four qualities, WebP, PNG
    *(CropCodec("jpeg", q, subsampling=2) for q in (75, 85, 90, 95)),
    *(CropCodec("jpeg", q, subsampling=0) for q in (75, 85, 90, 95)),
    CropCodec("webp", 90),
    CropCodec("png"),
)
SUBJECT = "bench"


def face_crops(root: Path, frames: int) -> np.ndarray:
    """Up to `frames` aligned face crops (n, 3, 224, 224) uint8 of the set's videos, in order."""
    manifest = json.loads((root / "synth_manifest.json").read_text())
    threads = torch.get_num_threads()
    stage, out = FaceStage(FaceSettings()), []  # sets one torch thread, as a face worker has
    for video in manifest["videos"]:
        subjects = [(s, s.rsplit("_", 1)[-1] if s.endswith(("_left", "_right")) else "main")
                    for s in video["subjects"]]  # fmt: skip
        for rows in stage.video(video["name"], root / video["path"], subjects[:1]):
            if "crops" in rows and rows["kind"][0] == 0:
                out.append(rows["crops"][rows["face"]])
        if sum(len(c) for c in out) >= frames:
            break
    torch.set_num_threads(threads)
    return np.concatenate(out)[:frames]


def codec_rows(crops: np.ndarray, backbone: Any) -> list[dict[str, float | str]]:
    """Bytes, encode / decode ms per frame and map cosine per codec (and the bf16 maps' own cosine)."""
    fp32 = FeatureConfig(autocast="off", dtype="float32")
    reference = extract_maps(crops, backbone, fp32)
    joined = np.concatenate([m.reshape(len(crops), -1) for m in reference], axis=1)
    rows: list[dict[str, float | str]] = []
    folded = copy.deepcopy(backbone)  # the frozen part folded as the extraction's backbone workers run it
    folded.frozen, _ = folded.folded_frozen()
    bf16 = extract_maps(crops, folded, FeatureConfig(autocast="bf16"))
    cos = cosine_per_frame(np.concatenate([m.reshape(len(crops), -1) for m in bf16], axis=1), joined)
    rows.append({"codec": "maps, bf16 + float16 (map cache)", "bytes": float("nan"),
                 "encode_ms": float("nan"), "decode_ms": float("nan"),
                 "cos_median": float(np.median(cos)), "cos_min": float(cos.min())})  # fmt: skip
    for codec in CODECS:
        started = time.perf_counter()
        images = encode_crops(crops, None, codec)
        encode = time.perf_counter() - started
        started = time.perf_counter()
        decoded = decode_crops(images, crops.shape[-1])
        decode = time.perf_counter() - started
        maps = extract_maps(decoded, backbone, fp32)
        cos = cosine_per_frame(np.concatenate([m.reshape(len(crops), -1) for m in maps], axis=1), joined)
        name = " ".join(f"{k} {v}" for k, v in codec.spec().items() if k != "codec")
        rows.append({"codec": f"{codec.codec} {name}".strip(), "bytes": float(np.mean([len(b or b"") for b in images])),
                     "encode_ms": 1e3 * encode / len(crops), "decode_ms": 1e3 * decode / len(crops),
                     "cos_median": float(np.median(cos)), "cos_min": float(cos.min())})  # fmt: skip
    return rows


def write_shard(folder: Path, crops: np.ndarray, backbone: Any, kind: str) -> str:
    """One subject's shard of `crops` as a map or crop cache; its location."""
    n = len(crops)
    spec = make_spec(
        backbone.spec(), "float16", {"bench": True}, crops=CropCodec().spec() if kind == "crops" else None
    )
    face = np.ones(n, bool)
    stored = (encode_crops(crops, face),) if kind == "crops" else extract_maps(crops, backbone)
    table = frames_table(shard_schema(spec), np.arange(n), face, np.zeros((n, 4)), np.ones(n),
                         np.zeros((n, 5, 2)), ["detected"] * n, stored)  # fmt: skip
    location = str(folder / kind)
    CacheWriter(location, spec).write_subject(SUBJECT, SUBJECT, table)
    return location


def train_rate(location: str, backbone: Any, steps: int, batch: int = 8, seq_len: int = 32) -> float:
    """Training frames/s of tam_s1 (VA) from a cache through the trainer's path."""
    from model.configs import build_model
    from model.losses import loss_for

    cache = open_cache(location)
    n = cache.num_frames(SUBJECT)
    labels = {SUBJECT: SimpleNamespace(values=np.zeros((n, 2), np.float32), valid=np.ones(n, bool))}
    data = WindowDataset(cache, labels, "va", WindowConfig(seq_len, stride=4, seed=0))
    loader = window_loader(data, batch)
    torch.manual_seed(0)
    model = build_model("tam_s1", "va", backbone=backbone, num_frames=seq_len)
    crops = CropMaps(backbone, "cpu", AugmentConfig()) if cache.kind == "crops" else None
    optimizer, loss_fn = torch.optim.AdamW(model.parameters(), lr=1e-3), loss_for("va")
    done, frames, started = 0, 0, 0.0
    while done <= steps:
        for item in loader:
            if done == 1:  # the first step warms up
                started = time.perf_counter()
            item = crops.batch(item, train=True) if crops is not None else item
            train_step(model, item, loss_fn, optimizer)
            frames += int(item[2].numel()) if done else 0
            done += 1
            if done > steps:
                break
        data.set_epoch(done)
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="synthetic Aff-Wild2-layout set (default: made here)")
    parser.add_argument("--frames", type=int, default=256, help="face crops to measure")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per cache kind")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench-crops") as tmp:
        root = args.input
        if root is None:
            from pipeline.synth.common import SynthConfig
            from pipeline.synth.dataset import make_dataset

            root = Path(tmp) / "synth"
            make_dataset(SynthConfig(output=root, layout="affwild2"))
        crops = face_crops(Path(root), args.frames)
        backbone = build_backbone(BackboneConfig())
        print(
            f"{len(crops)} face crops {crops.shape[-1]}x{crops.shape[-1]}, {torch.get_num_threads()} threads"
        )
        print(
            "| codec | bytes/frame | encode ms | decode ms | map cosine median | min |\n|---|---|---|---|---|---|"
        )
        for r in codec_rows(crops, backbone):
            print(f"| {r['codec']} | {r['bytes']:,.0f} | {r['encode_ms']:.2f} | {r['decode_ms']:.2f} | "
                  f"{r['cos_median']:.5f} | {r['cos_min']:.5f} |")  # fmt: skip
        print("| cache | bytes/frame on disk | train frames/s (tam_s1, N = 2) |\n|---|---|---|")
        for kind in ("maps", "crops"):
            location = write_shard(Path(tmp), crops, backbone, kind)
            size = open_cache(location).manifest().to_pylist()[0]["bytes"] / len(crops)
            print(f"| {kind} | {size:,.0f} | {train_rate(location, backbone, args.steps):.1f} |", flush=True)


if __name__ == "__main__":
    main()
